/**
 * Who may use the admin API (src/bans/moderator.ts): a moderator proven by Cloudflare Access (its
 * header, or its cookie on a same-origin script request) and on MODERATORS, or a caller holding
 * ADMIN_TOKEN; and `bannedBy` is the verified email. Access tokens are signed with the key the
 * stand-in team `yourteam.cloudflareaccess.com` publishes at /cdn-cgi/access/certs
 * (test/support/provider-hosts.ts).
 */
import { describe, expect, it } from "vitest";
import { accessToken, ACCESS_AUD, ACCESS_TEAM } from "./access";
import { call, problemCode, seen, testEnv } from "./helpers";

const ADMIN_TOKEN = "moderators-admin-token-0123456789abcdef0";
seen.secrets.push(ADMIN_TOKEN);
const ACCESS = { ACCESS_TEAM_DOMAIN: ACCESS_TEAM, ACCESS_AUD, MODERATORS: "mod@example.com,@mods.example.org" };
const BOTH = { ...ACCESS, ADMIN_TOKEN };
const NOW = Math.floor(Date.now() / 1000);

/** An admin API call with Access's header carrying a token for `email` (claims override the token's). */
async function asAccess(
  method: string,
  path: string,
  email: string | undefined,
  options: { claims?: Record<string, unknown>; headers?: Record<string, string>; body?: unknown } = {},
  overrides: Record<string, unknown> = ACCESS,
) {
  const jwt = await accessToken({ email, ...options.claims });
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const type: Record<string, string> = body === undefined ? {} : { "Content-Type": "application/json" };
  return call(
    `/admin${path}`,
    { method, headers: { "Cf-Access-Jwt-Assertion": jwt, ...type, ...options.headers }, body },
    overrides,
  );
}

describe("a moderator signed in with Cloudflare Access", () => {
  it("is who whoami says, and the email is recorded as bannedBy", async () => {
    const whoami = await asAccess("GET", "/whoami", "mod@example.com");
    expect(whoami.status).toBe(200);
    expect(await whoami.json()).toEqual({ moderator: "mod@example.com", via: "access" });

    const put = await asAccess("PUT", "/bans/by-access", "mod@example.com", { body: { reason: "spam" } });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ clientId: "by-access", reason: "spam", bannedBy: "mod@example.com" });
    const stored = await asAccess("GET", "/bans/by-access", "x@mods.example.org");
    expect(await stored.json()).toMatchObject({ bannedBy: "mod@example.com", active: true });
    const listed = await (await asAccess("GET", "/bans", "mod@example.com")).json<{ bans: { clientId: string }[] }>();
    expect(listed.bans.find((b) => b.clientId === "by-access")).toMatchObject({ bannedBy: "mod@example.com" });
    expect((await asAccess("DELETE", "/bans/by-access", "x@mods.example.org")).status).toBe(204);
    expect(await testEnv.BANS.get("by-access")).toBeNull();
  });

  it("may not say who banned: a bannedBy in the body is refused, and nothing is stored", async () => {
    const res = await asAccess("PUT", "/bans/claimed", "mod@example.com", { body: { bannedBy: "someone-else" } });
    expect(res.status).toBe(400);
    expect(await problemCode(res)).toBe("request-invalid");
    expect(await testEnv.BANS.get("claimed")).toBeNull();
  });

  it("turns the admin API on without ADMIN_TOKEN, where a Bearer token then opens nothing", async () => {
    expect((await asAccess("GET", "/whoami", "mod@example.com")).status).toBe(200);
    const bearer = await call("/admin/whoami", { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } }, ACCESS);
    expect(bearer.status).toBe(401);
    const none = await call("/admin/whoami", {}, ACCESS);
    expect(none.status).toBe(401);
    expect(await problemCode(none)).toBe("admin-unauthorized");
    expect((await call("/admin/whoami", {}, {})).status).toBe(404);
  });

  it("judges a request with Authorization by it alone, and a token caller's bans are admin-api's: no borrowed email", async () => {
    const jwt = await accessToken({ email: "mod@example.com" });
    const headers = { Authorization: `Bearer ${ADMIN_TOKEN}`, "Cf-Access-Jwt-Assertion": jwt };
    expect(await (await call("/admin/whoami", { headers }, BOTH)).json()).toEqual({ moderator: null, via: "token" });
    const wrong = { ...headers, Authorization: "Bearer wrong-token-0123456789abcdef0123456789" };
    expect((await call("/admin/whoami", { headers: wrong }, BOTH)).status).toBe(401);
    const put = (body: unknown) =>
      call(
        "/admin/bans/by-token",
        { method: "PUT", headers: { ...headers, "Content-Type": "application/json" }, body: JSON.stringify(body) },
        BOTH,
      );
    // A moderator's address from a shared token would make bannedBy prove nothing.
    const forged = await put({ bannedBy: "mod@example.com" });
    expect(forged.status).toBe(400);
    expect(await problemCode(forged)).toBe("request-invalid");
    expect((await call("/admin/bans/by-token", { headers }, BOTH)).status).toBe(404);
    expect(await (await put({ reason: "spam" })).json()).toMatchObject({ bannedBy: "admin-api" });
    // Without Access, a script still names itself.
    const named = await call(
      "/admin/bans/by-script",
      {
        method: "PUT",
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
        body: JSON.stringify({ bannedBy: "mod-anna" }),
      },
      { ADMIN_TOKEN },
    );
    expect(await named.json()).toMatchObject({ bannedBy: "mod-anna" });
  });
});

