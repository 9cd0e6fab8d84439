/**
 * One structured record per request, logged as an object so Workers Logs indexes each field (the
 * dashboard queries in docs/operations.md use them by name; test/worker/log.test.ts keeps the two in
 * step). It holds what an operator needs to follow a request and count outcomes by provider and
 * place, and never the identity token, the Ably key, the issued token or any request header.
 */
import type { MiddlewareHandler } from "hono";
import type { Moderator } from "../bans/moderator";

/** What the request's steps record for the log line; set with `c.set`. */
export interface LogFields {
  requestId: string;
  /** `issued`; `banned`, `unbanned` or `revoked` for the admin API's actions; or the problem code that answered. */
  outcome: string;
  /** The verified user's; on the admin API, the one a call acts on. */
  clientId: string;
  /** The verified token's issuer. */
  issuer: string;
  /** The name of the provider the token's `iss` chose (verified or not): refusals are counted by provider too. */
  provider: string;
}

/** Logs one line when the response is ready. Mount it first so it times the whole request. */
export function accessLog(): MiddlewareHandler<{ Variables: Partial<LogFields> & { moderator?: Moderator } }> {
  return async function accessLog(c, next) {
    const started = Date.now();
    await next();
    // Cloudflare's location for this request: the data centre (IATA code) and the caller's country.
    const cf = c.req.raw.cf as { colo?: string; country?: string } | undefined;
    const moderator = c.get("moderator");
    console.log({
      requestId: c.get("requestId"),
      method: c.req.method,
      path: c.req.path,
      status: c.res.status,
      outcome: c.get("outcome") ?? (c.res.ok ? "ok" : "error"),
      clientId: c.get("clientId"),
      provider: c.get("provider"),
      issuer: c.get("issuer"),
      // Who made an admin call: the moderator's verified email, or `token` for ADMIN_TOKEN.
      moderator: moderator?.email ?? moderator?.via,
      colo: cf?.colo,
      country: cf?.country,
      // Wall time, which in a Worker advances only while waiting on I/O (JWKS, KV, Ably).
      durationMs: Date.now() - started,
    });
  };
}
