/**
 * One test per hole an attack on the endpoint confirmed (SECURITY.md, "Holes found and closed"),
 * each through the worker: the status, and the claims inside any token it issues.
 */
import { SignJWT } from "jose";
import { afterEach, describe, expect, it, vi } from "vitest";
import {
  DISCOVERY_CACHE_MS,
  JWKS_COOLDOWN_MS,
  JWKS_STALE_IF_ERROR_MS,
  MAX_BAN_REASON_BYTES,
  MAX_BAN_REASON_CHARS,
} from "../../src/constants";

import { forgetIsolateState } from "../../src/identity/jwks";
import {
  bodyOf,
  call,
  getToken,
  problemCode,
  problemOf,
  providerFetches,
  rateLimiters,
  seen,
  testEnv,
  token,
  verifyAsAbly,
} from "./helpers";

/** The issued token's clientId and capability, after checking the answer is 200. */
async function issued(res: Response) {
  const body = await bodyOf(res);
  expect(res.status, body).toBe(200);
  const claims = await verifyAsAbly(body);
  return { clientId: claims.clientId, capability: claims.capability };
}

afterEach(() => vi.restoreAllMocks());

describe("a user id with replacement patterns ($' $` $& $$) gets its own channel, never another's", () => {
  const OWN = ["history", "presence", "publish", "subscribe"];
  it.each(["bob$'", "bob$`", "bob$&", "bob$$", "$'bob", "b$1ob"])("sub %s", async (sub) => {
    const jwt = await token({ claims: { sub } });
    expect(await issued(await getToken(jwt))).toEqual({ clientId: sub, capability: { [`private:${sub}`]: OWN } });
    const askForBobs = `?capability=${encodeURIComponent('{"private:bob":["*"]}')}`;
    const res = await getToken(jwt, askForBobs);
    expect(res.status).toBe(403);
    expect(await problemCode(res)).toBe("capability-empty");
  });

  it("through CLIENT_ID_CLAIM=email", async () => {
    const jwt = await token({ claims: { email: "bob$'@example.com" } });
    const { capability } = await issued(await getToken(jwt, "", {}, { CLIENT_ID_CLAIM: "email" }));
    expect(capability).toEqual({ "private:bob$'@example.com": OWN });
  });

  it("through a role's capability", async () => {
    const env = { ROLES_CLAIM: "roles", ROLE_CAPABILITIES: '{"mod":{"mod-log:{clientId}":["publish"]}}' };
    const jwt = await token({ claims: { sub: "bob$'", roles: ["mod"] } });
    const { capability } = await issued(await getToken(jwt, "", {}, env));
    expect(capability).toEqual({ "mod-log:bob$'": ["publish"], "private:bob$'": OWN });
  });
});

