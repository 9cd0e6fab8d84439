/**
 * Where an identity provider's keys come from: its JWKS URL, configured or found through OIDC
 * discovery. One jose remote key set per isolate for each (issuer, JWKS URL) pair, never shared
 * across issuers, so one provider's keys can never verify another provider's tokens.
 */
import { createRemoteJWKSet, type JWTVerifyGetKey } from "jose";
import type { ProviderConfig } from "./config";
import {
  DISCOVERY_CACHE_MS,
  JWKS_CACHE_MAX_AGE_MS,
  JWKS_COOLDOWN_MS,
  UPSTREAM_TIMEOUT_MS,
} from "./constants";
import { Problem } from "./errors";

const keySets = new Map<string, JWTVerifyGetKey>();
const discovered = new Map<string, { readonly jwksUrl: Promise<string>; readonly until: number }>();

/**
 * The key resolver for a provider, created once per isolate. Failing to get the key set at all
 * (timeout, non-200, not JSON, discovery failure) is the provider's fault: `identity-provider-unavailable`.
 * A key set without a key for the token is the token's: jose's ERR_JWKS_NO_MATCHING_KEY passes through.
 */
export function keyResolver(provider: ProviderConfig): JWTVerifyGetKey {
  return async function resolveKey(header, token) {
    const jwksUrl = provider.jwksUrl ?? (await discoverJwksUrl(provider.issuer));
    const id = `${provider.issuer}\n${jwksUrl}`;
    let keySet = keySets.get(id);
    if (!keySet) {
      keySet = createRemoteJWKSet(new URL(jwksUrl), {
        timeoutDuration: UPSTREAM_TIMEOUT_MS,
        cooldownDuration: JWKS_COOLDOWN_MS,
        cacheMaxAge: JWKS_CACHE_MAX_AGE_MS,
      });
      keySets.set(id, keySet);
    }
    try {
      return await keySet(header, token);
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === "ERR_JWKS_NO_MATCHING_KEY" || code === "ERR_JWKS_MULTIPLE_MATCHING_KEYS") throw error;
      throw new Problem(
        "identity-provider-unavailable",
        `Could not fetch the identity provider's keys (${code ?? "network error"}).`,
      );
    }
  };
}

/** The `jwks_uri` of the issuer's OIDC discovery document, cached per isolate; failures are not cached. */
function discoverJwksUrl(issuer: string): Promise<string> {
  const hit = discovered.get(issuer);
  if (hit && hit.until > Date.now()) return hit.jwksUrl;
  const jwksUrl = fetchDiscovery(issuer);
  discovered.set(issuer, { jwksUrl, until: Date.now() + DISCOVERY_CACHE_MS });
  jwksUrl.catch(() => discovered.delete(issuer));
  return jwksUrl;
}

async function fetchDiscovery(issuer: string): Promise<string> {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  const fail = (why: string) =>
    new Problem("identity-provider-unavailable", `OIDC discovery at ${url} failed: ${why}.`);
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
    });
  } catch (error) {
    throw fail((error as Error).name === "TimeoutError" ? "timed out" : "network error");
  }
  if (response.status !== 200) throw fail(`HTTP ${response.status}`);
  let doc: { issuer?: unknown; jwks_uri?: unknown };
  try {
    doc = await response.json();
  } catch {
    throw fail("not JSON");
  }
  // OIDC Discovery 1.0 section 4.3: the document's issuer must be the one we asked.
  if (doc?.issuer !== issuer) throw fail("its issuer differs from JWT_ISSUER");
  const jwksUri = doc.jwks_uri;
  if (typeof jwksUri !== "string" || !/^https?:\/\//.test(jwksUri)) throw fail("no usable jwks_uri");
  return jwksUri;
}
