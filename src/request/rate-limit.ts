/**
 * Abuse limits with Workers' rate limiting binding: per client IP before any verification, so
 * garbage tokens cannot burn CPU, and per clientId after it, so one user cannot farm tokens. Both
 * bindings are optional: without them the worker runs and logs once that limiting is off.
 *
 * Limits live in wrangler.toml (`[[ratelimits]]`, `simple = { limit, period }`): they are counted
 * per Cloudflare location and approximately, which is what an abuse limit needs.
 */
import { RATE_LIMIT_PERIOD_SECONDS } from "../constants";
import { Problem } from "../errors";

/** The binding's shape (`env.X.limit({ key })`). */
export interface RateLimiter {
  limit(options: { key: string }): Promise<{ success: boolean }>;
}

/**
 * Counts one request against `key`; 429 with `Retry-After` once over the limit. A limiter that
 * fails lets the request through (fail open): the limit protects capacity, it is not access control.
 */
export async function enforceRateLimit(limiter: RateLimiter | undefined, key: string, what: string): Promise<void> {
  if (!limiter) return;
  let allowed = true;
  try {
    allowed = (await limiter.limit({ key })).success;
  } catch {
    console.warn({ rateLimiter: "failed", what });
  }
  if (!allowed) {
    throw new Problem("rate-limited", `Too many token requests ${what}; try again in ${RATE_LIMIT_PERIOD_SECONDS} s.`, {
      "Retry-After": String(RATE_LIMIT_PERIOD_SECONDS),
    });
  }
}
