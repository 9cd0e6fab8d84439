/**
 * Identity tokens for tests, signed with the keys the stand-in identity provider publishes.
 * Works in Node and in workerd (jose and WebCrypto only).
 */
import { importJWK, type JWK, type JWTPayload, SignJWT } from "jose";

export interface TokenOptions {
  /** Which private key signs. Default the configured issuer's RSA key. */
  key?: JWK;
  /** Protected header fields, merged over `{ alg, kid }` from the key. */
  header?: Record<string, unknown>;
  /** Claims merged over the defaults; `undefined` removes a default claim. */
  claims?: Record<string, unknown>;
}

/** A signed identity token: by default valid for 10 min, sub `alice`, for the test issuer and audience. */
export async function identityToken(
  defaults: { issuer: string; audience: string; key: JWK },
  { key = defaults.key, header = {}, claims = {} }: TokenOptions = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = {
    iss: defaults.issuer,
    aud: defaults.audience,
    sub: "alice",
    iat: now,
    exp: now + 600,
    ...claims,
  };
  for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
  const alg = (header.alg as string | undefined) ?? key.alg!;
  return new SignJWT(payload).setProtectedHeader({ alg, kid: key.kid, ...header }).sign(await importJWK(key, alg));
}
