/**
 * The headers every response carries: the request id, and the security headers of an API that
 * answers no page (nothing may frame, embed or run anything from it). They are exactly what
 * hono/request-id and hono/secure-headers sent with the worker's options, written out once per
 * isolate instead of rebuilt per request: hono/secure-headers set its twelve headers one by one on
 * the finished response, each a call into the runtime (the profile in docs/performance.md). The worker's own
 * answers (`respond`) copy them from one Headers made per isolate, which the runtime does natively
 * (a plain object of headers costs more: the runtime reads and checks it property by property);
 * any other response (errors, 404, preflights, the admin API) gets them set afterwards, as before.
 */
import type { MiddlewareHandler } from "hono";
import { HSTS_MAX_AGE_SECONDS, MAX_REQUEST_ID_CHARS } from "../constants";

const REQUEST_ID = "X-Request-Id";

/** hono/secure-headers' defaults with X-Frame-Options DENY and our CSP; no Permissions-Policy, no COEP. */
const SECURITY_HEADERS: Readonly<Record<string, string>> = Object.freeze({
  "Cross-Origin-Resource-Policy": "same-origin",
  "Cross-Origin-Opener-Policy": "same-origin",
  "Origin-Agent-Cluster": "?1",
  "Referrer-Policy": "no-referrer",
  "Strict-Transport-Security": `max-age=${HSTS_MAX_AGE_SECONDS}; includeSubDomains`,
  "X-Content-Type-Options": "nosniff",
  "X-DNS-Prefetch-Control": "off",
  "X-Download-Options": "noopen",
  "X-Frame-Options": "DENY",
  "X-Permitted-Cross-Domain-Policies": "none",
  "X-XSS-Protection": "0",
  "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'",
});
const SECURITY_ENTRIES = Object.entries(SECURITY_HEADERS);
/** Made on first use, not at global scope, like everything else per isolate. */
let securityHeaders: Headers | undefined;

/** Responses built by `respond`: they already carry every header, so nothing is set on them again. */
const complete = new WeakSet<Response>();

/**
 * Chooses the request id (the caller's X-Request-Id when it is short and plain, else a random
 * UUID) and makes sure the response carries it and the security headers, overwriting any other
 * value, as hono/request-id and hono/secure-headers did. Mount it first.
 */
export function apiHeaders(): MiddlewareHandler<{ Variables: { requestId: string } }> {
  return async function apiHeaders(c, next) {
    const given = c.req.header(REQUEST_ID);
    const id = given && given.length <= MAX_REQUEST_ID_CHARS && !/[^\w\-=]/.test(given) ? given : crypto.randomUUID();
    c.set("requestId", id);
    await next();
    if (!complete.has(c.res)) stamp(c.res.headers, id);
  };
}

/** The request id and the security headers, over whatever `headers` held. */
function stamp(headers: Headers, requestId: string): void {
  headers.set(REQUEST_ID, requestId);
  for (const [name, value] of SECURITY_ENTRIES) headers.set(name, value);
  headers.delete("X-Powered-By");
}

/**
 * A response with the security headers, the request id and `headers`, the answer's own (such as
 * Content-Type), which never name a security header.
 */
export function respond(
  body: string,
  status: number,
  requestId: string,
  headers: Readonly<Record<string, string>>,
): Response {
  securityHeaders ??= new Headers(SECURITY_HEADERS);
  const response = new Response(body, { status, headers: securityHeaders });
  response.headers.set(REQUEST_ID, requestId);
  for (const name in headers) response.headers.set(name, headers[name]!);
  complete.add(response);
  return response;
}

/**
 * A page's response (the moderation console's files): `response` with the security headers, the
 * request id and the page's own `csp` in place of the API's, which apiHeaders then leaves alone.
 */
export function asPage(response: Response, requestId: string, csp: string): Response {
  const page = new Response(response.body, response);
  stamp(page.headers, requestId);
  page.headers.set("Content-Security-Policy", csp);
  complete.add(page);
  return page;
}
