/**
 * One structured JSON line per request. It holds what an operator needs to follow a request
 * (outcome, status, clientId, issuer, latency, request id) and never the identity token, the
 * Ably key, the issued token or any request header.
 */
import type { MiddlewareHandler } from "hono";

/** What the request's steps record for the log line; set with `c.set`. */
export interface LogFields {
  requestId: string;
  /** `issued`, or the problem code that answered. */
  outcome: string;
  clientId: string;
  issuer: string;
}

/** Logs one line when the response is ready. Mount it first so it times the whole request. */
export function accessLog(): MiddlewareHandler<{ Variables: Partial<LogFields> }> {
  return async function accessLog(c, next) {
    const started = Date.now();
    await next();
    console.log(
      JSON.stringify({
        requestId: c.get("requestId"),
        method: c.req.method,
        path: c.req.path,
        status: c.res.status,
        outcome: c.get("outcome") ?? (c.res.ok ? "ok" : "error"),
        clientId: c.get("clientId"),
        issuer: c.get("issuer"),
        ms: Date.now() - started,
      }),
    );
  };
}
