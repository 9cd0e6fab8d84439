/**
 * What may be a clientId, and which one a verified user gets. A clientId becomes a KV key (at most
 * 512 bytes, well-formed UTF-16 so KV can encode it, never `.` or `..`) and fills capability
 * templates, where `*`, `[` or `]` could widen what is granted.
 *
 * A user's clientId is their provider's `clientIdPrefix` followed by the user id, and the user id
 * is one channel segment: it holds no `:`. With templates placing `{clientId}` as a whole segment
 * (capability.ts), that is what keeps users apart: `alice` can never own `dm:alice:bob:*`, the
 * channels of a user `alice:bob`, because no such user can exist.
 */
import { MAX_CLIENT_ID_BYTES } from "../constants";
import { isWellFormed, utf8 } from "../validate";

// eslint-disable-next-line no-control-regex -- control characters are exactly what is refused
const FORBIDDEN = /[*[\]\u0000-\u001f\u007f-\u009f]/;

/** Why `value` cannot be a clientId, or undefined when it can. */
export function clientIdFault(value: unknown): string | undefined {
  if (typeof value !== "string" || value === "") return "is not a non-empty string";
  if (!isWellFormed(value)) return "is not well-formed Unicode (a lone surrogate)";
  if (utf8(value).length > MAX_CLIENT_ID_BYTES) {
    return `is longer than ${MAX_CLIENT_ID_BYTES} bytes`;
  }
  if (value === "." || value === ".." || FORBIDDEN.test(value)) {
    return "contains characters a clientId may not have (*, [, ], control characters) or is . or ..";
  }
  return undefined;
}

/** What clientIdFor needs of a provider: the prefix of its users' clientIds. */
interface Prefixed {
  readonly clientIdPrefix: string;
}

/**
 * The clientId of `userId` from `provider`, or why it cannot have one. `providers` are every
 * configured one: two providers' users never share a clientId, because an id that falls inside a
 * longer prefix (`corp:` + `eu:alice` with another provider at `corp:eu:`) or is a segment-wise
 * beginning of one (`corp` beside a provider at `corp:`) is refused. Equal prefixes of two
 * providers are refused when the configuration is read, and a prefix is checked then too, so
 * whatever is wrong with the whole id is the user id's fault.
 */
export function clientIdFor(
  userId: unknown,
  provider: Prefixed,
  providers: readonly Prefixed[],
): { id: string } | { fault: string } {
  if (typeof userId !== "string" || userId === "") return { fault: "is not a non-empty string" };
  if (userId.includes(":")) return { fault: "contains a colon, which separates channel segments" };
  const prefix = provider.clientIdPrefix;
  const id = prefix + userId;
  const fault = clientIdFault(id);
  if (fault) return { fault };
  const other = providers.find(
    (p) =>
      (p.clientIdPrefix.length > prefix.length && id.startsWith(p.clientIdPrefix)) ||
      p.clientIdPrefix.startsWith(`${id}:`),
  );
  if (other)
    return { fault: `falls inside the clientIds of the provider with prefix ${JSON.stringify(other.clientIdPrefix)}` };
  return { id };
}
