/**
 * The endpoint with the real ably-js SDK (v2) as its client: `wrangler dev` issues the tokens, the
 * stand-in identity provider signs identity tokens, and the Ably stand-in (dev/ably/)
 * checks every Ably token as Ably does, over REST and a Realtime WebSocket. A transparent proxy in
 * front of the worker counts the SDK's calls to the endpoint, one path prefix per test.
 */
import * as Ably from "ably";
import { SignJWT } from "jose";
import { WebSocket } from "ws";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAuthCallback } from "../../client/ably-auth";
import { type AblyStandIn, startAblyStandIn } from "../../dev/ably/server";
import { identityProvider, TEST_ABLY_KEY } from "../support/identity-provider";
import { freePort, type Served, serve } from "../../dev/node-server";
import { identityToken } from "../support/tokens";
import { startWranglerDev, type WranglerDev } from "../support/wrangler-dev";

/**
 * Lifetime of issued Ably tokens, in seconds: short, so a Realtime client must renew within a test;
 * long enough (at least 3 s left, as `exp` is whole seconds) to connect and re-authorize first.
 */
const TOKEN_TTL_SECONDS = 4;
/** What the test Ably key may do: everything, so only the token's own capability limits a client. */
const KEY_CAPABILITY = { "*": ["*"] };
/** The worker's default grant for `clientId`. */
const grantFor = (clientId: string) => ({ [`private:${clientId}`]: ["history", "presence", "publish", "subscribe"] });
/** At least the 32 characters the worker requires of ADMIN_TOKEN. */
const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef0123456789";
/** ably-js's retry delays (default 15 s and 30 s), shortened so a retrying client retries within a second. */
const RETRY_MS = 300;
/** Longest wait for a connection state: a token's life plus a renewal round trip, with margin. */
const STATE_TIMEOUT_MS = (TOKEN_TTL_SECONDS + 6) * 1000;
/** How long a FAILED client is watched for further calls: at least five of its former retry delays (ably-js backs off to 2×). */
const QUIET_MS = 3_000;

let provider: Awaited<ReturnType<typeof identityProvider>>;
let idp: Served;
let ably: AblyStandIn;
let dev: WranglerDev;
let proxy: Served;

/** One call the SDK made to the endpoint, as the proxy saw it. */
interface AuthCall {
  method: string;
  status: number;
  /** The identity token sent as `Authorization: Bearer`, if any. */
  identity: string | undefined;
  /** Token parameters: the query string on GET, the form body on POST. */
  params: URLSearchParams;
  contentType: string | null;
}
const authCalls = new Map<string, AuthCall[]>();

beforeAll(async () => {
  idp = await serve(async (origin) => {
    provider = await identityProvider(origin);
    return provider.handle;
  });
  ably = await startAblyStandIn(TEST_ABLY_KEY, KEY_CAPABILITY);
  dev = await startWranglerDev({
    JWT_ISSUER: provider.issuer,
    JWT_AUDIENCE: provider.audience,
    ABLY_API_KEY: TEST_ABLY_KEY,
    ABLY_TOKEN_TTL_SECONDS: String(TOKEN_TTL_SECONDS),
    ADMIN_TOKEN,
  });
  // `/<test>/auth` → the worker's `/auth`, recorded under <test>.
  proxy = await serve(async () => async (request) => {
    const url = new URL(request.url);
    const [, test = "", path = "/"] = /^\/([^/]+)(\/.*)$/.exec(url.pathname) ?? [];
    const body = request.method === "POST" ? await request.text() : undefined;
    const headers = new Headers();
    for (const name of ["authorization", "content-type", "accept"]) {
      const value = request.headers.get(name);
      if (value !== null) headers.set(name, value);
    }
    const response = await fetch(`${dev.base}${path}${url.search}`, { method: request.method, headers, body });
    const calls = authCalls.get(test) ?? [];
    authCalls.set(test, calls);
    calls.push({
      method: request.method,
      status: response.status,
      identity: /^Bearer (\S+)$/.exec(request.headers.get("authorization") ?? "")?.[1],
      params: new URLSearchParams(body ?? url.search),
      contentType: request.headers.get("content-type"),
    });
    const type = response.headers.get("content-type");
    return new Response(await response.arrayBuffer(), {
      status: response.status,
      headers: type === null ? {} : { "content-type": type },
    });
  });
});

