/**
 * Checks an issued token the way Ably checks a JWT ("JWT authentication" in Ably's docs): HS256
 * with the API key's secret, header `typ: JWT` and `kid` the key name, `iat`/`exp` whole seconds,
 * `x-ably-capability` a JSON string. Throws on any mismatch. Works in Node and in workerd.
 */
import { decodeProtectedHeader, jwtVerify } from "jose";

export interface AblyClaims {
  clientId: string | undefined;
  capability: Record<string, string[]>;
  /** exp - iat, in seconds. */
  ttl: number;
  iat: number;
  exp: number;
}

export async function verifyAblyToken(jwt: string, apiKey: string): Promise<AblyClaims> {
  const [keyName, secret] = apiKey.split(":") as [string, string];
  const header = decodeProtectedHeader(jwt);
  if (header.kid !== keyName || header.typ !== "JWT" || header.alg !== "HS256") {
    throw new Error(`not an Ably JWT header: ${JSON.stringify(header)}`);
  }
  const { payload } = await jwtVerify(jwt, new TextEncoder().encode(secret), { algorithms: ["HS256"] });
  const { iat, exp } = payload;
  if (!Number.isInteger(iat) || !Number.isInteger(exp)) throw new Error("iat/exp are not whole seconds");
  const capability = payload["x-ably-capability"];
  if (typeof capability !== "string") throw new Error("x-ably-capability is not a JSON string");
  return {
    clientId: payload["x-ably-clientId"] as string | undefined,
    capability: JSON.parse(capability) as Record<string, string[]>,
    ttl: exp! - iat!,
    iat: iat!,
    exp: exp!,
  };
}