describe("an Access token that does not prove a moderator is refused", () => {
  it.each([
    ["another application's AUD tag", { aud: ["b".repeat(64)] }, {}, 401, "identity-token-audience-mismatch"],
    [
      "another team's issuer",
      { iss: "https://otherteam.cloudflareaccess.com" },
      {},
      401,
      "identity-token-issuer-mismatch",
    ],
    ["an expired token", { iat: NOW - 1200, nbf: NOW - 1200, exp: NOW - 600 }, {}, 401, "identity-token-expired"],
    ["HS256 instead of RS256", {}, { alg: "HS256" }, 401, "identity-token-algorithm-not-allowed"],
    ["another key under the team's kid", {}, { key: "other" }, 401, "identity-token-signature-invalid"],
    ["the global session token (type org)", { type: "org" }, {}, 401, "identity-token-claim-invalid"],
    ["no type", { type: undefined }, {}, 401, "identity-token-claim-missing"],
    ["a service token (no email)", { email: undefined, common_name: "abc.access" }, {}, 403, "moderator-not-allowed"],
    ["an email not on MODERATORS", { email: "user@example.com" }, {}, 403, "moderator-not-allowed"],
  ] as const)("%s: %s %s", async (_name, claims, signing, status, code) => {
    const jwt = await accessToken({ email: "mod@example.com", ...claims }, signing);
    const res = await call(
      "/admin/bans/refused",
      {
        method: "PUT",
        headers: { "Cf-Access-Jwt-Assertion": jwt, "Content-Type": "application/json" },
        body: JSON.stringify({ reason: "x" }),
      },
      ACCESS,
    );
    expect(res.status).toBe(status);
    expect(await problemCode(res)).toBe(code);
    expect(await testEnv.BANS.get("refused")).toBeNull();
  });
});

describe("MODERATORS: addresses, and domains matched exactly", () => {
  const LIST = { ...ACCESS, MODERATORS: " Alice@Example.com , ,@example.com,@kelvin.example," };
  it.each([
    ["alice@example.com", true],
    ["ALICE@EXAMPLE.COM", true],
    ["anyone@example.com", true],
    ["Anyone@Example.COM", true],
    ["x@kelvin.example", true],
    ["x@evil-example.com", false],
    ["x@example.com.evil", false],
    ["x@sub.example.com", false],
    ["x@example.com.", false],
    ["x@.example.com", false],
    ["@example.com", false],
    ["x@y@example.com", false],
    ["x@example.com ", false],
    ["x@\u212aelvin.example", false], // the Kelvin sign, which Unicode lower-cases to k
    ["x\uff20example.com", false], // a full-width @
    ["alice@example.co", false],
    ["", false],
  ])("%j → %s", async (email, admitted) => {
    const res = await asAccess("GET", "/whoami", email, {}, LIST);
    expect(res.status).toBe(admitted ? 200 : 403);
    if (admitted) expect(await res.json()).toEqual({ moderator: email, via: "access" });
    else expect(await problemCode(res)).toBe("moderator-not-allowed");
  });
});

