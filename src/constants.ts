/**
 * Every magic number of the worker, with the reason for it. Anything an operator may want to tune
 * is a configuration variable instead (see config.ts); these are limits of the protocols involved.
 */

/** Ably's hard ceiling on a token's lifetime: 24 h, in seconds (Ably rejects longer ones, 40003). */
export const ABLY_MAX_TTL_SECONDS = 86_400;

/** Default Ably token lifetime when ABLY_TOKEN_TTL_SECONDS is unset: 1 h, in seconds. */
export const DEFAULT_TOKEN_TTL_SECONDS = 3_600;

/**
 * Largest Ably JWT we issue, in bytes. ably-js sends a token as `Authorization: Bearer <base64(jwt)>`,
 * and Ably limits a header to about 8 KiB: 6000 bytes become 8000 characters of base64, leaving
 * room for the header name.
 */
export const MAX_ABLY_JWT_BYTES = 6_000;

/**
 * Largest identity token we look at, in bytes. Real ones (Entra ID with many groups, Cognito) stay
 * under 8 KiB; 16 KiB leaves headroom while refusing the 64 KiB and 1 MiB garbage before decoding.
 */
export const MAX_IDENTITY_TOKEN_BYTES = 16_384;

/**
 * Largest form body on POST /auth, in bytes. ably-js sends a few short token parameters; the
 * capability is the only long one and is capped below, so 16 KiB is generous.
 */
export const MAX_BODY_BYTES = 16_384;

/** Largest query string on GET /auth, in bytes: the same budget as the body, for the same reason. */
export const MAX_QUERY_BYTES = 16_384;

/** Largest `capability` token parameter, in bytes: a larger one could not fit in the issued JWT. */
export const MAX_CAPABILITY_BYTES = MAX_ABLY_JWT_BYTES;

/**
 * Longest clientId, in UTF-8 bytes. A KV key may be 512 bytes; 256 leaves room for a per-provider
 * prefix later, and is far beyond any identity provider's user id.
 */
export const MAX_CLIENT_ID_BYTES = 256;

/** Default clock skew allowed when checking identity tokens' exp, nbf and iat, in seconds. */
export const DEFAULT_CLOCK_TOLERANCE_SECONDS = 30;

/** Largest clock tolerance an operator may configure: 5 min, in seconds; more would hide real expiry. */
export const MAX_CLOCK_TOLERANCE_SECONDS = 300;

/**
 * How long the calls to the identity provider (or Ably) of one request may take in all, in ms.
 * ably-js waits 10 s for the whole authUrl call, so 5 s leaves time to answer 503 before the
 * client gives up on its own. A request that joins another's JWKS fetch waits at most this long.
 */
export const UPSTREAM_TIMEOUT_MS = 5_000;

/**
 * The two parts of UPSTREAM_TIMEOUT_MS for a cold start, which may need OIDC discovery and then the
 * JWKS, one after the other: 2 s for discovery (a small static document) and 3 s for the JWKS.
 */
export const DISCOVERY_TIMEOUT_MS = 2_000;
export const JWKS_FETCH_TIMEOUT_MS = UPSTREAM_TIMEOUT_MS - DISCOVERY_TIMEOUT_MS;

/**
 * Refetch cooldown for an unknown `kid`, in ms: at most one JWKS refetch per location (and per
 * isolate) per 30 s, so tokens with random `kid`s cannot make us hammer the identity provider.
 */
export const JWKS_COOLDOWN_MS = 30_000;

/**
 * How long a failed ask of an identity provider is remembered when there is no earlier answer to
 * fall back on, in ms: as long as one ask may take, so a provider that is down (or was never there)
 * is asked at most once per 5 s per isolate rather than once per request, and serves again within
 * 5 s of coming back.
 */
export const FAILED_ASK_MEMORY_MS = UPSTREAM_TIMEOUT_MS;

/** How long a location trusts a fetched JWKS before refetching it, in ms: 10 min (jose's default). */
export const JWKS_CACHE_MAX_AGE_MS = 600_000;

/**
 * How long a location trusts a fetched OIDC discovery document, in ms: 1 h; it rarely changes.
 * After that it is asked again, and while the provider fails the last good one serves, as the keys do.
 */
export const DISCOVERY_CACHE_MS = 3_600_000;

