/**
 * Where an identity provider's keys come from, and how rarely we ask for them.
 *
 * The keys are the provider's JWKS: JWKS_URL, or the `jwks_uri` of its OIDC discovery document.
 * Everything here is keyed by issuer AND JWKS URL, never by `kid` alone, so one provider's keys
 * can never verify another provider's tokens.
 *
 * Not jose's createRemoteJWKSet: its cache lives in one isolate, and on Workers it never shares a
 * pending fetch between concurrent requests (jose #355, #509), so a cold isolate under a burst
 * fetches once per request and every isolate of every location fetches for itself. Instead:
 *  - one fetch at a time per isolate, shared by the requests that need it (single flight);
 *  - its result, with when it was fetched, in the location's Cache API (`caches.default`), which
 *    the location's other isolates read instead of fetching;
 *  - jose's createLocalJWKSet picks the key and keeps the imported CryptoKeys.
 * Keys older than JWKS_CACHE_MAX_AGE_MS are fetched again. An unknown `kid` fetches again only if
 * nobody in this location asked the provider within JWKS_COOLDOWN_MS (the ask is recorded in the
 * cached entry). When the provider fails, the last good keys keep verifying for up to
 * JWKS_STALE_IF_ERROR_MS, and the failed ask counts for the cooldown, so an outage is not retried on
 * every request. The discovery document (the JWKS URL) is kept the same way. On workers.dev the
 * Cache API stores nothing: the sharing is then per isolate only.
 */
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";
import type { ProviderConfig } from "./providers";
import {
  DISCOVERY_CACHE_MS,
  FAILED_ASK_MEMORY_MS,
  DISCOVERY_TIMEOUT_MS,
  JWKS_CACHE_MAX_AGE_MS,
  JWKS_COOLDOWN_MS,
  JWKS_FETCH_TIMEOUT_MS,
  JWKS_REFRESH_SPREAD_MS,
  JWKS_STALE_IF_ERROR_MS,
} from "../constants";
import { Problem } from "../errors";
import { forgetFlights, singleFlight } from "../single-flight";
import { callUpstream, type Failure, jsonBody } from "../upstream";

/** A provider's key set as this location last got it, as stored in the Cache API. Times in ms since the epoch. */
interface KeySet {
  readonly jwks: JSONWebKeySet;
  /** When the provider served these keys. */
  readonly fetchedAt: number;
  /** When this location last asked the provider, whether or not it answered. */
  readonly askedAt: number;
}

/** A key set ready to verify with. */
interface Keys extends KeySet {
  readonly getKey: JWTVerifyGetKey;
}

/** This isolate's keys by jwksCacheKey(issuer, JWKS URL), and its discovered JWKS URLs by issuer. */
const keys = new Map<string, Keys>();
const discovered = new Map<string, Discovery>();
/** Asks that failed with nothing to fall back on, by the same ids, with when (ms since the epoch). */
const failures = new Map<string, { readonly at: number; readonly error: unknown }>();

/** An issuer's JWKS URL from its discovery document, as this isolate or location last got it. Times in ms. */
interface Discovery {
  readonly jwksUrl: string;
  readonly fetchedAt: number;
  readonly askedAt: number;
}

/** How much before JWKS_CACHE_MAX_AGE_MS this isolate refreshes; drawn on first use, not at global scope. */
let earliness: number | undefined;

const askedRecently = (set: KeySet, now = Date.now()) => now < set.askedAt + JWKS_COOLDOWN_MS;

/** Time to ask the provider again: the keys are old, and we have not just asked (and failed). */
function isDue(set: KeySet, now = Date.now()): boolean {
  earliness ??= Math.random() * JWKS_REFRESH_SPREAD_MS;
  return now >= set.fetchedAt + JWKS_CACHE_MAX_AGE_MS - earliness && !askedRecently(set, now);
}

/** Where a provider's keys are: all the resolver needs of it. */
type KeySource = Pick<ProviderConfig, "issuer" | "jwksUrl">;

/** This isolate's resolver for each provider (a WeakMap: configurations are per isolate too). */
let resolvers = new WeakMap<KeySource, JWTVerifyGetKey>();

/**
 * The key resolver for a provider, made once per isolate. Failing to get any usable key set
 * (timeout, non-200, not a JWKS, discovery failure) is the provider's fault:
 * `identity-provider-unavailable`. A key set without a key for the token is the token's: jose's
 * ERR_JWKS_NO_MATCHING_KEY passes through.
 */
export function keyResolver(provider: KeySource): JWTVerifyGetKey {
  let resolver = resolvers.get(provider);
  if (!resolver) {
    resolver = makeResolver(provider);
    resolvers.set(provider, resolver);
  }
  return resolver;
}

