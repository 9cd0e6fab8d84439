/** Signing key pairs for the stand-in identity providers, as JWKs (works in Node and in workerd). */
import { exportJWK, generateKeyPair, type JWK } from "jose";

/** A fresh key pair: the public half as a JWKS publishes it (`use: sig`), the private half to sign with. */
export async function keyPair(alg: "RS256" | "ES256", kid?: string): Promise<{ pub: JWK; priv: JWK }> {
  const { publicKey, privateKey } = await generateKeyPair(alg, { extractable: true });
  const named = kid === undefined ? {} : { kid };
  return {
    pub: { ...(await exportJWK(publicKey)), ...named, alg, use: "sig" },
    priv: { ...(await exportJWK(privateKey)), ...named, alg },
  };
}
