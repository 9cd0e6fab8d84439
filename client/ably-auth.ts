/**
 * The client side of ably-edge-auth: an ably-js `authCallback` that gets a fresh identity token
 * from your identity provider every time Ably needs a token, and trades it at the endpoint.
 * Copy this file or import it; it needs `fetch` and ably's types only, in browsers and Node.
 *
 *   import * as Ably from "ably";
 *   import { createAuthCallback } from "./ably-auth";
 *
 *   const realtime = new Ably.Realtime({
 *     authCallback: createAuthCallback({
 *       endpoint: "https://ably-edge-auth.example.workers.dev/auth",
 *       getIdentityToken: () => auth0.getTokenSilently(), // or user.getIdToken(), ...
 *     }),
 *   });
 *
 * Why a callback rather than `authUrl` + `authHeaders`: those headers are fixed when the client is
 * made, while identity tokens expire (often after an hour), so a long-lived connection would
 * renew with a stale one. Errors keep the endpoint's meaning for ably-js: a 403 (banned, clientId or
 * capability refused) moves a Realtime connection to FAILED, so it stops retrying; anything else
 * (401, 5xx, network) leaves it DISCONNECTED, and it tries again.
 */
import type { AuthOptions, ErrorInfo, TokenParams } from "ably";

/** ably-js's `authCallback` signature. */
export type AuthCallback = NonNullable<AuthOptions["authCallback"]>;

export interface AuthCallbackOptions {
  /** The endpoint's URL, e.g. `https://ably-edge-auth.<you>.workers.dev/auth` (may be relative in a browser). */
  endpoint: string;
  /** A currently valid identity token (JWT) for the signed-in user; called once per Ably token. */
  getIdentityToken: () => string | Promise<string>;
  /** The fetch to use; defaults to the global one. */
  fetch?: typeof fetch;
}

/** Ably's code for "the authCallback failed"; ably-js retries on it. */
const AUTH_CALLBACK_FAILED = 40170;

/**
 * What the endpoint or the way to it refused, in the shape ably-js reads: `statusCode` is the HTTP
 * status (403 means "do not retry" to ably-js), `code` the Ably-style code `statusCode * 100`
 * (40300 for 403, as ably-js itself uses), `message` the problem document's `detail`.
 */
export class AuthEndpointError extends Error implements ErrorInfo {
  override name = "AuthEndpointError";
  /** Never set; narrowed so that this class is an ErrorInfo to TypeScript, as it is to ably-js. */
  declare cause?: ErrorInfo;
  constructor(
    message: string,
    readonly statusCode: number,
    readonly code: number = statusCode * 100,
  ) {
    super(message);
  }
}

/** An ably-js `authCallback` that trades a fresh identity token for an Ably JWT at `endpoint`. */
export function createAuthCallback(options: AuthCallbackOptions): AuthCallback {
  const { endpoint, getIdentityToken } = options;
  // Looked up at call time, so a fetch replaced after start-up (polyfill, test) is the one used.
  const doFetch: typeof fetch = options.fetch ?? ((input, init) => fetch(input, init));

  return (tokenParams, callback) => {
    requestAblyToken(endpoint, getIdentityToken, doFetch, tokenParams).then(
      (jwt) => callback(null, jwt),
      (error: AuthEndpointError) => callback(error, null),
    );
  };
}

async function requestAblyToken(
  endpoint: string,
  getIdentityToken: AuthCallbackOptions["getIdentityToken"],
  doFetch: typeof fetch,
  tokenParams: TokenParams,
): Promise<string> {
  let response: Response;
  try {
    const identityToken = await getIdentityToken();
    const separator = endpoint.includes("?") ? "&" : "?";
    response = await doFetch(`${endpoint}${separator}${queryOf(tokenParams)}`, {
      headers: { Authorization: `Bearer ${identityToken}`, Accept: "application/jwt" },
    });
  } catch (cause) {
    // No identity token or no answer: nothing the endpoint refused, so let ably-js retry. The
    // error's name only: a runtime's message may quote the header value, and so the token.
    const name = cause instanceof Error ? cause.name : typeof cause;
    throw new AuthEndpointError(`Could not reach the auth endpoint (${name})`, 401, AUTH_CALLBACK_FAILED);
  }
  const body = await response.text().catch(() => "");
  if (response.ok) {
    const type = response.headers.get("Content-Type") ?? "";
    if (!/^(application\/jwt|text\/plain)\b/i.test(type) || body === "") {
      throw new AuthEndpointError(
        `The auth endpoint answered 200 with ${type || "no type"}, not a JWT`,
        401,
        AUTH_CALLBACK_FAILED,
      );
    }
    return body;
  }
  throw new AuthEndpointError(problemDetail(body) ?? `The auth endpoint answered ${response.status}`, response.status);
}

/**
 * Every TokenParam ably-js hands over, as the query string ably-js itself would send to an authUrl:
 * the endpoint reads what it knows (ttl in ms, capability, clientId) and ignores the rest.
 */
function queryOf(params: TokenParams): string {
  const query = new URLSearchParams();
  for (const [name, value] of Object.entries(params) as [string, string | number | object | null | undefined][]) {
    if (value == null) continue;
    // ably-js hands over the capability as canonical JSON already; an object is stringified here.
    query.set(name, typeof value === "object" ? JSON.stringify(value) : String(value));
  }
  return query.toString();
}

/** The `detail` of an RFC 9457 problem document, or undefined for any other body. */
function problemDetail(body: string): string | undefined {
  try {
    const detail = (JSON.parse(body) as { detail?: unknown }).detail;
    return typeof detail === "string" ? detail : undefined;
  } catch {
    return undefined;
  }
}