/**
 * How much earlier than JWKS_CACHE_MAX_AGE_MS an isolate may refresh the keys, in ms: each isolate
 * picks a random point in this last minute, so that a location's isolates, which share one cached
 * key set and so one fetch time, do not all find it stale at the same moment. The first to refresh
 * writes the location's cache; the others read it.
 */
export const JWKS_REFRESH_SPREAD_MS = 60_000;

/**
 * How long the last good JWKS keeps verifying while the identity provider cannot be reached, in ms:
 * 12 h, beyond the longest common identity-token lifetime (Auth0's default is 10 h), so a provider
 * outage does not refuse tokens it issued before going down. Also how long the location's cache
 * keeps the key set.
 */
export const JWKS_STALE_IF_ERROR_MS = 43_200_000;

/**
 * Default KV `cacheTtl` for ban lookups, in seconds. 60 is what KV uses when none is given and the
 * lowest value every KV deployment accepts; it bounds how long a location keeps serving a stale
 * "not banned" after a ban is written elsewhere.
 */
export const DEFAULT_BAN_CACHE_TTL_SECONDS = 60;

/** Smallest `cacheTtl` KV accepts on a read, in seconds. */
export const MIN_BAN_CACHE_TTL_SECONDS = 30;

/**
 * How long a KV write takes to reach every other location, in seconds, as Cloudflare documents it:
 * "up to 60 seconds or more". It is the only figure KV gives; "or more" means it is no bound.
 */
export const KV_PROPAGATION_SECONDS = 60;

/**
 * Added to KV_PROPAGATION_SECONDS + BAN_CACHE_TTL_SECONDS for the default BAN_PROPAGATION_SECONDS,
 * in seconds: as much again as KV's own figure, because "or more" has no upper bound, and it also
 * covers an alarm that runs late and the clock skew between Cloudflare and Ably. With the default
 * cache TTL of 60 s the default window is 60 + 60 + 60 = 180 s.
 */
export const BAN_PROPAGATION_MARGIN_SECONDS = 60;

/**
 * First delay before a revocation that failed (Ably answered 429 or 5xx, or not at all) is tried
 * again, in ms, counted from the end of the failed attempt; each further delay doubles. With
 * REVOCATION_MAX_ATTEMPTS = 10 the attempts of one round start 0, 5, 15, 35, 75, 155, 315, 635, 1275
 * and 2555 s after its first one, plus up to UPSTREAM_TIMEOUT_MS for each call before: the last
 * within 2600 s (44 min) of the round's `issuedBefore`, inside the hour for which
 * Ably accepts the second round's fixed `issuedBefore`. 5 s is past a blip; the doubling backs off from an Ably
 * that is rate-limiting us.
 */
export const REVOCATION_RETRY_BASE_MS = 5_000;

/** Attempts of one revocation round before it is given up as `failed` (see REVOCATION_RETRY_BASE_MS). */
export const REVOCATION_MAX_ATTEMPTS = 10;

/** How far back Ably accepts a revocation's `issuedBefore`, in ms: 1 h ("Token revocation", REST API). */
export const ABLY_MAX_ISSUED_BEFORE_AGE_MS = 3_600_000;

/**
 * How far before our clock's now the second revocation round sets its `issuedBefore`, in ms. Ably
 * refuses one in the future by its own clock, and two NTP-synchronised clocks (Cloudflare's,
 * Ably's) may differ by more than the request's travel time. A second is far beyond NTP's usual
 * error, and within BAN_PROPAGATION_MARGIN_SECONDS. (The first round sends none: Ably's default is
 * the moment it gets the call.)
 */
export const ISSUED_BEFORE_SKEW_MS = 1_000;

/** Longest ban reason shown to the user, in characters: it is an explanation, not a document. */
export const MAX_BAN_REASON_CHARS = 200;

/** `Retry-After` on a 503, in seconds: long enough for a blip to pass, short for a reconnecting user. */
export const RETRY_AFTER_SECONDS = 10;

/** `Access-Control-Max-Age` of a preflight, in seconds: 10 min, Chromium's own upper bound is 2 h. */
export const CORS_MAX_AGE_SECONDS = 600;

/** `Strict-Transport-Security` max-age, in seconds: 180 days, hono/secure-headers' default, which the worker sent before. */
export const HSTS_MAX_AGE_SECONDS = 15_552_000;

/** Longest caller-chosen `X-Request-Id` kept, in characters: hono/request-id's default; a longer one is replaced. */
export const MAX_REQUEST_ID_CHARS = 255;

