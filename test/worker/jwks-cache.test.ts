/**
 * How often the identity provider is asked for its keys (src/identity/jwks.ts): counts of fetches, never
 * times. Each test uses a JWKS URL of its own (the stand-in provider ignores the query string but
 * counts every fetch of idp.test/jwks), so it starts with a cold resolver and an empty location
 * cache. A "second isolate" is this one after forgetIsolateState(): empty memory, same location cache.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { JWKS_CACHE_MAX_AGE_MS, JWKS_COOLDOWN_MS, JWKS_STALE_IF_ERROR_MS } from "../../src/constants";
import { PROBLEM_TYPE_PREFIX } from "../../src/errors";
import { forgetIsolateState, jwksCacheKey } from "../../src/identity/jwks";
import { getToken, ISSUER, keys, problemOf, providerFetches, token } from "./helpers";

/** How many fetches of `path` (host and path, e.g. `idp.test/jwks`) `during` caused. */
async function fetchesOf(path: string, during: () => Promise<unknown>): Promise<number> {
  const before = (await providerFetches())[path] ?? 0;
  await during();
  return ((await providerFetches())[path] ?? 0) - before;
}

let urls = 0;
/** A JWKS URL no test has used: a cold resolver, nothing in the location cache. */
const freshJwksUrl = () => `https://idp.test/jwks?test=${++urls}`;

/** The clock `ms` ahead, for this module's Date.now() only (tokens are made before moving it). */
const clockAhead = (ms: number) => vi.spyOn(Date, "now").mockReturnValue(Date.now() + ms);

const statuses = (responses: Response[]) => responses.map((r) => r.status);
const all = <T>(n: number, f: () => Promise<T>) => Promise.all(Array.from({ length: n }, f));

afterEach(() => vi.restoreAllMocks());

describe("one JWKS fetch per location", () => {
  it("50 concurrent requests on a cold resolver fetch the JWKS exactly once", async () => {
    const env = { JWKS_URL: freshJwksUrl() };
    const jwt = await token();
    let responses: Response[] = [];
    expect(
      await fetchesOf("idp.test/jwks", async () => {
        responses = await all(50, () => getToken(jwt, "", {}, env));
      }),
    ).toBe(1);
    expect(new Set(statuses(responses))).toEqual(new Set([200]));
  });

  it("a second isolate reads the location's cache instead of fetching", async () => {
    const env = { JWKS_URL: freshJwksUrl() };
    const jwt = await token();
    expect(await fetchesOf("idp.test/jwks", () => getToken(jwt, "", {}, env))).toBe(1);
    forgetIsolateState();
    let responses: Response[] = [];
    expect(
      await fetchesOf("idp.test/jwks", async () => {
        responses = await all(50, () => getToken(jwt, "", {}, env));
      }),
    ).toBe(0);
    expect(new Set(statuses(responses))).toEqual(new Set([200]));
  });

  it("a second isolate needs no discovery fetch either", async () => {
    const jwt = await token();
    expect((await getToken(jwt)).status).toBe(200);
    forgetIsolateState();
    const before = await providerFetches();
    expect((await getToken(jwt)).status).toBe(200);
    expect(await providerFetches()).toEqual(before);
  });

  it("keys past their max age are fetched again once, and the other isolates take the new ones", async () => {
    const env = { JWKS_URL: freshJwksUrl() };
    const jwt = await token();
    await getToken(jwt, "", {}, env);
    clockAhead(JWKS_CACHE_MAX_AGE_MS + 1_000);
    expect(await fetchesOf("idp.test/jwks", () => all(50, () => getToken(jwt, "", {}, env)))).toBe(1);
    forgetIsolateState();
    expect(await fetchesOf("idp.test/jwks", () => all(20, () => getToken(jwt, "", {}, env)))).toBe(0);
  });
});

describe("unknown kids", () => {
  const unknownKid = () => token({ header: { kid: `made-up-${crypto.randomUUID()}` } });

  it("cause no refetch within the cooldown of the last fetch", async () => {
    const env = { JWKS_URL: freshJwksUrl() };
    await getToken(await token(), "", {}, env);
    const jwts = await all(30, unknownKid);
    let responses: Response[] = [];
    expect(
      await fetchesOf("idp.test/jwks", async () => {
        responses = await Promise.all(jwts.map((jwt) => getToken(jwt, "", {}, env)));
      }),
    ).toBe(0);
    expect(new Set(statuses(responses))).toEqual(new Set([401]));
    expect((await problemOf(responses[0]!)).type).toBe(`${PROBLEM_TYPE_PREFIX}identity-token-key-unknown`);
  });

  it("cause at most one refetch per cooldown, in this isolate and in the location's others", async () => {
    const env = { JWKS_URL: freshJwksUrl() };
    await getToken(await token(), "", {}, env);
    const jwts = await all(40, unknownKid);
    clockAhead(JWKS_COOLDOWN_MS + 1_000);
    expect(
      await fetchesOf("idp.test/jwks", async () => {
        await Promise.all(jwts.slice(0, 30).map((jwt) => getToken(jwt, "", {}, env))); // concurrent
        for (const jwt of jwts.slice(30, 35)) await getToken(jwt, "", {}, env); // one after another
        forgetIsolateState(); // another isolate of the location: the cached entry records the ask
        for (const jwt of jwts.slice(35)) await getToken(jwt, "", {}, env);
      }),
    ).toBe(1);
  });
});

