/**
 * Configuration (read once per isolate, every problem reported together) and /healthz; the log
 * line each request leaves is in log.test.ts.
 */
import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";
import { loadConfig, parseConfig } from "../../src/config";
import { PROBLEM_TYPE_PREFIX } from "../../src/errors";
import { bodyOf, call, getToken, problemOf, testEnv, token } from "./helpers";

describe("a misconfigured worker", () => {
  it.each([
    ["no ABLY_API_KEY", { ABLY_API_KEY: undefined }, /ABLY_API_KEY is not set/],
    ["a key without a colon", { ABLY_API_KEY: "app.key" }, /ABLY_API_KEY is not of the form/],
    ["a capability that is not JSON", { ABLY_CAPABILITY: "{chat:*}" }, /ABLY_CAPABILITY is not valid JSON/],
    ["an empty capability", { ABLY_CAPABILITY: "{}" }, /ABLY_CAPABILITY grants nothing/],
    ["no JWT_ISSUER", { JWT_ISSUER: undefined }, /JWT_ISSUER is required/],
    [
      "no identity provider at all",
      { JWT_ISSUER: undefined, JWT_AUDIENCE: undefined },
      /no identity provider: set JWT_ISSUER and JWT_AUDIENCE, or IDENTITY_PROVIDERS/,
    ],
    [
      "no audience and no switch",
      { JWT_AUDIENCE: undefined },
      /JWT_AUDIENCE is required \(JWT_NO_AUDIENCE true only for tokens that carry no aud\)/,
    ],
    [
      "a symmetric algorithm",
      { JWT_ALGORITHMS: "RS256,HS256" },
      /JWT_ALGORITHMS: HS256 needs the provider's own secret/,
    ],
    ["JWT_NO_AUDIENCE that is not a boolean", { JWT_NO_AUDIENCE: "yes" }, /JWT_NO_AUDIENCE must be true or false/],
    [
      "an issuer that is no URL, with discovery",
      { JWT_ISSUER: "accounts.google.com" },
      /JWT_ISSUER must be an http\(s\) URL when discovery finds the JWKS \(or set JWKS_URL\)/,
    ],
    ["alg none", { JWT_ALGORITHMS: "none" }, /JWT_ALGORITHMS may only list/],
    ["a wildcard origin", { ALLOWED_ORIGINS: "*" }, /ALLOWED_ORIGINS entries must be exact origins/],
    ["an origin with a path", { ALLOWED_ORIGINS: "https://app.example/" }, /ALLOWED_ORIGINS/],
    [
      "a TTL over Ably's 24 h",
      { ABLY_TOKEN_TTL_SECONDS: "86401" },
      /ABLY_TOKEN_TTL_SECONDS must be a whole number from 1 to 86400/,
    ],
    ["a ban cacheTtl under KV's minimum", { BAN_CACHE_TTL_SECONDS: "5" }, /BAN_CACHE_TTL_SECONDS/],
    ["no KV binding", { BANS: undefined }, /BANS is missing/],
    [
      "a ban propagation of 0 s",
      { BAN_PROPAGATION_SECONDS: "0" },
      /BAN_PROPAGATION_SECONDS must be a whole number from 1/,
    ],
    [
      "revocable tokens without the Durable Object",
      { ABLY_REVOCABLE_TOKENS: "true", BAN_REVOCATIONS: undefined },
      /BAN_REVOCATIONS/,
    ],
  ])(
    "with %s answers 500 misconfigured, issues nothing, and says why in the log and at /healthz",
    async (_name, overrides, why) => {
      const errors = vi.spyOn(console, "error");
      const res = await getToken(await token(), "", {}, overrides);
      expect(res.status).toBe(500);
      const problem = await problemOf(res);
      expect(problem.type).toBe(`${PROBLEM_TYPE_PREFIX}misconfigured`);
      expect(problem.detail).not.toMatch(why);
      expect(JSON.stringify(errors.mock.calls)).toMatch(why);

      const health = await call("/healthz", {}, overrides);
      expect(health.status).toBe(503);
      const body = await health.json<{ problems: string[] }>();
      expect(body.problems.join("\n")).toMatch(why);
    },
  );

  it("reports every problem at once, each naming its variable", () => {
    const result = parseConfig({ ABLY_API_KEY: "bad", JWT_ALGORITHMS: "HS256" });
    expect(result.ok ? [] : result.problems).toEqual([
      "ABLY_API_KEY is not of the form <appId>.<keyId>:<secret>",
      "JWT_ISSUER is required",
      "JWT_ALGORITHMS: HS256 needs the provider's own secret (secretBinding); never a JWKS",
      "JWT_AUDIENCE is required (JWT_NO_AUDIENCE true only for tokens that carry no aud)",
      "KV namespace binding BANS is missing",
    ]);
  });

  it("takes an issuer that is no URL when JWKS_URL is given, as Google's bare accounts.google.com", async () => {
    const res = await call("/healthz", {}, { JWT_ISSUER: "accounts.google.com", JWKS_URL: "https://idp.test/jwks" });
    expect(res.status).toBe(200);
  });

  it("never shows a secret's value in a problem", async () => {
    const secret = "app.key-without-colon-SECRETVALUE";
    const res = await call("/healthz", {}, { ABLY_API_KEY: secret });
    expect(await bodyOf(res)).not.toContain("SECRETVALUE");
  });

  it.each([
    ["by default: KV's 60 s, the 60 s cache, a 60 s margin", {}, 180, false],
    ["from a longer BAN_CACHE_TTL_SECONDS", { BAN_CACHE_TTL_SECONDS: "300" }, 420, false],
    ["as set", { BAN_PROPAGATION_SECONDS: "600" }, 600, false],
    ["as set below KV's propagation plus the cache, with a warning", { BAN_PROPAGATION_SECONDS: "30" }, 30, true],
  ])("takes BAN_PROPAGATION_SECONDS %s", (_name, overrides, seconds, warned) => {
    const result = parseConfig({ ...testEnv, ...overrides });
    if (!result.ok) throw new Error(result.problems.join("; "));
    expect(result.config.banPropagationSeconds).toBe(seconds);
    expect(result.warnings.some((w) => w.includes("BAN_PROPAGATION_SECONDS"))).toBe(warned);
  });

  it("answers /healthz 200 when the configuration is valid", async () => {
    const res = await call("/healthz");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });
});

describe("the configuration parsed at startup", () => {
  it("is what an environment with the isolate's bindings gets; any other is parsed for itself", () => {
    // A handler's env is another object than the isolate's, with the same bindings.
    const [handlerEnv, another] = [{ ...env }, { ...env }];
    const startup = loadConfig(handlerEnv);
    expect(loadConfig(another)).toBe(startup);
    expect(startup).toEqual(parseConfig(handlerEnv));

    for (const overrides of [{ ABLY_TOKEN_TTL_SECONDS: "60" }, { EXTRA: "" }]) {
      const own = loadConfig({ ...env, ...overrides });
      expect(own).not.toBe(startup);
      expect(own).toEqual(parseConfig({ ...env, ...overrides }));
    }
  });
});
