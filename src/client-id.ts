/**
 * What may be a clientId: it becomes a KV key (at most 512 bytes, never `.` or `..`) and is placed
 * into capability templates, where `*`, `[` or `]` could widen what is granted.
 */
import { MAX_CLIENT_ID_BYTES } from "./constants";

// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const FORBIDDEN = /[*[\]\u0000-\u001f\u007f-\u009f]/;

/** Why `value` cannot be a clientId, or undefined when it can. */
export function clientIdFault(value: unknown): string | undefined {
  if (typeof value !== "string" || value === "") return "is not a non-empty string";
  if (new TextEncoder().encode(value).length > MAX_CLIENT_ID_BYTES) {
    return `is longer than ${MAX_CLIENT_ID_BYTES} bytes`;
  }
  if (value === "." || value === ".." || FORBIDDEN.test(value)) {
    return "contains characters a clientId may not have (*, [, ], control characters) or is . or ..";
  }
  return undefined;
}