describe("a provider that cannot be reached", () => {
  /** Puts the provider's real keys in the location cache for `jwksUrl`, as fetched `age` ms ago. */
  async function cachedKeys(jwksUrl: string, age: number) {
    const jwks = await (await fetch("https://idp.test/jwks")).json();
    const fetchedAt = Date.now() - age;
    const body = JSON.stringify({ jwks, fetchedAt, askedAt: fetchedAt });
    await caches.default.put(
      jwksCacheKey(ISSUER, jwksUrl),
      new Response(body, { headers: { "Cache-Control": "max-age=86400" } }),
    );
  }

  it("keeps verifying with the last good keys, and asks it again only after the cooldown", async () => {
    const jwksUrl = "https://down.test/jwks?stale=1";
    await cachedKeys(jwksUrl, JWKS_CACHE_MAX_AGE_MS + 60_000);
    const jwt = await token();
    expect(
      await fetchesOf("down.test/jwks", async () => {
        expect((await getToken(jwt, "", {}, { JWKS_URL: jwksUrl })).status).toBe(200);
        expect((await getToken(jwt, "", {}, { JWKS_URL: jwksUrl })).status).toBe(200);
        forgetIsolateState();
        expect((await getToken(jwt, "", {}, { JWKS_URL: jwksUrl })).status).toBe(200);
      }),
    ).toBe(1);
  });

  it("answers 503 once the last good keys are older than JWKS_STALE_IF_ERROR_MS", async () => {
    const jwksUrl = "https://down.test/jwks?stale=2";
    await cachedKeys(jwksUrl, JWKS_STALE_IF_ERROR_MS + 60_000);
    const res = await getToken(await token(), "", {}, { JWKS_URL: jwksUrl });
    expect(res.status).toBe(503);
    expect((await problemOf(res)).type).toBe(`${PROBLEM_TYPE_PREFIX}identity-provider-unavailable`);
  });
});

describe("two issuers whose keys share a kid", () => {
  const OTHER = "https://other-idp.test/";
  const ours = { JWKS_URL: "https://idp.test/jwks?pair=1" };
  const theirs = { JWT_ISSUER: OTHER, JWKS_URL: "https://other-idp.test/jwks?pair=1" };

  it("never verify each other's tokens, whichever set was fetched first", async () => {
    // Both key sets in memory and in the location cache, each under its own issuer.
    expect((await getToken(await token({ key: keys.other, claims: { iss: OTHER } }), "", {}, theirs)).status).toBe(200);
    expect((await getToken(await token(), "", {}, ours)).status).toBe(200);
    for (const isolate of ["warm", "fresh"]) {
      if (isolate === "fresh") forgetIsolateState();
      const ourIssuerTheirKey = await getToken(await token({ key: keys.other }), "", {}, ours);
      const theirIssuerOurKey = await getToken(await token({ claims: { iss: OTHER } }), "", {}, theirs);
      for (const res of [ourIssuerTheirKey, theirIssuerOurKey]) {
        expect(res.status).toBe(401);
        expect((await problemOf(res)).type).toBe(`${PROBLEM_TYPE_PREFIX}identity-token-signature-invalid`);
      }
    }
  });

  it("have different cache keys even for one JWKS URL", () => {
    const url = "https://idp.test/jwks";
    expect(jwksCacheKey(ISSUER, url)).not.toBe(jwksCacheKey(OTHER, url));
    expect(jwksCacheKey(ISSUER, url)).not.toBe(jwksCacheKey(ISSUER, `${url}?x=1`));
  });
});

describe("the global scope", () => {
  it("does no I/O and imports no key when the worker is loaded", async () => {
    const spies = [
      vi.spyOn(globalThis, "fetch"),
      vi.spyOn(crypto.subtle, "importKey"),
      vi.spyOn(caches.default, "match"),
      vi.spyOn(caches.default, "put"),
    ];
    vi.resetModules();
    const fresh = (await import("../../src/index")) as { default: { fetch: unknown } };
    expect(typeof fresh.default.fetch).toBe("function");
    for (const spy of spies) expect(spy).not.toHaveBeenCalled();
  });
});
