/**
 * The endpoint as a client meets it: `wrangler dev` in a child process on 127.0.0.1, called over
 * HTTP, with the stand-in identity provider served by Node on another port and found through OIDC
 * discovery (no JWKS_URL), and bans written with the real `wrangler kv` CLI into the same local store.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyAblyToken } from "../support/ably-token";
import { identityProvider, TEST_ABLY_KEY } from "../support/identity-provider";
import { type Served, serve } from "../../dev/node-server";
import { identityToken, type TokenOptions } from "../support/tokens";
import { startWranglerDev, type WranglerDev } from "../support/wrangler-dev";

const ALLOWED_ORIGIN = "https://app.example";
const PROBLEM = "application/problem+json";
const ABLY_SECRET = TEST_ABLY_KEY.split(":")[1]!;

let provider: Awaited<ReturnType<typeof identityProvider>>;
let idp: Served;
let idpHost: string;
let dev: WranglerDev;
/**
 * The Ably key secret and the signature of every identity and Ably token that crossed the wire:
 * none may appear in wrangler's output. A signature is what makes a token usable, so a token logged
 * whole, or cut anywhere after its payload, is caught.
 */
const secrets: string[] = [ABLY_SECRET];
const remember = (jwt: string) => secrets.push(jwt.split(".")[2]!);
const ADMIN_TOKEN = "wrangler-dev-admin-token-0123456789abcdef";
secrets.push(ADMIN_TOKEN);
/** The admin API over HTTP, as a moderator's script calls it. */
const admin = (method: string, path: string, body?: unknown) =>
  fetch(`${dev.base}/admin${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });

beforeAll(async () => {
  // The provider's issuer must be the origin it is actually served on.
  idp = await serve(async (origin) => {
    provider = await identityProvider(origin);
    return provider.handle;
  });
  idpHost = new URL(idp.origin).host;
  dev = await startWranglerDev({
    JWT_ISSUER: provider.issuer,
    JWT_AUDIENCE: provider.audience,
    ABLY_API_KEY: TEST_ABLY_KEY,
    ALLOWED_ORIGINS: ALLOWED_ORIGIN,
    ADMIN_TOKEN,
  });
});

afterAll(async () => {
  await dev?.stop();
  await idp?.close();
});

/** An identity token from the provider, remembered so the log check can look for it. */
async function token(options?: TokenOptions): Promise<string> {
  const jwt = await identityToken(
    { issuer: provider.issuer, audience: provider.audience, key: provider.privateJwks.rsa },
    options,
  );
  remember(jwt);
  return jwt;
}

/** `path` on the dev server, as `sub` (a fresh valid token) when given, plus any headers. */
async function call(path: string, init: RequestInit & { sub?: string } = {}): Promise<Response> {
  const { sub, ...rest } = init;
  const headers = new Headers(rest.headers);
  if (sub !== undefined) headers.set("Authorization", `Bearer ${await token({ claims: { sub } })}`);
  return fetch(`${dev.base}${path}`, { ...rest, headers });
}

/** Runs the real `wrangler kv key` CLI against the dev server's local store. */
const kv = (...args: string[]) => dev.kv(...args);

/** Verifies an issued token as Ably does, remembering it for the log check. */
function verifyAsAbly(jwt: string) {
  remember(jwt);
  return verifyAblyToken(jwt, TEST_ABLY_KEY);
}

/** The problem document of a response, after checking it is one. */
async function problemOf(response: Response) {
  expect(response.headers.get("content-type")).toBe(PROBLEM);
  return response.json<{ type: string; status: number; detail: string }>();
}

describe("wrangler dev, called over HTTP", () => {
  it("reports healthy", async () => {
    const response = await call("/healthz");
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: "ok" });
  });

  it("issues an Ably token on GET /auth with a valid identity token", async () => {
    const response = await call("/auth", { sub: "alice" });
    const body = await response.text();
    expect(response.status, body).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/jwt");
    expect(response.headers.get("cache-control")).toBe("no-store");
    const claims = await verifyAsAbly(body);
    expect(claims.clientId).toBe("alice");
    expect(claims.capability).toEqual({ "private:alice": ["history", "presence", "publish", "subscribe"] });
  });

  it("narrows ttl and capability from a form-encoded POST body, as ably-js sends them", async () => {
    const response = await call("/auth", {
      sub: "alice",
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ ttl: "60000", capability: '{"private:alice":["subscribe"]}' }).toString(),
    });
    const body = await response.text();
    expect(response.status, body).toBe(200);
    const claims = await verifyAsAbly(body);
    expect(claims.ttl).toBe(60);
    expect(claims.capability).toEqual({ "private:alice": ["subscribe"] });
  });

  it("finds the provider's keys through OIDC discovery (no JWKS_URL is configured)", async () => {
    expect((await call("/auth", { sub: "alice" })).status).toBe(200);
    expect(provider.fetchCount(`${idpHost}/.well-known/openid-configuration`)).toBeGreaterThanOrEqual(1);
    expect(provider.fetchCount(`${idpHost}/jwks`)).toBeGreaterThanOrEqual(1);
  });

  it("answers 401 Bearer without an identity token", async () => {
    const response = await call("/auth");
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe("Bearer");
    expect((await problemOf(response)).type).toMatch(/identity-token-missing$/);
  });

  it("answers 401 to an expired identity token", async () => {
    const now = Math.floor(Date.now() / 1000);
    const expired = await token({ claims: { iat: now - 1200, exp: now - 600 } });
    const response = await call("/auth", { headers: { Authorization: `Bearer ${expired}` } });
    expect(response.status).toBe(401);
    expect(response.headers.get("www-authenticate")).toBe('Bearer error="invalid_token"');
    expect((await problemOf(response)).type).toMatch(/identity-token-expired$/);
  });

  // Miniflare's local KV ignores cacheTtl, so a ban written by the CLI holds on the very next read.
  it("refuses a user banned with `wrangler kv key put`, and serves them again once the key is deleted", async () => {
    expect((await call("/auth", { sub: "mallory" })).status).toBe(200);

    await kv("put", "mallory", '{"reason":"spam"}');
    const banned = await call("/auth", { sub: "mallory" });
    expect(banned.status).toBe(403);
    const problem = await problemOf(banned);
    expect(problem.type).toMatch(/user-banned$/);
    expect(problem.detail).toContain("spam");

    await kv("delete", "mallory");
    expect((await call("/auth", { sub: "mallory" })).status).toBe(200);
  });

  // Ids that once reached other users' channels or broke the ban list (SECURITY.md, "Holes found and
  // closed"), sent over HTTP as a hostile user would send them.
  it.each([
    ["bob$'", 200],
    ["bob$`", 200],
    ["bob$&", 200],
    ["bob$$", 200],
    ["😀".repeat(64), 200], // 256 bytes
    ["a".repeat(256), 200],
    ["a".repeat(257), 401],
    ["evader\ud800", 401],
    ["alice:bob", 401],
  ])("gives the id %j its own channel only, or refuses it with %i", async (sub, status) => {
    const own = await call("/auth", { sub });
    expect(own.status).toBe(status);
    if (status !== 200) {
      expect((await own.json<{ type: string }>()).type).toMatch(/client-id-invalid$/);
      return;
    }
    const claims = await verifyAsAbly(await own.text());
    expect(claims.capability).toEqual({ [`private:${sub}`]: ["history", "presence", "publish", "subscribe"] });
    const capability = encodeURIComponent('{"private:bob":["*"]}');
    expect((await call(`/auth?capability=${capability}`, { sub })).status).toBe(403);
  });

  it("bans an id with replacement patterns through `wrangler kv key put`, and only that id", async () => {
    await kv("put", "bob$'", '{"reason":"spam"}');
    expect((await call("/auth", { sub: "bob$'" })).status).toBe(403);
    expect((await call("/auth", { sub: "bob" })).status).toBe(200);
    await kv("delete", "bob$'");
  });

  it("bans, lists newest first and lifts hostile ids through the admin API; refuses ids it cannot store", async () => {
    const hostile = ["bob$'", "bob$&", "bob$$", "😀".repeat(64), "a".repeat(256), "%", "x/y", "é:"];
    for (const id of hostile) {
      const res = await admin("PUT", `/bans/${encodeURIComponent(id)}`, { reason: `r ${id}` });
      expect(res.status, id).toBe(200);
      expect((await res.json<{ clientId: string }>()).clientId).toBe(id);
    }
    const listed = (await (await admin("GET", "/bans")).json<{ bans: { clientId: string }[] }>()).bans;
    expect(listed.map((b) => b.clientId).filter((id) => hostile.includes(id))).toEqual([...hostile].reverse());
    for (const id of hostile.filter((id) => !id.includes(":"))) {
      const refused = await call("/auth", { sub: id });
      expect(refused.status, id).toBe(403);
      expect((await problemOf(refused)).type).toMatch(/user-banned$/);
    }
    // Not UTF-8 once decoded, too long, or a wildcard: a 400 problem, and nothing stored.
    for (const path of ["%ED%A0%80", "ev%ED%A0%80il", encodeURIComponent("a".repeat(257)), "a*"]) {
      const res = await admin("PUT", `/bans/${path}`, {});
      expect(res.status, path).toBe(400);
      expect((await problemOf(res)).type).toMatch(/request-invalid$/);
    }
    for (const id of hostile) expect((await admin("DELETE", `/bans/${encodeURIComponent(id)}`)).status).toBe(204);
    for (const id of hostile.filter((id) => !id.includes(":"))) {
      expect((await call("/auth", { sub: id })).status, id).toBe(200);
    }
    expect((await (await admin("GET", "/bans")).json<{ bans: unknown[] }>()).bans).toEqual([]);
  });

  it("answers a preflight from an allowed origin that asks to send Authorization", async () => {
    const response = await call("/auth", {
      method: "OPTIONS",
      headers: {
        Origin: ALLOWED_ORIGIN,
        "Access-Control-Request-Method": "GET",
        "Access-Control-Request-Headers": "authorization",
      },
    });
    expect(response.status).toBe(204);
    expect(response.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    expect(response.headers.get("access-control-allow-headers")?.toLowerCase()).toContain("authorization");
  });

  // Without CORS headers the browser would hide the 403 from ably-js, which would then retry forever.
  it("keeps the CORS headers on a refusal to an allowed origin", async () => {
    await kv("put", "banned-in-browser", '{"reason":"spam"}');
    const response = await call("/auth", { sub: "banned-in-browser", headers: { Origin: ALLOWED_ORIGIN } });
    expect(response.status).toBe(403);
    expect(response.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
    expect(response.headers.get("access-control-allow-credentials")).toBe("true");
    expect((await problemOf(response)).type).toMatch(/user-banned$/);
  });

  it("refuses another origin with no CORS headers at all", async () => {
    const response = await call("/auth", { sub: "alice", headers: { Origin: "https://evil.example" } });
    expect(response.status).toBe(403);
    expect(response.headers.get("access-control-allow-origin")).toBeNull();
    expect((await problemOf(response)).type).toMatch(/origin-not-allowed$/);
  });

  it("answers HEAD with 405 and Allow, minting nothing", async () => {
    const response = await call("/auth", { sub: "alice", method: "HEAD" });
    expect(response.status).toBe(405);
    expect(response.headers.get("allow")).toBe("GET, POST, OPTIONS");
  });

  // Runs last: every token above has been sent by now.
  it("logs one line per request and never a token or the Ably key secret", async () => {
    const last = await call("/healthz");
    const requestId = last.headers.get("x-request-id")!;
    const deadline = Date.now() + 5_000;
    while (!dev.output().includes(requestId) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    const output = dev.output();
    expect(output).toContain(requestId);
    const outcomes = dev.records().map((record) => record.outcome);
    expect(outcomes).toContain("issued");
    expect(outcomes).toContain("user-banned");
    expect(secrets.length).toBeGreaterThan(10);
    for (const secret of secrets) expect(output.includes(secret), "a secret was logged").toBe(false);
  });
});