afterAll(async () => {
  await proxy?.close();
  await dev?.stop();
  await ably?.close();
  await idp?.close();
});

const realtimeClients: Ably.Realtime[] = [];
afterEach(() => {
  for (const client of realtimeClients.splice(0)) client.close();
});

/** The endpoint's URL for one test; its calls are then `calls(test)`. */
const authUrl = (test: string) => `${proxy.origin}/${test}/auth`;
const calls = (test: string) => authCalls.get(test) ?? [];

/** A valid identity token for `sub`; a fresh `jti` each time, so two tokens always differ. */
let issued = 0;
function idToken(sub: string, claims: Record<string, unknown> = {}): Promise<string> {
  return identityToken(
    { issuer: provider.issuer, audience: provider.audience, key: provider.privateJwks.rsa },
    { claims: { sub, jti: String(++issued), ...claims } },
  );
}
const bearer = async (sub: string) => ({ Authorization: `Bearer ${await idToken(sub)}` });

/** ably-js logs the refusals these tests provoke as errors; the assertions say what matters. */
const QUIET_SDK = { logLevel: 0 };

/** ably-js Rest talking to the Ably stand-in. */
const rest = (options: Ably.ClientOptions) => new Ably.Rest({ ...ably.clientOptions, ...QUIET_SDK, ...options });

/** ably-js Realtime talking to the Ably stand-in, retrying fast, closed after the test; with its state history. */
function realtime(options: Ably.ClientOptions) {
  const client = new Ably.Realtime({
    ...ably.clientOptions,
    ...QUIET_SDK,
    disconnectedRetryTimeout: RETRY_MS,
    suspendedRetryTimeout: RETRY_MS,
    ...options,
  });
  realtimeClients.push(client);
  const states: Ably.ConnectionStateChange[] = [];
  client.connection.on((change) => states.push(change));
  return { client, states };
}

/** Resolves when `client` reaches `state`; fails, saying where it is instead, after `ms`. */
async function reaches(client: Ably.Realtime, state: Ably.ConnectionState, ms = STATE_TIMEOUT_MS) {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const { state: now, errorReason } = client.connection;
      reject(new Error(`not ${state} within ${ms} ms, but ${now}: ${errorReason?.message ?? "no error"}`));
    }, ms);
  });
  await Promise.race([client.connection.whenState(state), timeout]).finally(() => clearTimeout(timer));
}

/** Resolves once `condition` holds; fails after `ms`. */
async function until(condition: () => boolean, what: string, ms = STATE_TIMEOUT_MS) {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await sleep(50);
  }
}
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Bans `clientId` through the admin API, as a moderator would. */
async function banThroughAdminApi(clientId: string) {
  const response = await fetch(`${dev.base}/admin/bans/${clientId}`, {
    method: "PUT",
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: JSON.stringify({ reason: "spam" }),
  });
  expect(response.status, await response.text()).toBe(200);
}

