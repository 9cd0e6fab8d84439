/**
 * Which browser origins may call, and the CORS headers they get. A request with an `Origin` that
 * is neither the worker's own nor on ALLOWED_ORIGINS is refused (403) with no CORS headers at all,
 * before anything is verified or minted. Requests without `Origin` (servers, native apps) pass.
 *
 * ably-js's browser XHR sends credentials when authHeaders holds a lower-case `authorization` key,
 * so an allowed origin gets its own origin echoed (never `*`) with
 * `Access-Control-Allow-Credentials: true`, which serves credentialed and plain requests alike, on
 * every response, errors included: without them the browser hides a 403 from ably-js, which then
 * retries forever.
 */
import type { MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import type { Config } from "../config";
import { CORS_MAX_AGE_SECONDS } from "../constants";
import { Problem } from "../errors";
import { isOwnOrigin } from "./request-headers";

/** Request headers a cross-origin caller may send: the identity token, and POST's form body type. */
const ALLOWED_HEADERS = ["Authorization", "Content-Type"];

/** The CORS gate for the auth route. Reads the configuration set by an earlier middleware. */
export function originGuard(): MiddlewareHandler<{ Variables: { config: Config } }> {
  const corsHeaders = cors({
    origin: (origin) => origin, // only reached for an origin already checked below
    credentials: true,
    allowMethods: ["GET", "POST", "OPTIONS"],
    allowHeaders: ALLOWED_HEADERS,
    exposeHeaders: ["Retry-After", "WWW-Authenticate", "X-Request-Id", "X-Ably-Errorcode", "X-Ably-Errormessage"],
    maxAge: CORS_MAX_AGE_SECONDS,
  });
  const allowedHeaders = new Set(ALLOWED_HEADERS.map((h) => h.toLowerCase()));

  return async function originGuard(c, next) {
    const origin = c.req.header("Origin");
    // Same-origin requests (a page served beside the worker) need no CORS headers.
    if (origin === undefined || isOwnOrigin(c.req.url, origin)) return next();
    if (!c.get("config").allowedOrigins.has(origin)) {
      throw new Problem("origin-not-allowed", "This origin is not on the endpoint's ALLOWED_ORIGINS.");
    }
    const asked = c.req.header("Access-Control-Request-Headers");
    if (c.req.method === "OPTIONS" && asked) {
      const extra = asked
        .split(",")
        .map((h) => h.trim().toLowerCase())
        .filter((h) => h && !allowedHeaders.has(h));
      if (extra.length > 0) {
        throw new Problem(
          "preflight-header-not-allowed",
          `Only the ${ALLOWED_HEADERS.join(" and ")} request headers may be sent cross-origin.`,
        );
      }
    }
    return corsHeaders(c, next);
  };
}
