/**
 * A reference for the property "only the user's own browser session can spend their credentials",
 * written from SECURITY.md and the README ("CORS") and sharing no code with src/: no regular
 * expression, no header parsing but its own. Slow and plain.
 *
 * A request whose `Origin` is neither the endpoint's own nor on ALLOWED_ORIGINS is refused, whatever
 * it carries. An `Authorization: Bearer` token is the caller's explicit choice and decides alone.
 * Without one, the credentials a browser attaches by itself count: the provider's token header
 * when sent (Cloudflare Access adds its own), else the IDENTITY_COOKIE cookie, refused when sent
 * twice (a planted cookie). They count only on a script's request (`Sec-Fetch-Mode` absent, `cors`
 * or `same-origin`) that shows an `Origin` or `Sec-Fetch-Site: same-origin`: never on an `<img>`, a
 * navigation, or a request no page's script made. Header names are compared without case.
 */
import { folded } from "./moderators-reference.ts";

export interface AmbientRequest {
  readonly origin?: string;
  readonly site?: string;
  readonly mode?: string;
  /** The token of an `Authorization: Bearer <token>` header. */
  readonly bearer?: string;
  /** Headers other than Authorization and Cookie, by name as sent. */
  readonly headers: readonly (readonly [string, string])[];
  /** The cookies of the Cookie header, in order. */
  readonly cookies: readonly (readonly [string, string])[];
}

export interface AmbientConfig {
  /** The endpoint's own origin. */
  readonly ownOrigin: string;
  readonly allowedOrigins: readonly string[];
  /** IDENTITY_COOKIE, if set. */
  readonly cookieName?: string;
  /** A provider's `tokenHeader`, if set. */
  readonly headerName?: string;
}

/** The token the endpoint goes on to verify, or the refusal it answers with. */
export type AmbientOutcome = { readonly token: string } | { readonly status: number; readonly code: string };

export function ambientOutcome(request: AmbientRequest, config: AmbientConfig): AmbientOutcome {
  const { origin, site, mode } = request;
  if (origin !== undefined && origin !== config.ownOrigin && !config.allowedOrigins.includes(origin)) {
    return { status: 403, code: "origin-not-allowed" };
  }
  if (request.bearer !== undefined) return { token: request.bearer };
  let ambient: string | undefined;
  const name = config.headerName;
  const sent = name === undefined ? [] : request.headers.filter(([n]) => folded(n) === folded(name));
  if (sent.length > 0) {
    ambient = sent[0]![1];
  } else if (config.cookieName !== undefined) {
    const mine = request.cookies.filter(([n]) => n === config.cookieName);
    if (mine.length > 1) return { status: 401, code: "identity-token-ambiguous" };
    ambient = mine[0]?.[1];
  }
  if (ambient === undefined || ambient === "") return { status: 401, code: "identity-token-missing" };
  const byScript = mode === undefined || mode === "cors" || mode === "same-origin";
  if (!byScript || (origin === undefined && site !== "same-origin")) return { status: 403, code: "origin-not-allowed" };
  return { token: ambient };
}