describe("the Ably stand-in checks a token as Ably documents (so that its acceptance below means something)", () => {
  const [keyName, secret] = TEST_ABLY_KEY.split(":") as [string, string];
  /** For the tokens of the table below; still expired, and still in milliseconds, when they run. */
  const now = Math.floor(Date.now() / 1000);
  interface JwtOptions {
    header?: Record<string, unknown>;
    claims?: Record<string, unknown>;
    secret?: string;
  }

  /** An Ably JWT signed here: valid for a minute for any channel, unless `options` say otherwise. */
  function ablyJwt(options: JwtOptions = {}): Promise<string> {
    const iat = Math.floor(Date.now() / 1000);
    return new SignJWT({
      "x-ably-capability": '{"*":["*"]}',
      "x-ably-clientId": "fake-check",
      iat,
      exp: iat + 60,
      ...options.claims,
    })
      .setProtectedHeader({ alg: "HS256", typ: "JWT", kid: keyName, ...options.header })
      .sign(new TextEncoder().encode(options.secret ?? secret));
  }

  /** A REST publish on `channel` with this Authorization header, as Ably answers it. */
  async function publish(authorization: string, channel = "any") {
    const response = await fetch(`http://127.0.0.1:${ably.port}/channels/${encodeURIComponent(channel)}/messages`, {
      method: "POST",
      headers: { Authorization: authorization, "Content-Type": "application/json" },
      body: '[{"name":"greeting","data":"hello"}]',
    });
    const body = await response.json<{ error?: Ably.ErrorInfo }>();
    return { status: response.status, errorCode: response.headers.get("x-ably-errorcode"), error: body.error };
  }

  it("accepts a valid token, base64-encoded as ably-js sends it or raw", async () => {
    const jwt = await ablyJwt();
    expect((await publish(`Bearer ${btoa(jwt)}`)).status).toBe(201);
    expect((await publish(`Bearer ${jwt}`)).status).toBe(201);
  });

  it.each<[string, number, JwtOptions]>([
    ["signed with another secret", 40101, { secret: "another-secret" }],
    ["for another key", 40101, { header: { kid: "otherApp.otherKey" } }],
    ["without kid", 40144, { header: { kid: undefined } }],
    ["signed with HS384", 40144, { header: { alg: "HS384" } }],
    ["without typ JWT", 40144, { header: { typ: "at+jwt" } }],
    ["without exp", 40144, { claims: { exp: undefined } }],
    ["with times in milliseconds", 40144, { claims: { iat: now * 1000, exp: (now + 60) * 1000 } }],
    ["with a capability that is not a JSON string", 40144, { claims: { "x-ably-capability": { "*": ["*"] } } }],
    ["that has expired", 40142, { claims: { iat: now - 120, exp: now - 60 } }],
  ])("refuses a token %s with Ably's error %i", async (_, code, options) => {
    const refused = await publish(`Bearer ${btoa(await ablyJwt(options))}`);
    expect(refused).toMatchObject({ status: 401, errorCode: String(code), error: { code, statusCode: 401 } });
  });

  it("refuses a publish the token's capability does not allow with 40160", async () => {
    const jwt = await ablyJwt({ claims: { "x-ably-capability": '{"private:fake-check":["subscribe"]}' } });
    const refused = await publish(`Bearer ${btoa(jwt)}`, "private:fake-check");
    expect(refused).toMatchObject({ status: 401, errorCode: "40160", error: { code: 40160 } });
  });

  it("asks a Realtime connection to renew before its token expires (AUTH), and ends it with 40142 if it does not", async () => {
    const iat = Math.floor(Date.now() / 1000);
    const socket = new WebSocket(
      `ws://127.0.0.1:${ably.port}/?format=json&access_token=${await ablyJwt({ claims: { iat, exp: iat + 2 } })}`,
    );
    const received: { action: number; error?: { code: number } }[] = [];
    socket.on("message", (data: Buffer) => received.push(JSON.parse(data.toString()) as (typeof received)[number]));
    await new Promise((resolve) => socket.once("close", resolve));

    // Ably's protocol actions: CONNECTED 4, AUTH 17, DISCONNECTED 6.
    expect(received.map((m) => m.action)).toEqual([4, 17, 6]);
    expect(received[2]!.error).toMatchObject({ code: 40142 });
  });

  it("refuses a Realtime connection with a bad token: ably-js ends FAILED with Ably's 40101", async () => {
    const { client } = realtime({ token: await ablyJwt({ secret: "another-secret" }) });
    await reaches(client, "failed");
    expect(client.connection.errorReason).toMatchObject({ code: 40101, statusCode: 401 });
  });
});

