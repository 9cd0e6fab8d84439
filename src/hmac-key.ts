/**
 * HMAC keys, imported once per isolate. Given a raw secret, jose imports it again on every sign or
 * verify; the Ably key signs every token and an HS* provider's secret verifies every identity token.
 */
import { utf8 } from "./validate";

export type HmacHash = "SHA-256" | "SHA-384" | "SHA-512";

/** The imports so far, by hash, use and secret: one per configured secret and use. */
const keys = new Map<string, Promise<CryptoKey>>();

/** The HMAC key for `secret` with `hash`, for `usage` only. */
export function hmacKey(secret: string, hash: HmacHash, usage: "sign" | "verify") {
  const id = `${hash} ${usage} ${secret}`;
  let key = keys.get(id);
  if (!key) {
    key = crypto.subtle.importKey("raw", utf8(secret), { name: "HMAC", hash }, false, [usage]);
    keys.set(id, key);
  }
  return key;
}