describe("an identity provider outage longer than the discovery cache", () => {
  const env = { JWT_ISSUER: "https://outage.test/" };
  const outageToken = () => token({ claims: { iss: "https://outage.test/" } });
  afterEach(async () => void (await fetch("https://outage.test/__up")));

  it("keeps verifying with the last good discovery and keys for 12 h, asking once per 30 s", async () => {
    const jwt = await outageToken();
    expect((await getToken(jwt, "", {}, env)).status).toBe(200);
    await fetch("https://outage.test/__down");
    const before = await providerFetches();
    const asked = async (path: string) => ((await providerFetches())[path] ?? 0) - (before[path] ?? 0);
    const start = Date.now() + DISCOVERY_CACHE_MS + 60_000;
    const clock = vi.spyOn(Date, "now").mockReturnValue(start);
    for (let i = 0; i < 20; i++) {
      const res = await getToken(jwt, "", {}, env);
      expect(await issued(res)).toMatchObject({ clientId: "alice" });
    }
    forgetIsolateState(); // another isolate of the location
    for (let i = 0; i < 5; i++) expect((await getToken(jwt, "", {}, env)).status).toBe(200);
    expect(await asked("outage.test/.well-known/openid-configuration")).toBe(1);
    expect(await asked("outage.test/jwks")).toBe(1);
    // The location asks again once its 30 s are up, and only once, still serving meanwhile.
    clock.mockReturnValue(start + JWKS_COOLDOWN_MS - 1);
    expect((await getToken(jwt, "", {}, env)).status).toBe(200);
    expect(await asked("outage.test/.well-known/openid-configuration")).toBe(1);
    clock.mockReturnValue(start + JWKS_COOLDOWN_MS + 1);
    for (let i = 0; i < 5; i++) expect((await getToken(jwt, "", {}, env)).status).toBe(200);
    expect(await asked("outage.test/.well-known/openid-configuration")).toBe(2);
  });

  it("answers 503 once the last good discovery is older than 12 h", async () => {
    const jwt = await outageToken();
    forgetIsolateState();
    expect((await getToken(jwt, "", {}, env)).status).toBe(200);
    await fetch("https://outage.test/__down");
    vi.spyOn(Date, "now").mockReturnValue(Date.now() + JWKS_STALE_IF_ERROR_MS + 60_000);
    const before = await providerFetches();
    const res = await getToken(jwt, "", {}, env);
    expect(res.status).toBe(503);
    expect(await problemCode(res)).toBe("identity-provider-unavailable");
    // Too old to fall back on is nothing to fall back on: the failed ask is remembered, not repeated.
    for (let i = 0; i < 10; i++) expect((await getToken(jwt, "", {}, env)).status).toBe(503);
    const after = await providerFetches();
    const path = "outage.test/.well-known/openid-configuration";
    expect((after[path] ?? 0) - (before[path] ?? 0)).toBe(1);
  });
});

describe("a ban reason counted in the bytes KV stores", () => {
  const ADMIN_TOKEN = "regression-admin-token-0123456789abcdef";
  seen.secrets.push(ADMIN_TOKEN);
  const ban = (clientId: string, body: unknown) =>
    call(
      `/admin/bans/${encodeURIComponent(clientId)}`,
      {
        method: "PUT",
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
        body: JSON.stringify(body),
      },
      { ADMIN_TOKEN },
    );

  it.each([
    ["490 quotes (980 bytes escaped)", '"'.repeat(490)],
    ["180 control characters (1080 bytes escaped)", "\u0001".repeat(180)],
    ["one byte over, escaped", `${"a".repeat(MAX_BAN_REASON_BYTES - 1)}"`],
  ])("refuses %s with a 400 that names the field", async (_name, reason) => {
    const res = await ban("reason-victim", { reason });
    expect(res.status).toBe(400);
    expect((await problemOf(res)).detail).toMatch(/^reason /);
  });

  it("stores and enforces one exactly at the limit, escaped", async () => {
    const reason = '"'.repeat(MAX_BAN_REASON_BYTES / 2);
    expect((await ban("reason-limit", { reason })).status).toBe(200);
    const res = await getToken(await token({ claims: { sub: "reason-limit" } }));
    expect(res.status).toBe(403);
    expect((await problemOf(res)).detail).toBe(`You are banned: ${reason.slice(0, MAX_BAN_REASON_CHARS)}`);
  });
});

describe("every ban-list operation is bounded, the admin API's too", () => {
  const ADMIN_TOKEN = "bounded-admin-token-0123456789abcdef0123";
  seen.secrets.push(ADMIN_TOKEN);
  const hanging = {
    get: () => new Promise(() => {}),
    put: () => new Promise(() => {}),
    list: () => new Promise(() => {}),
    delete: () => new Promise(() => {}),
  };
  it.each(["PUT", "GET", "DELETE"])(
    "%s /admin/bans/{clientId} against a KV that never answers: 503 within the timeout",
    async (method) => {
      const res = await call(
        "/admin/bans/hanging-kv",
        {
          method,
          headers: {
            Authorization: `Bearer ${ADMIN_TOKEN}`,
            ...(method === "PUT" ? { "Content-Type": "application/json" } : {}),
          },
          body: method === "PUT" ? "{}" : undefined,
        },
        { ADMIN_TOKEN, BANS: hanging },
      );
      expect(res.status).toBe(503);
      expect(await problemCode(res)).toBe("ban-list-unavailable");
    },
  );
});