describe("ably-js Rest with authUrl", () => {
  it("publishes on the user's own channel with a token Ably accepts, naming the user and carrying the grant", async () => {
    const client = rest({ authUrl: authUrl("rest-get"), authHeaders: await bearer("rest-get") });
    await client.channels.get("private:rest-get").publish("greeting", "hello");

    expect(calls("rest-get")).toMatchObject([{ method: "GET", status: 200 }]);
    const [token, ...others] = ably.accepted("rest-get");
    expect(others).toEqual([]);
    expect(token).toMatchObject({ via: "rest", clientId: "rest-get", capability: grantFor("rest-get") });
    expect(token!.exp - token!.iat).toBe(TOKEN_TTL_SECONDS);
  });

  it("does the same with authMethod POST, reading the token parameters from the form body", async () => {
    const client = rest({
      authUrl: authUrl("rest-post"),
      authMethod: "POST",
      authHeaders: await bearer("rest-post"),
      defaultTokenParams: { ttl: 2_000 },
    });
    await client.channels.get("private:rest-post").publish("greeting", "hello");

    const [call] = calls("rest-post");
    expect(call).toMatchObject({ method: "POST", status: 200, contentType: "application/x-www-form-urlencoded" });
    expect(call!.params.get("ttl")).toBe("2000");
    const [token] = ably.accepted("rest-post");
    expect(token).toMatchObject({ clientId: "rest-post", capability: grantFor("rest-post") });
    expect(token!.exp - token!.iat).toBe(2);
  });

  it("ignores the app's own authParams and still issues the token", async () => {
    const client = rest({
      authUrl: authUrl("rest-params"),
      authHeaders: await bearer("rest-params"),
      authParams: { room: "lobby", locale: "fr" },
    });
    await client.channels.get("private:rest-params").publish("greeting", "hello");

    const [call] = calls("rest-params");
    expect(call).toMatchObject({ method: "GET", status: 200 });
    expect(call!.params.get("room")).toBe("lobby");
    expect(ably.accepted("rest-params")).toMatchObject([
      { clientId: "rest-params", capability: grantFor("rest-params") },
    ]);
  });

  it("narrows the token to the ttl and capability asked for in defaultTokenParams", async () => {
    const narrow: Record<string, Ably.CapabilityOp[]> = { "private:rest-narrow": ["publish"] };
    const client = rest({
      authUrl: authUrl("rest-narrow"),
      authHeaders: await bearer("rest-narrow"),
      defaultTokenParams: { ttl: 2_000, capability: narrow },
    });
    await client.channels.get("private:rest-narrow").publish("greeting", "hello");

    const [call] = calls("rest-narrow");
    expect(call!.params.get("capability")).toBe(JSON.stringify(narrow));
    const [token] = ably.accepted("rest-narrow");
    expect(token!.capability).toEqual(narrow);
    expect(token!.exp - token!.iat).toBe(2);
  });

  it("never widens: a capability asked beyond the grant is cut to it, and a publish outside it is refused by Ably (40160)", async () => {
    const client = rest({
      authUrl: authUrl("rest-widen"),
      authHeaders: await bearer("rest-widen"),
      defaultTokenParams: { capability: { "*": ["*"] } },
    });
    await client.channels.get("private:rest-widen").publish("greeting", "hello");
    expect(ably.accepted("rest-widen")[0]!.capability).toEqual(grantFor("rest-widen"));

    await expect(client.channels.get("public:lobby").publish("greeting", "hello")).rejects.toMatchObject({
      code: 40160,
      statusCode: 401,
    });
  });
});

