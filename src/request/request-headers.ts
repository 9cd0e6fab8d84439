/** What a request's headers say, read one way everywhere: its body's media type, its Bearer token. */

/** The media type of a Content-Type header, lower case and without parameters; undefined without one. */
export function mediaType(contentType: string | undefined): string | undefined {
  return contentType?.split(";")[0]?.trim().toLowerCase();
}

// RFC 6750 2.1: "Bearer" (any case), one or more spaces, a b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

/** The token of an `Authorization: Bearer <token>` header (RFC 6750), or undefined for anything else. */
export function bearerToken(authorization: string | undefined): string | undefined {
  return authorization === undefined ? undefined : BEARER.exec(authorization)?.[1];
}

/**
 * Whether `origin` (an Origin header) is the origin of the request's `url`, without parsing it on
 * every request: the runtime serializes the URL as a browser serializes Origin (lower-case host, no
 * default port), so the origin is exactly the URL up to its path's `/`.
 */
export const isOwnOrigin = (url: string, origin: string): boolean =>
  url.startsWith(origin) && url[origin.length] === "/";