function makeResolver(provider: KeySource): JWTVerifyGetKey {
  // The cache key, computed once per JWKS URL rather than on every request.
  let memo = { jwksUrl: "", id: "" };
  return async function resolveKey(header, token) {
    const jwksUrl = provider.jwksUrl ?? (await discoverJwksUrl(provider.issuer));
    if (memo.jwksUrl !== jwksUrl) memo = { jwksUrl, id: jwksCacheKey(provider.issuer, jwksUrl) };
    const { id } = memo;
    let current = keys.get(id);
    if (!current || isDue(current)) current = await refresh(id, jwksUrl, (cached) => !isDue(cached));
    try {
      return await keyFor(current, header, token);
    } catch (error) {
      // An unknown kid may be a key the provider has just rotated in: ask again, unless this
      // location asked within the cooldown, so tokens with made-up kids cannot hammer the provider.
      if (codeOf(error) !== "ERR_JWKS_NO_MATCHING_KEY" || askedRecently(current)) throw error;
      current = await refresh(id, jwksUrl, (cached) => askedRecently(cached));
      return await keyFor(current, header, token);
    }
  };
}

/** The key for a token; a key set whose keys do not import is the provider's fault. */
async function keyFor(set: Keys, ...args: Parameters<JWTVerifyGetKey>) {
  try {
    return await set.getKey(...args);
  } catch (error) {
    const code = codeOf(error);
    if (code === "ERR_JWKS_NO_MATCHING_KEY" || code === "ERR_JWKS_MULTIPLE_MATCHING_KEYS") throw error;
    throw unavailable(`its keys are unusable (${code ?? "unknown error"})`);
  }
}

/** The refresh of `id` this isolate has in flight, started if there is none: concurrent requests share it. */
function refresh(id: string, jwksUrl: string, acceptCached: (set: KeySet) => boolean): Promise<Keys> {
  return singleFlight(
    id,
    () => load(id, jwksUrl, acceptCached),
    () => unavailable("timed out"),
  );
}

/**
 * A fresh answer from the provider, else (it failing) the last good one if younger than
 * JWKS_STALE_IF_ERROR_MS, its failed ask recorded for the cooldown. With nothing to fall back on,
 * the failure itself is kept: for FAILED_ASK_MEMORY_MS this isolate answers with it without asking,
 * so tokens cannot make the worker ask a provider that is down (or was never there) per request.
 */
async function askProvider<T extends { readonly fetchedAt: number; readonly askedAt: number }>(
  id: string,
  ask: (now: number) => Promise<T>,
  last: T | undefined,
): Promise<T> {
  const now = Date.now();
  const usable = last && now < last.fetchedAt + JWKS_STALE_IF_ERROR_MS ? last : undefined;
  const failed = failures.get(id);
  if (failed && !usable && now < failed.at + FAILED_ASK_MEMORY_MS) throw failed.error;
  try {
    const fresh = await ask(now);
    failures.delete(id);
    return fresh;
  } catch (error) {
    if (usable) return { ...usable, askedAt: now };
    failures.set(id, { at: now, error });
    throw error;
  }
}

/** Of two cached answers, the one the provider gave last. */
function newest<T extends { readonly fetchedAt: number }>(a: T | undefined, b: T | undefined): T | undefined {
  return !a || (b && b.fetchedAt > a.fetchedAt) ? b : a;
}

/**
 * Keys for `id`: the location's cached set when `acceptCached` takes it, else the provider's, else
 * (the provider failing) the newest set we have if it is younger than JWKS_STALE_IF_ERROR_MS.
 * Whatever the provider said, the outcome goes to the location's cache for the other isolates.
 */
async function load(id: string, jwksUrl: string, acceptCached: (set: KeySet) => boolean): Promise<Keys> {
  const cached = await readCache(id);
  if (cached && acceptCached(cached)) {
    keys.set(id, cached);
    return cached;
  }
  const next = await askProvider(id, () => fetchKeys(jwksUrl), newest(keys.get(id), cached));
  keys.set(id, next);
  await cachePut(id, { jwks: next.jwks, fetchedAt: next.fetchedAt, askedAt: next.askedAt }, JWKS_STALE_IF_ERROR_MS);
  return next;
}

/** The provider's keys, fetched now. Any failure (timeout, not 200, not a JWKS) is `identity-provider-unavailable`. */
async function fetchKeys(jwksUrl: string): Promise<Keys> {
  const fetchedAt = Date.now();
  const jwks = await fetchJson<JSONWebKeySet>(
    jwksUrl,
    "application/jwk-set+json, application/json",
    JWKS_FETCH_TIMEOUT_MS,
    unavailable,
  );
  try {
    return { jwks, fetchedAt, askedAt: fetchedAt, getKey: createLocalJWKSet(jwks) };
  } catch {
    throw unavailable("not a JWKS");
  }
}

/** GETs a JSON document from the provider; any failure (timeout, network, not 200, not JSON) is `fail(why)`. */
async function fetchJson<T>(url: string, accept: string, timeoutMs: number, fail: Failure): Promise<T> {
  return jsonBody<T>(await callUpstream(url, { headers: { accept }, timeoutMs, accept: [200] }, fail), fail);
}

