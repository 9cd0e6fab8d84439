/** Small checks of values: configuration, stored records, JSON from the outside. */

export function jsonOrUndefined(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function isHttpUrl(value: string): boolean {
  try {
    const url = new URL(value);
    return url.protocol === "https:" || url.protocol === "http:";
  } catch {
    return false;
  }
}

/** Host names of this machine, the only ones an http:// origin may have (local development). */
const LOOPBACK = new Set(["localhost", "127.0.0.1", "[::1]"]);

/** Whether an origin may be trusted with credentials: https, or http on this machine. */
export function isSecureOrigin(origin: string): boolean {
  const url = new URL(origin);
  return url.protocol === "https:" || LOOPBACK.has(url.hostname);
}

const encoder = new TextEncoder();
/** Made on first use: nothing but the encoder at global scope (a form body is rare). */
let decoder: TextDecoder | undefined;

/** `text` as UTF-8 bytes. */
export const utf8 = (text: string): Uint8Array => encoder.encode(text);

/** UTF-8 `bytes` as text, a malformed sequence as U+FFFD. */
export const fromUtf8 = (bytes: ArrayBuffer): string => (decoder ??= new TextDecoder()).decode(bytes);

/** A lone surrogate: with the u flag a well-formed pair is one code point and does not match. */
const LONE_SURROGATE = /[\ud800-\udfff]/u;

/** Whether `text` is well-formed Unicode: no lone surrogate, which UTF-8 (KV, JSON, headers) cannot carry. */
export const isWellFormed = (text: string): boolean => !LONE_SURROGATE.test(text);

/** The size of `text` as stored in a JSON record: UTF-8 bytes, JSON-escaped (`"` is two, a control character six). */
export function storedBytes(text: string): number {
  return utf8(JSON.stringify(text)).length - 2;
}

/** An exact serialized origin: scheme, host and optional port, nothing else. */
export function isOrigin(value: string): boolean {
  return isHttpUrl(value) && new URL(value).origin === value;
}