describe("ably-js Realtime with authUrl", () => {
  it("connects, as the user the identity token proves", async () => {
    const { client } = realtime({ authUrl: authUrl("rt-connect"), authHeaders: await bearer("rt-connect") });
    await reaches(client, "connected");

    expect(client.auth.clientId).toBe("rt-connect");
    expect(ably.accepted("rt-connect")).toMatchObject([{ via: "connect", capability: grantFor("rt-connect") }]);
  });

  it("renews through the endpoint when Ably asks before the token expires (AUTH), on the same connection", async () => {
    const { client, states } = realtime({ authUrl: authUrl("rt-renew"), authHeaders: await bearer("rt-renew") });
    await reaches(client, "connected");
    const connectionId = client.connection.id;
    await until(() => ably.accepted("rt-renew").length >= 2, "a second token presented to Ably");

    const [first, second] = ably.accepted("rt-renew");
    expect(second!.via).toBe("auth");
    expect(second!.token).not.toBe(first!.token);
    expect(second!.exp).toBeGreaterThan(first!.exp);
    expect(calls("rt-renew").slice(0, 2)).toMatchObject([{ status: 200 }, { status: 200 }]);
    expect(client.connection.id).toBe(connectionId);
    expect(states.map((s) => s.current)).not.toContain("disconnected");
  });

  it("swaps its token on the live connection when the app calls auth.authorize() (AUTH), without reconnecting", async () => {
    const { client } = realtime({ authUrl: authUrl("rt-authorize"), authHeaders: await bearer("rt-authorize") });
    await reaches(client, "connected");
    const connectionId = client.connection.id;
    await client.auth.authorize();

    expect(client.connection.state).toBe("connected");
    expect(client.connection.id).toBe(connectionId);
    expect(calls("rt-authorize")).toMatchObject([{ status: 200 }, { status: 200 }]);
    expect(ably.accepted("rt-authorize").map((t) => t.via)).toEqual(["connect", "auth"]);
  });

  it("ends FAILED for a banned user, with the 403, and stops calling the endpoint", async () => {
    await dev.kv("put", "rt-banned", '{"reason":"spam"}');
    const { client } = realtime({ authUrl: authUrl("rt-banned"), authHeaders: await bearer("rt-banned") });
    await reaches(client, "failed");
    expect(client.connection.errorReason).toMatchObject({ statusCode: 403, cause: { statusCode: 403 } });

    await sleep(QUIET_MS);
    expect(calls("rt-banned")).toMatchObject([{ status: 403 }]);
    expect(client.connection.state).toBe("failed");
    expect(ably.accepted("rt-banned")).toEqual([]);
  });

  it("keeps retrying without an identity token (401): the app may still sign the user in", async () => {
    const { client, states } = realtime({ authUrl: authUrl("rt-anonymous") });
    await until(() => calls("rt-anonymous").length >= 3, "three attempts");

    expect(calls("rt-anonymous").every((c) => c.status === 401 && c.identity === undefined)).toBe(true);
    expect(states.some((s) => s.current === "disconnected" && s.reason?.statusCode === 401)).toBe(true);
    expect(states.some((s) => s.current === "failed")).toBe(false);
    expect(client.connection.state).not.toBe("failed");
  });
});

describe("moderation: a ban during a session", () => {
  it("refuses the banned user's next renewal with 403, and the connected client ends FAILED", async () => {
    const { client } = realtime({ authUrl: authUrl("rt-moderated"), authHeaders: await bearer("rt-moderated") });
    await reaches(client, "connected");
    await banThroughAdminApi("rt-moderated");
    await reaches(client, "failed");

    expect(client.connection.errorReason).toMatchObject({ statusCode: 403, cause: { statusCode: 403 } });
    expect(calls("rt-moderated").map((c) => c.status)).toEqual([200, 403]);
    expect(ably.accepted("rt-moderated")).toHaveLength(1);
  });
});