describe("Access's cookie counts only on this origin's scripts' requests, and neither credential cross-site", () => {
  const SCRIPT = { "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors" };
  const withCookie = async (headers: Record<string, string>, cookie?: string) =>
    call(
      "/admin/whoami",
      {
        headers: {
          Cookie: cookie ?? `CF_Authorization=${await accessToken({ email: "mod@example.com" })}`,
          ...headers,
        },
      },
      ACCESS,
    );

  it.each([
    ["a same-origin fetch", SCRIPT, 200, undefined],
    ["a same-origin fetch with its Origin", { ...SCRIPT, Origin: "https://auth.test" }, 200, undefined],
    ["a request without Fetch Metadata or Origin", {}, 403, "origin-not-allowed"],
    [
      "a same-site page's fetch",
      { "Sec-Fetch-Site": "same-site", "Sec-Fetch-Mode": "cors" },
      403,
      "origin-not-allowed",
    ],
    [
      "a cross-site page's fetch",
      { "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "cors" },
      403,
      "origin-not-allowed",
    ],
    ["another origin", { ...SCRIPT, Origin: "https://evil.example" }, 403, "origin-not-allowed"],
    ["a navigation", { "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "navigate" }, 403, "origin-not-allowed"],
    [
      "an address typed by the user",
      { "Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate" },
      403,
      "origin-not-allowed",
    ],
  ])("the cookie on %s: %s", async (_name, headers, status, code) => {
    const res = await withCookie(headers);
    expect(res.status).toBe(status);
    if (code) expect(await problemCode(res)).toBe(code);
    else expect(await res.json()).toEqual({ moderator: "mod@example.com", via: "access" });
  });

  it("refuses the cookie sent twice", async () => {
    const [a, b] = await Promise.all(["mod@example.com", "x@mods.example.org"].map((email) => accessToken({ email })));
    const res = await withCookie(SCRIPT, `CF_Authorization=${a}; CF_Authorization=${b}`);
    expect(res.status).toBe(401);
    expect(await problemCode(res)).toBe("identity-token-ambiguous");
  });

  it.each([
    ["a script without a browser", {}, 200],
    ["an address typed by the user", { "Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate" }, 200],
    ["a same-origin fetch", SCRIPT, 200],
    ["a cross-site page's form", { "Sec-Fetch-Site": "cross-site", "Sec-Fetch-Mode": "navigate" }, 403],
    ["another origin, without Fetch Metadata", { Origin: "https://evil.example" }, 403],
  ])("the header on %s: %s", async (_name, headers, status) => {
    const res = await asAccess("GET", "/whoami", "mod@example.com", { headers });
    expect(res.status).toBe(status);
  });
});

describe("Access misconfiguration is reported by /healthz", () => {
  it.each([
    [{ ACCESS_AUD }, "ACCESS_TEAM_DOMAIN, ACCESS_AUD and MODERATORS go together"],
    [{ ...ACCESS, MODERATORS: " , " }, "ACCESS_TEAM_DOMAIN, ACCESS_AUD and MODERATORS go together"],
    [{ ...ACCESS, ACCESS_AUD: "   " }, "ACCESS_TEAM_DOMAIN, ACCESS_AUD and MODERATORS go together"],
    [{ ...ACCESS, ACCESS_TEAM_DOMAIN: "http://yourteam.cloudflareaccess.com" }, "ACCESS_TEAM_DOMAIN must be"],
    [{ ...ACCESS, ACCESS_TEAM_DOMAIN: "https://yourteam.cloudflareaccess.com/path" }, "ACCESS_TEAM_DOMAIN must be"],
    [{ ...ACCESS, ACCESS_TEAM_DOMAIN: "yourteam" }, "ACCESS_TEAM_DOMAIN must be"],
    [{ ...ACCESS, MODERATORS: "alice" }, "MODERATORS entries must be"],
    [{ ...ACCESS, MODERATORS: "@" }, "MODERATORS entries must be"],
    [{ ...ACCESS, MODERATORS: "a@b@example.com" }, "MODERATORS entries must be"],
    [{ ...ACCESS, MODERATORS: "alice@example.com @example.org" }, "MODERATORS entries must be"],
    [{ ...ACCESS, BAN_INDEX: undefined }, "the admin API needs the Durable Object binding BAN_INDEX"],
  ])("%j", async (overrides, problem) => {
    const res = await call("/healthz", {}, overrides);
    expect(res.status).toBe(503);
    const { problems } = await res.json<{ problems: string[] }>();
    expect(problems.some((p) => p.startsWith(problem))).toBe(true);
  });

  it.each([
    ["a trailing slash", "https://yourteam.cloudflareaccess.com/"],
    ["the development identity provider", "http://127.0.0.1:8788"],
    ["localhost", "http://localhost:8788"],
  ])("accepts %s", async (_name, domain) => {
    expect((await call("/healthz", {}, { ...ACCESS, ACCESS_TEAM_DOMAIN: domain })).status).toBe(200);
  });
});