/** KV's smallest `expirationTtl`, in seconds: KV refuses a put with a shorter one. */
export const KV_MIN_EXPIRATION_TTL_SECONDS = 60;

/** Bans per page of GET /admin/bans: KV lists at most 1000 keys a call; 100 keeps pages light (`?order=key` reads each ban on its page). */
export const ADMIN_LIST_PAGE_SIZE = 100;

/**
 * Largest ban reason and "banned by" the admin API accepts, in bytes as stored: UTF-8 of the
 * JSON-escaped text. "Banned by" holds a moderator's verified email: at most 254 bytes in SMTP
 * (RFC 5321's path limit; RFC 3696's 320, a 64-byte local part, `@`, a 255-byte domain, was
 * corrected by its erratum 1690), so 320 holds any real one. A reason is for moderators and a short
 * message to the user (who sees its first MAX_BAN_REASON_CHARS), and keeps a page of 100 listed
 * bans small.
 */
export const MAX_BAN_REASON_BYTES = 500;
export const MAX_BANNED_BY_BYTES = 320;

/** Longest temporary ban the admin API accepts, in seconds: one year; longer is "indefinite". */
export const MAX_BAN_TTL_SECONDS = 31_536_000;

/** Ably's largest token lifetime for a key with revocable tokens: 1 h, in seconds. */
export const ABLY_REVOCABLE_MAX_TTL_SECONDS = 3_600;

/** Ably's REST endpoint (ably-js v2's primary domain), for token revocation. */
export const DEFAULT_ABLY_REST_URL = "https://main.realtime.ably.net";

/** Shortest ADMIN_TOKEN accepted, in characters: a shared secret guessable by brute force is none. */
export const MIN_ADMIN_TOKEN_CHARS = 32;

/**
 * `Retry-After` on a 429, in seconds: the period of both rate limits in wrangler.toml (the binding
 * allows only 10 or 60). Keep the two in step.
 */
export const RATE_LIMIT_PERIOD_SECONDS = 60;

/**
 * How long a ban-list operation (a read; an admin API write, delete or list) may take before we
 * give up, in ms: a KV read is a few ms when warm and rarely over 100 ms cold; past 2 s KV is in
 * trouble, and ably-js gives the whole call 10 s.
 */
export const BAN_LOOKUP_TIMEOUT_MS = 2_000;

/**
 * How long the ban index remembers an unban, in ms, so that a PUT still on its way (its KV write
 * done, its revocation call waiting on Ably for up to UPSTREAM_TIMEOUT_MS, then the index) does
 * not list the lifted ban again. A PUT takes at most about 10 s; a minute is ample, and keeps
 * the index from holding a row for every user ever unbanned.
 */
export const UNBAN_MEMORY_MS = 60_000;

/**
 * Shortest HMAC secret a provider's `secretBinding` may name, in bytes: RFC 7518 3.2 requires an
 * HS256 key of at least 256 bits; a shorter one is guessable offline from any token it signed.
 */
export const MIN_HMAC_SECRET_BYTES = 32;

/**
 * How long a Netlify Identity endpoint's "this token is valid" is remembered per isolate, in ms
 * (never past the token's exp): 60 s, short enough that a user Netlify deletes or bans stops getting
 * tokens within a minute, long enough that ably-js's retries do not each cost a call to Netlify.
 */
export const NETLIFY_USER_CACHE_MS = 60_000;

/**
 * Most memory the remembered Netlify answers (token hash and roles) may take per isolate, in bytes:
 * 2 MiB, under 2% of an isolate's 128 MB, yet room for ten thousand users with a few roles each.
 */
export const NETLIFY_CACHE_MAX_BYTES = 2_097_152;

/** Asymmetric JWS algorithms an identity token may use. HS* and `none` never come through a JWKS. */
export const ASYMMETRIC_ALGORITHMS = [
  "RS256",
  "RS384",
  "RS512",
  "PS256",
  "PS384",
  "PS512",
  "ES256",
  "ES384",
  "ES512",
  "EdDSA",
  "Ed25519",
] as const;

/** Symmetric JWS algorithms: only ever with a provider's own configured secret, never through a JWKS. */
export const SYMMETRIC_ALGORITHMS = ["HS256", "HS384", "HS512"] as const;

/** What every mainstream identity provider signs with (Auth0, Clerk, Firebase, Cognito, Supabase...). */
export const DEFAULT_ALGORITHMS = ["RS256", "ES256"] as const;
