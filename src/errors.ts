/**
 * Every way a request can fail, as an RFC 9457 problem type with a stable code, and the one place
 * that turns a failure into a response. Modules throw `Problem`; only `problemResponse` builds one.
 *
 * ably-js acts on the status alone: 403 moves a Realtime connection to FAILED (it stops retrying),
 * anything else leaves it retrying. So 403 is reserved for refusals a retry cannot fix (banned,
 * forbidden clientId or capability, disallowed origin), 401 for identity tokens the app can replace.
 */
import type { Context } from "hono";
import { RETRY_AFTER_SECONDS } from "./constants";

const CATALOG = {
  "not-found": [404, "No such endpoint"],
  "method-not-allowed": [405, "Method not allowed"],
  "origin-not-allowed": [403, "Origin not allowed"],
  "preflight-header-not-allowed": [403, "Request header not allowed cross-origin"],
  "request-too-large": [413, "Request too large"],
  "unsupported-media-type": [415, "Unsupported body type"],
  "identity-token-too-large": [431, "Identity token too large"],
  "identity-token-missing": [401, "Identity token missing"],
  "identity-token-malformed": [401, "Identity token malformed"],
  "identity-token-expired": [401, "Identity token expired"],
  "identity-token-not-yet-valid": [401, "Identity token not yet valid"],
  "identity-token-issued-in-future": [401, "Identity token issued in the future"],
  "identity-token-signature-invalid": [401, "Identity token signature invalid"],
  "identity-token-algorithm-not-allowed": [401, "Identity token algorithm not allowed"],
  "identity-token-key-unknown": [401, "Identity token signed by an unknown key"],
  "identity-token-issuer-mismatch": [401, "Identity token from another issuer"],
  "identity-token-audience-mismatch": [401, "Identity token for another audience"],
  "identity-token-claim-missing": [401, "Identity token lacks a required claim"],
  "identity-token-claim-invalid": [401, "Identity token has an invalid claim"],
  "identity-token-rejected": [401, "Identity provider rejected the token"],
  "identity-token-ambiguous": [401, "Identity token cookie sent more than once"],
  "client-id-invalid": [401, "Identity token's user id cannot be a clientId"],
  "parameter-invalid": [400, "Invalid token parameter"],
  "request-invalid": [400, "Invalid request"],
  "admin-unauthorized": [401, "Moderator credentials missing or wrong"],
  "moderator-not-allowed": [403, "Not a moderator"],
  "ban-not-found": [404, "No ban for this clientId"],
  "revocation-not-enabled": [409, "Token revocation not enabled"],
  "ably-token-too-large": [400, "Ably token would be too large"],
  "rate-limited": [429, "Too many requests"],
  "user-banned": [403, "User banned"],
  "client-id-mismatch": [403, "clientId not allowed"],
  "capability-empty": [403, "Requested capability not granted"],
  "identity-provider-unavailable": [503, "Identity provider unavailable"],
  "ban-list-unavailable": [503, "Ban list unavailable"],
  misconfigured: [500, "Auth endpoint misconfigured"],
  "internal-error": [500, "Internal error"],
} as const satisfies Record<string, readonly [number, string]>;

/** A stable problem code; the problem `type` is `PROBLEM_TYPE_PREFIX + code`. */
export type ProblemCode = keyof typeof CATALOG;

/** Problem types are tag URIs (RFC 4151): stable identifiers, documented in the README ("Errors"). */
export const PROBLEM_TYPE_PREFIX = "tag:ably-edge-auth,2026:problem:";

/** A failure with a stable code. `detail` is shown to the caller: it never holds a token or secret. */
export class Problem extends Error {
  readonly status: number;
  /** `headers` are added to the response (e.g. `Allow` on a 405). */
  constructor(
    readonly code: ProblemCode,
    readonly detail: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(`${code}: ${detail}`);
    this.name = "Problem";
    this.status = CATALOG[code][0];
  }
}

/** Whether a problem code's status tells the caller to retry later. */
const isRetryable = (status: number) => status === 503;

/**
 * The response for a failure: `application/problem+json`, `Cache-Control: no-store`, and the
 * headers RFC 6750 (`WWW-Authenticate`) and RFC 9110 (`Retry-After`) call for, plus the problem's own.
 * Built with the Context so that headers set earlier (CORS, request id) are kept on errors too.
 */
export function problemResponse(c: Context, problem: Problem, requestId?: string): Response {
  const [status, title] = CATALOG[problem.code];
  c.header("Cache-Control", "no-store");
  if (status === 401) {
    // RFC 6750 3.1: no error code when no token was presented at all.
    c.header("WWW-Authenticate", problem.code === "identity-token-missing" ? "Bearer" : 'Bearer error="invalid_token"');
  }
  for (const [name, value] of Object.entries(problem.headers)) c.header(name, value);
  // ably-js reads an error's message only from Ably's own headers unless the body is plain
  // application/json; with them, a Node client's errorReason says "You are banned: spam".
  c.header("X-Ably-Errorcode", String(status * 100));
  c.header("X-Ably-Errormessage", problem.detail.replace(/[^\x20-\x7e]/g, "?"));
  if (isRetryable(status)) c.header("Retry-After", String(RETRY_AFTER_SECONDS));
  const body = {
    type: PROBLEM_TYPE_PREFIX + problem.code,
    title,
    status,
    detail: problem.detail,
    ...(requestId ? { requestId } : {}),
  };
  return c.body(JSON.stringify(body), status as 400, {
    "Content-Type": "application/problem+json",
  });
}