describe("two providers' prefixes never merge their users", () => {
  const SECRETS = { SECRET_A: "a".repeat(32) + crypto.randomUUID(), SECRET_B: "b".repeat(32) + crypto.randomUUID() };
  seen.secrets.push(SECRETS.SECRET_A, SECRETS.SECRET_B);
  const entry = (name: "a" | "b", clientIdPrefix: string) => ({
    name,
    issuer: `https://${name}.test/`,
    secretBinding: `SECRET_${name.toUpperCase()}`,
    noAudience: true,
    ...(clientIdPrefix === "" ? {} : { clientIdPrefix }),
  });
  const envWith = (prefixA: string, prefixB: string) => ({
    JWT_ISSUER: undefined,
    JWT_AUDIENCE: undefined,
    ...SECRETS,
    IDENTITY_PROVIDERS: JSON.stringify([entry("a", prefixA), entry("b", prefixB)]),
  });
  const mint = (name: "a" | "b", sub: string) =>
    new SignJWT({ sub })
      .setProtectedHeader({ alg: "HS256" })
      .setIssuer(`https://${name}.test/`)
      .setIssuedAt()
      .setExpirationTime("5m")
      .sign(new TextEncoder().encode(SECRETS[`SECRET_${name.toUpperCase() as "A" | "B"}`]));

  it("corp: and corp:eu: — eu:alice of the first is refused, alice of the second is corp:eu:alice", async () => {
    const env = envWith("corp:", "corp:eu:");
    const first = await getToken(await mint("a", "eu:alice"), "", {}, env);
    expect(first.status).toBe(401);
    expect(await problemCode(first)).toBe("client-id-invalid");
    expect((await issued(await getToken(await mint("b", "alice"), "", {}, env))).clientId).toBe("corp:eu:alice");
  });

  it.each([
    ["no prefix beside corp:, user corp (whose dm:corp:* would cover corp:alice's)", "", "corp:", "corp"],
    ["no prefix beside corp|, user corp|alice", "", "corp|", "corp|alice"],
  ])("%s: refused", async (_name, prefixA, prefixB, sub) => {
    const res = await getToken(await mint("a", sub), "", {}, envWith(prefixA, prefixB));
    expect(res.status).toBe(401);
    expect(await problemCode(res)).toBe("client-id-invalid");
  });

  it("refuses two providers with one prefix at load, naming both", async () => {
    const res = await call("/healthz", {}, envWith("same:", "same:"));
    expect(res.status).toBe(503);
    const { problems } = await res.json<{ problems: string[] }>();
    expect(problems).toContain(
      'IDENTITY_PROVIDERS[0] and IDENTITY_PROVIDERS[1] have the same clientIdPrefix "same:": give each provider its own, or their users\' ids collide',
    );
  });
});

describe("a user id that is not well-formed Unicode", () => {
  it.each([{}, { BAN_LIST_FAIL_OPEN: "true" }])("is refused before the ban list is read (%o)", async (env) => {
    const res = await getToken(await token({ claims: { sub: "evader\ud800" } }), "", {}, env);
    expect(res.status).toBe(401);
    expect(await problemCode(res)).toBe("client-id-invalid");
  });
});