/** The location's cached key set for `id`; anything unusable there is a miss. */
async function readCache(id: string): Promise<Keys | undefined> {
  const set = (await cacheGet(id)) as Partial<KeySet> | undefined;
  if (!set?.jwks || !Number.isFinite(set.fetchedAt) || !Number.isFinite(set.askedAt)) return undefined;
  try {
    return { ...(set as KeySet), getKey: createLocalJWKSet(set.jwks) };
  } catch {
    return undefined;
  }
}

/**
 * The key of a provider's keys, in memory and in the location's cache: issuer AND JWKS URL. On the
 * JWKS host, under a path of ours, so it never collides with the JWKS response itself.
 */
export function jwksCacheKey(issuer: string, jwksUrl: string): string {
  return `https://${new URL(jwksUrl).host}/.ably-edge-auth/jwks-v1?${new URLSearchParams({ issuer, jwksUrl }).toString()}`;
}

/** The key of an issuer's discovery answer in the location's cache, beside its keys'. */
export function discoveryCacheKey(issuer: string): string {
  return `https://${new URL(issuer).host}/.ably-edge-auth/discovery-v2?${new URLSearchParams({ issuer }).toString()}`;
}

/** Forgets what this isolate holds, as a fresh isolate starts; the location's cache stays. For tests. */
export function forgetIsolateState(): void {
  resolvers = new WeakMap();
  keys.clear();
  failures.clear();
  forgetFlights();
  discovered.clear();
  earliness = undefined;
}

/**
 * The `jwks_uri` of the issuer's OIDC discovery document, kept like the keys: fresh for
 * DISCOVERY_CACHE_MS in this isolate and location; then asked again, one ask in flight per isolate;
 * while the provider fails, the last good answer serves for up to JWKS_STALE_IF_ERROR_MS and the
 * failed ask counts for the JWKS_COOLDOWN_MS, so an outage costs one ask per 30 s, not one per request.
 */
async function discoverJwksUrl(issuer: string): Promise<string> {
  const hit = discovered.get(issuer);
  if (hit && isCurrent(hit)) return hit.jwksUrl;
  const key = discoveryCacheKey(issuer);
  return (
    await singleFlight(
      key,
      () => rediscover(issuer, key),
      () => unavailable("timed out"),
    )
  ).jwksUrl;
}

const isCurrent = (d: Discovery, now = Date.now()) =>
  now < d.fetchedAt + DISCOVERY_CACHE_MS || now < d.askedAt + JWKS_COOLDOWN_MS;

async function rediscover(issuer: string, key: string): Promise<Discovery> {
  const stored = (await cacheGet(key)) as Partial<Discovery> | undefined;
  const cached =
    typeof stored?.jwksUrl === "string" && Number.isFinite(stored.fetchedAt) && Number.isFinite(stored.askedAt)
      ? (stored as Discovery)
      : undefined;
  let next: Discovery;
  if (cached && isCurrent(cached)) {
    next = cached;
  } else {
    const ask = async (now: number) => ({ jwksUrl: await fetchDiscovery(issuer), fetchedAt: now, askedAt: now });
    next = await askProvider(key, ask, newest(discovered.get(issuer), cached));
    await cachePut(key, next, JWKS_STALE_IF_ERROR_MS);
  }
  discovered.set(issuer, next);
  return next;
}

async function fetchDiscovery(issuer: string): Promise<string> {
  const url = `${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`;
  const fail = (why: string) =>
    new Problem("identity-provider-unavailable", `OIDC discovery at ${url} failed: ${why}.`);
  const doc = await fetchJson<{ issuer?: unknown; jwks_uri?: unknown } | null>(
    url,
    "application/json",
    DISCOVERY_TIMEOUT_MS,
    fail,
  );
  // OIDC Discovery 1.0 section 4.3: the document's issuer must be the one we asked.
  if (doc?.issuer !== issuer) throw fail("its issuer differs from the configured issuer");
  const jwksUri = doc.jwks_uri;
  if (typeof jwksUri !== "string" || !/^https?:\/\//.test(jwksUri)) throw fail("no usable jwks_uri");
  return jwksUri;
}

/** A JSON value from this location's cache (`caches.default`); a cache that fails is a miss. */
async function cacheGet(key: string): Promise<unknown> {
  try {
    return await (await caches.default.match(key))?.json();
  } catch {
    return undefined;
  }
}

/** Keeps a JSON value in this location's cache for `ttlMs`; best effort, the provider stays the truth. */
async function cachePut(key: string, value: unknown, ttlMs: number): Promise<void> {
  const headers = { "Cache-Control": `max-age=${Math.floor(ttlMs / 1000)}` };
  try {
    await caches.default.put(key, new Response(JSON.stringify(value), { headers }));
  } catch {
    // Not stored: the next isolate that needs it fetches it.
  }
}

function codeOf(error: unknown): string | undefined {
  return (error as { code?: string } | null)?.code;
}

function unavailable(why: string): Problem {
  return new Problem("identity-provider-unavailable", `Could not get the identity provider's keys: ${why}.`);
}
