/**
 * Who the caller is. Every kind of bad identity token (missing, malformed, forged, expired, for
 * someone else) ends in a clear 401 (or 431 for an absurd size) that names the failed check, never echoes the token,
 * and issues nothing; the tokens a real provider issues pass.
 */
import { base64url, SignJWT } from "jose";
import { describe, expect, it } from "vitest";
import { PROBLEM_TYPE_PREFIX } from "../../src/errors";
import { discoveryCacheKey, forgetIsolateState, jwksCacheKey } from "../../src/identity/jwks";
import { ALLOWED_ORIGIN, bodyOf, call, ISSUER, keys, problemOf, providerFetches, token, verifyAsAbly } from "./helpers";

const now = () => Math.floor(Date.now() / 1000);
const enc = (value: unknown) => base64url.encode(JSON.stringify(value));
/** A token from its parts, signature made up, for shapes no signer would produce. */
const forged = (header: unknown, payload: unknown, signature = "c2ln") => `${enc(header)}.${enc(payload)}.${signature}`;
const validClaims = () => ({ iss: ISSUER, aud: "ably-edge-auth-test", sub: "alice", iat: now(), exp: now() + 600 });

/** A token RS256-signed with WebCrypto directly, for headers jose's signer refuses to produce. */
async function signedRaw(header: Record<string, unknown>, payload: unknown) {
  const key = await crypto.subtle.importKey(
    "jwk",
    keys.rsa as JsonWebKey,
    { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" },
    false,
    ["sign"],
  );
  const input = `${enc({ alg: "RS256", kid: "rsa-1", ...header })}.${enc(payload)}`;
  const signature = await crypto.subtle.sign("RSASSA-PKCS1-v1_5", key, new TextEncoder().encode(input));
  return `${input}.${base64url.encode(new Uint8Array(signature))}`;
}

/** The public half of a private JWK, as anyone can download it from a JWKS. */
function publicHalf({ d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub }: typeof keys.rsa) {
  return pub;
}

type Case = [name: string, authorization: () => Promise<string | undefined>, status: number, code: string];

const cases: Case[] = [
  // 1. The header itself
  ["no Authorization header", async () => undefined, 401, "identity-token-missing"],
  ["a Basic scheme", async () => "Basic YWxpY2U6c2VjcmV0", 401, "identity-token-missing"],
  ["Bearer with nothing after it", async () => "Bearer", 401, "identity-token-malformed"],
  [
    "two Bearer tokens (two headers folded)",
    async () => `Bearer ${await token()}, Bearer ${await token()}`,
    401,
    "identity-token-malformed",
  ],
  // 2. Not a JWT
  ["one segment", async () => "Bearer abc", 401, "identity-token-malformed"],
  ["two segments", async () => "Bearer abc.def", 401, "identity-token-malformed"],
  ["four segments", async () => `Bearer ${await token()}.abc`, 401, "identity-token-malformed"],
  ["bad base64url", async () => "Bearer e30.e30!.c2ln", 401, "identity-token-malformed"],
  [
    "a payload that is not JSON",
    async () => `Bearer ${enc({ alg: "RS256" })}.${base64url.encode("not json")}.c2ln`,
    401,
    "identity-token-malformed",
  ],
  [
    "a JSON array payload",
    async () => `Bearer ${forged({ alg: "RS256", kid: "rsa-1" }, [1, 2])}`,
    401,
    "identity-token-malformed",
  ],
  // 3. alg none
  [
    "alg none without a signature",
    async () => `Bearer ${forged({ alg: "none" }, validClaims(), "")}`,
    401,
    "identity-token-algorithm-not-allowed",
  ],
  [
    "alg none with a signature",
    async () => `Bearer ${forged({ alg: "none" }, validClaims())}`,
    401,
    "identity-token-algorithm-not-allowed",
  ],
  // 4. Algorithm confusion: HMAC keyed with the provider's public key
  [
    "HS256 keyed with the public JWK's bytes",
    async () => {
      const secret = new TextEncoder().encode(JSON.stringify(publicHalf(keys.rsa)));
      return `Bearer ${await new SignJWT(validClaims()).setProtectedHeader({ alg: "HS256", kid: "rsa-1" }).sign(secret)}`;
    },
    401,
    "identity-token-algorithm-not-allowed",
  ],
  // 5. Keys
  [
    "signed by another key with the same kid",
    async () => `Bearer ${await token({ key: keys.attacker })}`,
    401,
    "identity-token-signature-invalid",
  ],
  [
    "an unknown kid",
    async () => `Bearer ${await token({ header: { kid: "rotated-away" } })}`,
    401,
    "identity-token-key-unknown",
  ],
  [
    "a kid with path and SQL characters",
    async () => `Bearer ${await token({ header: { kid: "../../etc/passwd' OR 1=1--" } })}`,
    401,
    "identity-token-key-unknown",
  ],
  [
    "an embedded jwk header with the attacker's key",
    async () => {
      return `Bearer ${await token({ key: keys.attacker, header: { jwk: publicHalf(keys.attacker) } })}`;
    },
    401,
    "identity-token-signature-invalid",
  ],
  [
    "a jku header pointing elsewhere",
    async () => `Bearer ${await token({ key: keys.attacker, header: { jku: "https://evil.test/jwks" } })}`,
    401,
    "identity-token-signature-invalid",
  ],
  [
    "a crit header nobody understands",
    async () => `Bearer ${await signedRaw({ crit: ["x-custom"], "x-custom": 1 }, validClaims())}`,
    401,
    "identity-token-malformed",
  ],
  // 6. Time (clock tolerance 30 s)
  ["expired", async () => `Bearer ${await token({ claims: { exp: now() - 60 } })}`, 401, "identity-token-expired"],
  ["no exp", async () => `Bearer ${await token({ claims: { exp: undefined } })}`, 401, "identity-token-claim-missing"],
  [
    "nbf in the future",
    async () => `Bearer ${await token({ claims: { nbf: now() + 120 } })}`,
    401,
    "identity-token-not-yet-valid",
  ],
  [
    "iat far in the future",
    async () => `Bearer ${await token({ claims: { iat: now() + 3600 } })}`,
    401,
    "identity-token-issued-in-future",
  ],
  [
    "exp just outside the tolerance",
    async () => `Bearer ${await token({ claims: { exp: now() - 35 } })}`,
    401,
    "identity-token-expired",
  ],
  [
    "nbf just outside the tolerance",
    async () => `Bearer ${await token({ claims: { nbf: now() + 40 } })}`,
    401,
    "identity-token-not-yet-valid",
  ],
  [
    "iat just outside the tolerance",
    async () => `Bearer ${await token({ claims: { iat: now() + 40 } })}`,
    401,
    "identity-token-issued-in-future",
  ],
  // 7. Claims
  [
    "another issuer",
    async () => `Bearer ${await token({ claims: { iss: "https://evil.test/" } })}`,
    401,
    "identity-token-issuer-mismatch",
  ],
  [
    "the issuer without its trailing slash",
    async () => `Bearer ${await token({ claims: { iss: ISSUER.replace(/\/$/, "") } })}`,
    401,
    "identity-token-issuer-mismatch",
  ],
  [
    "another audience",
    async () => `Bearer ${await token({ claims: { aud: "someone-else" } })}`,
    401,
    "identity-token-audience-mismatch",
  ],
  [
    "no audience",
    async () => `Bearer ${await token({ claims: { aud: undefined } })}`,
    401,
    "identity-token-claim-missing",
  ],
  [
    "an audience array without ours",
    async () => `Bearer ${await token({ claims: { aud: ["a", "b"] } })}`,
    401,
    "identity-token-audience-mismatch",
  ],
  ["no sub", async () => `Bearer ${await token({ claims: { sub: undefined } })}`, 401, "client-id-invalid"],
  ["an empty sub", async () => `Bearer ${await token({ claims: { sub: "" } })}`, 401, "client-id-invalid"],
  ["sub *", async () => `Bearer ${await token({ claims: { sub: "*" } })}`, 401, "client-id-invalid"],
  [
    "sub with a wildcard inside",
    async () => `Bearer ${await token({ claims: { sub: "al*ce" } })}`,
    401,
    "client-id-invalid",
  ],
  ["sub with brackets", async () => `Bearer ${await token({ claims: { sub: "[meta]x" } })}`, 401, "client-id-invalid"],
  [
    "sub with a control character",
    async () => `Bearer ${await token({ claims: { sub: "al\nice" } })}`,
    401,
    "client-id-invalid",
  ],
  ["sub ..", async () => `Bearer ${await token({ claims: { sub: ".." } })}`, 401, "client-id-invalid"],
  ["sub that is a number", async () => `Bearer ${await token({ claims: { sub: 42 } })}`, 401, "client-id-invalid"],
  [
    "sub longer than 256 bytes",
    async () => `Bearer ${await token({ claims: { sub: "é".repeat(129) } })}`,
    401,
    "client-id-invalid",
  ],
  // 8. Tampering
  [
    "a tampered payload with the original signature",
    async () => {
      const [h, , s] = (await token()).split(".");
      return `Bearer ${h}.${enc({ ...validClaims(), sub: "admin" })}.${s}`;
    },
    401,
    "identity-token-signature-invalid",
  ],
  // 9. Sizes
  ["a 64 KiB token", async () => `Bearer ${"a".repeat(65_536)}`, 431, "identity-token-too-large"],
  ["a 1 MiB token", async () => `Bearer ${"a".repeat(1_048_576)}`, 431, "identity-token-too-large"],
  // The limit is the token's, not the header's: `Bearer ` is not counted.
  [
    "a token of exactly 16384 bytes (read, and refused as no JWT)",
    async () => `Bearer ${"a".repeat(16_384)}`,
    401,
    "identity-token-malformed",
  ],
  ["a token of 16385 bytes", async () => `Bearer ${"a".repeat(16_385)}`, 431, "identity-token-too-large"],
  // 10. A second, real issuer whose JWKS reuses our kid
  [
    "a token from another trusted issuer",
    async () => {
      const jwt = await token({ key: keys.other, claims: { iss: "https://other-idp.test/" } });
      return `Bearer ${jwt}`;
    },
    401,
    "identity-token-issuer-mismatch",
  ],
  [
    "our issuer, signed by the other issuer's key with our kid",
    async () => `Bearer ${await token({ key: keys.other })}`,
    401,
    "identity-token-signature-invalid",
  ],
];

describe("identity tokens that must be refused", () => {
  const rows = cases.map(([name, authorization, status, code]) => ({ name, authorization, status, code }));
  it.each(rows)("$name → $status $code", async ({ authorization, status, code }) => {
    const value = await authorization();
    const res = await call("/auth", { headers: value === undefined ? {} : { Authorization: value } });
    expect(res.status).toBe(status);
    expect(res.headers.get("cache-control")).toBe("no-store");
    const body = await bodyOf(res);
    const problem = JSON.parse(body) as { type: string; detail: string };
    expect(problem.type).toBe(PROBLEM_TYPE_PREFIX + code);
    // Never echo the token, or any segment of it.
    for (const segment of (value ?? "").replace(/^\S+\s*/, "").split(/[.,\s]/)) {
      if (segment.length > 8) expect(body).not.toContain(segment);
    }
    if (status === 401) {
      expect(res.headers.get("www-authenticate")).toBe(
        code === "identity-token-missing" ? "Bearer" : 'Bearer error="invalid_token"',
      );
    }
  });
});

describe("identity tokens that pass", () => {
  it.each([
    ["a lowercase scheme", async () => `bearer ${await token()}`],
    ["several spaces after the scheme", async () => `Bearer    ${await token()}`],
    [
      "an audience array containing ours",
      async () => `Bearer ${await token({ claims: { aud: ["other", "ably-edge-auth-test"] } })}`,
    ],
    ["no kid, when the algorithm picks one key", async () => `Bearer ${await token({ header: { kid: undefined } })}`],
    ["exp just inside the tolerance", async () => `Bearer ${await token({ claims: { exp: now() - 20 } })}`],
    ["nbf just inside the tolerance", async () => `Bearer ${await token({ claims: { nbf: now() + 20 } })}`],
    ["iat just inside the tolerance", async () => `Bearer ${await token({ claims: { iat: now() + 20 } })}`],
    ["no iat at all", async () => `Bearer ${await token({ claims: { iat: undefined } })}`],
  ])("%s", async (_name, authorization) => {
    const res = await call("/auth", { headers: { Authorization: await authorization() } });
    expect(res.status).toBe(200);
  });

  it("accepts any audience listed in JWT_AUDIENCE", async () => {
    const jwt = await token({ claims: { aud: "second" } });
    const res = await call("/auth", { headers: { Authorization: `Bearer ${jwt}` } }, { JWT_AUDIENCE: "first, second" });
    expect(res.status).toBe(200);
  });

  it("accepts tokens without aud only with JWT_NO_AUDIENCE=true", async () => {
    const jwt = await token({ claims: { aud: undefined } });
    const res = await call(
      "/auth",
      { headers: { Authorization: `Bearer ${jwt}` } },
      { JWT_AUDIENCE: "", JWT_NO_AUDIENCE: "true" },
    );
    expect(res.status).toBe(200);
  });

  it("refuses ES256 when JWT_ALGORITHMS pins RS256", async () => {
    const res = await call(
      "/auth",
      { headers: { Authorization: `Bearer ${await token({ key: keys.ec })}` } },
      { JWT_ALGORITHMS: "RS256" },
    );
    expect(res.status).toBe(401);
    expect((await problemOf(res)).type).toBe(`${PROBLEM_TYPE_PREFIX}identity-token-algorithm-not-allowed`);
  });
});

describe("the identity cookie (IDENTITY_COOKIE)", () => {
  const withCookie = { IDENTITY_COOKIE: "id_token" };

  it("is read when no Authorization header is sent, from the worker's own page", async () => {
    const res = await call(
      "/auth",
      { headers: { Cookie: `id_token=${await token()}`, "Sec-Fetch-Site": "same-origin" } },
      withCookie,
    );
    expect(res.status).toBe(200);
  });

  // A browser attaches the cookie by itself, also to an <img> or a navigation from another site of
  // the same registrable domain (SameSite=Strict lets it through), which sends no Origin.
  it.each<[string, Record<string, string>, number, string?]>([
    ["an allowed Origin", { Origin: ALLOWED_ORIGIN, "Sec-Fetch-Site": "cross-site" }, 200],
    ["the worker's own Origin", { Origin: "https://auth.test" }, 200],
    ["Sec-Fetch-Site same-origin without Origin (a same-origin GET)", { "Sec-Fetch-Site": "same-origin" }, 200],
    ["no Origin and no Sec-Fetch-Site", {}, 403, "origin-not-allowed"],
    [
      "an <img> from a same-site page: Sec-Fetch-Site same-site, no Origin",
      { "Sec-Fetch-Site": "same-site", "Sec-Fetch-Dest": "image" },
      403,
      "origin-not-allowed",
    ],
    [
      "a navigation typed by the user: Sec-Fetch-Site none",
      { "Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate" },
      403,
      "origin-not-allowed",
    ],
    ["an Origin not on the list", { Origin: "https://evil.example" }, 403, "origin-not-allowed"],
  ])("with %s: %i", async (_name, headers, status, code) => {
    const res = await call("/auth", { headers: { Cookie: `id_token=${await token()}`, ...headers } }, withCookie);
    expect(res.status).toBe(status);
    if (code) expect((await problemOf(res)).type).toBe(PROBLEM_TYPE_PREFIX + code);
  });

  it("is refused when sent twice (a cookie planted by a sibling subdomain), whichever comes first", async () => {
    const mine = await token({ claims: { sub: "victim" } });
    const planted = await token({ claims: { sub: "attacker" } });
    for (const cookie of [`id_token=${planted}; id_token=${mine}`, `id_token=${mine}; other=1; id_token=${planted}`]) {
      const res = await call("/auth", { headers: { Cookie: cookie, "Sec-Fetch-Site": "same-origin" } }, withCookie);
      expect(res.status).toBe(401);
      expect((await problemOf(res)).type).toBe(`${PROBLEM_TYPE_PREFIX}identity-token-ambiguous`);
    }
    // A cookie whose name merely ends like it is another cookie.
    const res = await call(
      "/auth",
      { headers: { Cookie: `x_id_token=${planted}; id_token=${mine}`, "Sec-Fetch-Site": "same-origin" } },
      withCookie,
    );
    expect(res.status).toBe(200);
    expect((await verifyAsAbly(res)).clientId).toBe("victim");
  });

  it("loses to the Authorization header when both are sent", async () => {
    const good = await token();
    const headerWins = await call(
      "/auth",
      { headers: { Authorization: `Bearer ${good}`, Cookie: "id_token=garbage" } },
      withCookie,
    );
    expect(headerWins.status).toBe(200);
    const headerBad = await call(
      "/auth",
      { headers: { Authorization: "Bearer garbage", Cookie: `id_token=${good}` } },
      withCookie,
    );
    expect(headerBad.status).toBe(401);
  });

  it("is ignored unless configured", async () => {
    const res = await call("/auth", { headers: { Cookie: `id_token=${await token()}` } });
    expect(res.status).toBe(401);
  });

  it("is never taken from the query string", async () => {
    const res = await call(`/auth?access_token=${await token()}&token=${await token()}`);
    expect(res.status).toBe(401);
    expect((await problemOf(res)).type).toBe(`${PROBLEM_TYPE_PREFIX}identity-token-missing`);
  });
});

describe("the provider's keys", () => {
  it("refuses tokens with 401 key-unknown when the provider publishes an empty key set", async () => {
    const res = await call(
      "/auth",
      { headers: { Authorization: `Bearer ${await token()}` } },
      { JWKS_URL: "https://empty.test/jwks" },
    );
    expect(res.status).toBe(401);
    expect((await problemOf(res)).type).toBe(`${PROBLEM_TYPE_PREFIX}identity-token-key-unknown`);
  });

  const authorized = async () => ({ headers: { Authorization: `Bearer ${await token()}` } });

  it("finds the JWKS through OIDC discovery and fetches neither again for later requests", async () => {
    // A location that has never seen the provider, whatever the tests before this one did.
    forgetIsolateState();
    await caches.default.delete(discoveryCacheKey(ISSUER));
    await caches.default.delete(jwksCacheKey(ISSUER, "https://idp.test/jwks"));
    const before = await providerFetches();
    for (let i = 0; i < 5; i++) expect((await call("/auth", await authorized())).status).toBe(200);
    const after = await providerFetches();
    const grew = (path: string) => (after[path] ?? 0) - (before[path] ?? 0);
    expect(grew("idp.test/.well-known/openid-configuration")).toBe(1);
    expect(grew("idp.test/jwks")).toBe(1);
  });

  it("uses JWKS_URL without discovery when it is set", async () => {
    const before = (await providerFetches())["idp.test/.well-known/openid-configuration"] ?? 0;
    const res = await call("/auth", await authorized(), { JWKS_URL: "https://idp.test/jwks" });
    expect(res.status).toBe(200);
    expect((await providerFetches())["idp.test/.well-known/openid-configuration"] ?? 0).toBe(before);
  });

  it("never fetches keys for a token it can refuse without them", async () => {
    const before = await providerFetches();
    const garbage = [
      "Bearer abc.def.ghi",
      `Bearer ${await token({ claims: { iss: "https://down.test/" } })}`,
      `Bearer ${forged({ alg: "HS256", kid: "x" }, validClaims())}`,
    ];
    for (const authorization of garbage) {
      expect(
        (await call("/auth", { headers: { Authorization: authorization } }, { JWKS_URL: "https://down.test/jwks" }))
          .status,
      ).toBe(401);
    }
    expect(await providerFetches()).toEqual(before);
  });

  it.each<[string, Record<string, string>]>([
    ["the JWKS answers 500", { JWKS_URL: "https://down.test/jwks" }],
    ["the JWKS answers HTML", { JWKS_URL: "https://html.test/jwks" }],
    ["discovery answers 500", { JWT_ISSUER: "https://down.test/" }],
    ["discovery names another issuer", { JWT_ISSUER: "https://liar.test/" }],
    ["the JWKS is not valid JSON", { JWKS_URL: "https://badjson.test/jwks" }],
    ["the JWKS redirects (a JWKS URL must answer itself)", { JWKS_URL: "https://redirect.test/jwks" }],
    ["the JWKS answers only after the 3 s timeout", { JWKS_URL: "https://slow.test/jwks" }],
  ])("answers 503 with Retry-After when %s, and issues nothing", async (_name, overrides) => {
    const issuer = overrides.JWT_ISSUER ?? ISSUER;
    const jwt = await token({ claims: { iss: issuer } });
    const res = await call("/auth", { headers: { Authorization: `Bearer ${jwt}` } }, overrides);
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("10");
    expect((await problemOf(res)).type).toBe(`${PROBLEM_TYPE_PREFIX}identity-provider-unavailable`);
  });
});