describe("found by the review of these fixes", () => {
  it("an <img> on any page (no token, no Origin) uses up nothing of its viewer's IP limit", async () => {
    const from = {
      "CF-Connecting-IP": "198.51.100.88",
      "Sec-Fetch-Site": "cross-site",
      "Sec-Fetch-Dest": "image",
      "Sec-Fetch-Mode": "no-cors",
    };
    for (let i = 0; i < 301; i++) expect((await call("/auth", { headers: from }, rateLimiters)).status).toBe(401);
    const own = await call(
      "/auth",
      {
        headers: {
          "CF-Connecting-IP": "198.51.100.88",
          Authorization: `Bearer ${await token({ claims: { sub: "ip-victim" } })}`,
        },
      },
      rateLimiters,
    );
    expect(own.status).toBe(200);
  });

  it("a same-origin <img> or navigation carrying the cookie mints nothing", async () => {
    const env = { IDENTITY_COOKIE: "id_token" };
    const cookie = `id_token=${await token({ claims: { sub: "same-origin-img" } })}`;
    for (const mode of ["no-cors", "navigate"]) {
      const res = await call(
        "/auth",
        { headers: { Cookie: cookie, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": mode } },
        env,
      );
      expect(res.status).toBe(403);
      expect(await problemCode(res)).toBe("origin-not-allowed");
    }
    const fetched = await call(
      "/auth",
      { headers: { Cookie: cookie, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors" } },
      env,
    );
    expect((await issued(fetched)).clientId).toBe("same-origin-img");
  });

  it("a provider that was never reached is asked once per 5 s, not once per request", async () => {
    const before = await providerFetches();
    const cases = [
      { env: { JWT_ISSUER: "https://down.test/" }, claims: { iss: "https://down.test/" } },
      { env: { JWKS_URL: "https://html.test/jwks?cooldown=1" }, claims: {} },
    ];
    for (const { env, claims } of cases) {
      for (let i = 0; i < 10; i++) expect((await getToken(await token({ claims }), "", {}, env)).status).toBe(503);
    }
    const after = await providerFetches();
    const asked = (path: string) => (after[path] ?? 0) - (before[path] ?? 0);
    expect(asked("down.test/.well-known/openid-configuration")).toBe(1);
    expect(asked("html.test/jwks")).toBe(1);
  });

  it("an identity token's fractional exp becomes whole seconds in the Ably token", async () => {
    const exp = Math.floor(Date.now() / 1000) + 600.5;
    const { exp: issuedExp } = await verifyAsAbly(
      await getToken(await token({ claims: { exp } }), "", {}, { TOKEN_EXPIRES_WITH_IDENTITY: "true" }),
    );
    expect(issuedExp).toBe(Math.floor(exp));
  });

  it.each([
    [
      "a template and a shared channel one of its users could be",
      '{"private:{clientId}":["*"],"private:announcements":["subscribe"]}',
      'a user whose id fits "private:{clientId}" could own the shared channel "private:announcements"',
    ],
    [
      "a bare template and any one-segment channel",
      '{"{clientId}":["*"],"general":["subscribe"]}',
      'could own the shared channel "general"',
    ],
  ])("refuses at load %s", async (_name, capability, message) => {
    const res = await call("/healthz", {}, { ABLY_CAPABILITY: capability });
    expect(res.status).toBe(503);
    expect((await res.json<{ problems: string[] }>()).problems.join("\n")).toContain(message);
  });

  it.each([
    [
      "an http origin off this machine",
      { ALLOWED_ORIGINS: "http://app.example.com" },
      "ALLOWED_ORIGINS may list http:// origins only on this machine",
    ],
    [
      "{clientId} in the key's capability",
      { ABLY_KEY_CAPABILITY: '{"private:{clientId}":["*"]}' },
      "ABLY_KEY_CAPABILITY is the key's own capability, not a template",
    ],
  ])("refuses at load %s", async (_name, env, message) => {
    const res = await call("/healthz", {}, env);
    expect(res.status).toBe(503);
    expect((await res.json<{ problems: string[] }>()).problems.join("\n")).toContain(message);
  });

  it("takes http origins on this machine, for local development", async () => {
    expect(
      (await call("/healthz", {}, { ALLOWED_ORIGINS: "http://127.0.0.1:8788,http://localhost:8788" })).status,
    ).toBe(200);
  });
});

describe("cookie credentials without an Origin", () => {
  it("mint nothing and use up nothing of the user's rate limit", async () => {
    const env = { ...rateLimiters, IDENTITY_COOKIE: "id_token" };
    const cookie = `id_token=${await token({ claims: { sub: "img-victim" } })}`;
    for (let i = 0; i < 25; i++) {
      const res = await call(
        "/auth",
        { headers: { Cookie: cookie, "Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": "image" } },
        env,
      );
      expect(res.status).toBe(403);
    }
    const own = await call("/auth", { headers: { Cookie: cookie, "Sec-Fetch-Site": "same-origin" } }, env);
    expect((await issued(own)).clientId).toBe("img-victim");
  });
});

describe("templates that could reach another user's channels are refused at load", () => {
  it.each([
    ["a placeholder inside a segment", '{"user-{clientId}":["subscribe"]}', "must have {clientId} as a whole segment"],
    ["a placeholder used twice", '{"{clientId}:{clientId}":["subscribe"]}', "more than once"],
    [
      "two templates whose instances meet (users y and x both get x:y)",
      '{"x:{clientId}":["*"],"{clientId}:y":["*"]}',
      'capability templates "x:{clientId}" and "{clientId}:y"',
    ],
  ])("%s", async (_name, capability, message) => {
    const res = await call("/healthz", {}, { ABLY_CAPABILITY: capability });
    expect(res.status).toBe(503);
    const { problems } = await res.json<{ problems: string[] }>();
    expect(problems.join("\n")).toContain(message);
  });

  it("accepts templates told apart by a literal segment, and dm:{clientId}:* beside private:{clientId}", async () => {
    const capability = '{"private:{clientId}":["*"],"dm:{clientId}:*":["subscribe"],"org:acme:{clientId}":["publish"]}';
    expect((await call("/healthz", {}, { ABLY_CAPABILITY: capability })).status).toBe(200);
  });

  it("a user id with a colon is refused, so alice never owns the channels of a user alice:bob", async () => {
    const env = { ABLY_CAPABILITY: '{"dm:{clientId}:*":["*"]}' };
    const res = await getToken(await token({ claims: { sub: "alice:bob" } }), "", {}, env);
    expect(res.status).toBe(401);
    expect(await problemCode(res)).toBe("client-id-invalid");
  });
});

describe("found by attacking this change over HTTP", () => {
  const ADMIN_TOKEN = "regression-attack-admin-token-0123456789";
  seen.secrets.push(ADMIN_TOKEN);

  it.each([
    ['{"until":"5"}', "a year, to Date"],
    ['{"until":"0"}', "a year, to Date"],
    ['{"until":"2020-01-01"}', "a date without a time"],
    ['{"until":"December 1, 2020"}', "prose"],
  ])("a ban written straight into KV with %s (%s) still bans: only an ISO date and time ends it", async (value) => {
    const sub = `until-${crypto.randomUUID()}`;
    await testEnv.BANS.put(sub, value);
    const res = await getToken(await token({ claims: { sub } }));
    expect(res.status).toBe(403);
    expect(await problemCode(res)).toBe("user-banned");
    await testEnv.BANS.delete(sub);
  });

  it("a ban whose `until` is an ISO date and time in the past no longer bans, in any zone", async () => {
    for (const until of ["2020-01-01T00:00:00Z", "2020-01-01T00:00:00.000+02:00", "2020-01-01T00:00-05:00"]) {
      const sub = `ended-${crypto.randomUUID()}`;
      await testEnv.BANS.put(sub, JSON.stringify({ until }));
      expect((await getToken(await token({ claims: { sub } }))).status, until).toBe(200);
      await testEnv.BANS.delete(sub);
    }
  });

  it("the reason shown is cut before a character, never inside one", async () => {
    const sub = `cut-${crypto.randomUUID()}`;
    await testEnv.BANS.put(sub, JSON.stringify({ reason: `${"a".repeat(MAX_BAN_REASON_CHARS - 1)}😀x` }));
    const { detail } = await problemOf(await getToken(await token({ claims: { sub } })));
    expect(detail).toBe(`You are banned: ${"a".repeat(MAX_BAN_REASON_CHARS - 1)}`);
    await testEnv.BANS.delete(sub);
  });

  it.each(["reason", "bannedBy"])(
    "a %s that is not well-formed text is a 400 naming it, and bans nobody",
    async (field) => {
      const res = await call(
        "/admin/bans/surrogate-reason",
        {
          method: "PUT",
          headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
          body: `{"${field}":"x\\ud800"}`,
        },
        { ADMIN_TOKEN },
      );
      expect(res.status).toBe(400);
      expect((await problemOf(res)).detail).toMatch(new RegExp(`^${field} must be well-formed`));
      expect(await testEnv.BANS.get("surrogate-reason")).toBeNull();
    },
  );
});