describe("createAuthCallback, the client helper", () => {
  it("never puts the identity token in an error, even when the runtime quotes the header", async () => {
    const jwt = await idToken("cb-leak");
    const malformed = `${jwt.slice(0, 20)}\n${jwt.slice(20)}`; // Node's fetch refuses the header and quotes its value
    const authCallback = createAuthCallback({ endpoint: authUrl("cb-leak"), getIdentityToken: () => malformed });
    const error = await new Promise<Error>((resolve) => authCallback({}, (e) => resolve(e as Error)));
    expect(error.message).toBe("Could not reach the auth endpoint (TypeError)");
    expect(`${error.message} ${JSON.stringify(error)}`).not.toContain(jwt.split(".")[2]);
  });

  it("gets a fresh identity token for every Ably token and forwards the token parameters", async () => {
    let fetched = 0;
    const authCallback = createAuthCallback({
      endpoint: authUrl("cb-fresh"),
      getIdentityToken: () => (fetched++, idToken("cb-fresh")),
    });
    const client = rest({ authCallback, defaultTokenParams: { ttl: 2_000 } });
    await client.channels.get("private:cb-fresh").publish("greeting", "hello");
    await client.auth.authorize(); // what a renewal does
    await client.channels.get("private:cb-fresh").publish("greeting", "again");

    expect(fetched).toBe(2);
    const [first, second] = calls("cb-fresh");
    expect(first).toMatchObject({ status: 200 });
    expect(second).toMatchObject({ status: 200 });
    expect(second!.identity).not.toBe(first!.identity);
    expect(first!.params.get("ttl")).toBe("2000");
    const tokens = ably.accepted("cb-fresh");
    expect(tokens.map((t) => t.exp - t.iat)).toEqual([2, 2]);
  });

  it("keeps a Realtime client connected across a renewal", async () => {
    let fetched = 0;
    const authCallback = createAuthCallback({
      endpoint: authUrl("cb-renew"),
      getIdentityToken: () => (fetched++, idToken("cb-renew")),
    });
    const { client } = realtime({ authCallback });
    await reaches(client, "connected");
    await until(() => ably.accepted("cb-renew").length >= 2, "a second token presented to Ably");
    await reaches(client, "connected");

    expect(fetched).toBeGreaterThanOrEqual(2);
    expect(client.auth.clientId).toBe("cb-renew");
  });

  it("turns a 403 (banned) into FAILED, with the endpoint's explanation, and stops calling", async () => {
    await banThroughAdminApi("cb-banned");
    let fetched = 0;
    const authCallback = createAuthCallback({
      endpoint: authUrl("cb-banned"),
      getIdentityToken: () => (fetched++, idToken("cb-banned")),
    });
    const { client } = realtime({ authCallback });
    await reaches(client, "failed");
    expect(client.connection.errorReason).toMatchObject({
      statusCode: 403,
      cause: { statusCode: 403, code: 40300, message: expect.stringContaining("You are banned: spam") as string },
    });

    await sleep(QUIET_MS);
    expect(fetched).toBe(1);
    expect(client.connection.state).toBe("failed");
  });

  it("turns a 401 (identity token expired) into a retry", async () => {
    const now = Math.floor(Date.now() / 1000);
    let fetched = 0;
    const authCallback = createAuthCallback({
      endpoint: authUrl("cb-expired"),
      getIdentityToken: () => (fetched++, idToken("cb-expired", { iat: now - 1200, exp: now - 600 })),
    });
    const { client, states } = realtime({ authCallback });
    await until(() => fetched >= 3, "three attempts");

    expect(calls("cb-expired").every((c) => c.status === 401)).toBe(true);
    const disconnected = states.find((s) => s.current === "disconnected");
    expect(disconnected?.reason?.cause).toMatchObject({ statusCode: 401, code: 40100 });
    expect(states.some((s) => s.current === "failed")).toBe(false);
    expect(client.connection.state).not.toBe("failed");
  });

  it("turns an unreachable endpoint into a retry", async () => {
    let fetched = 0;
    const authCallback = createAuthCallback({
      endpoint: `http://127.0.0.1:${await freePort()}/auth`,
      getIdentityToken: () => (fetched++, idToken("cb-offline")),
    });
    const { client, states } = realtime({ authCallback });
    await until(() => fetched >= 3, "three attempts");

    const disconnected = states.find((s) => s.current === "disconnected");
    expect(disconnected?.reason?.cause).toMatchObject({ statusCode: 401, code: 40170 });
    expect(client.connection.state).not.toBe("failed");
  });
});
