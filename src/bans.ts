/**
 * The ban list: KV namespace BANS, keyed by clientId. Reads only; a present key bans.
 *
 * Value: empty or anything → banned indefinitely. JSON `{ "reason": "...", "until": "<ISO 8601>" }`
 * → banned, the reason shown to the user, and no longer banned once `until` has passed. A value
 * that cannot be understood bans (fail closed). The full schema is in the README.
 */
import { MAX_BAN_REASON_CHARS } from "./constants";
import { Problem } from "./errors";

/** A ban in force. */
export interface Ban {
  /** Shown to the user; undefined when the record gives none. */
  readonly reason: string | undefined;
  /** When the ban ends; undefined for an indefinite ban. */
  readonly until: Date | undefined;
}

/**
 * The ban in force for `clientId`, or null. `cacheTtlSeconds` lets each location serve the answer
 * from its cache for that long, which is how long a new ban may take to hold there.
 * A KV failure is `ban-list-unavailable` (503): we never issue a token we could not check.
 */
export async function banFor(
  bans: KVNamespace,
  clientId: string,
  cacheTtlSeconds: number,
  now: Date = new Date(),
): Promise<Ban | null> {
  let value: string | null;
  try {
    value = await bans.get(clientId, { cacheTtl: cacheTtlSeconds });
  } catch {
    throw new Problem("ban-list-unavailable", "The ban list could not be read; try again shortly.");
  }
  return value === null ? null : parseBan(value, now);
}

/** What a stored ban record means at `now`. Exported for tests of the schema. */
export function parseBan(value: string, now: Date): Ban | null {
  let record: unknown;
  try {
    record = JSON.parse(value);
  } catch {
    return { reason: undefined, until: undefined };
  }
  if (typeof record !== "object" || record === null || Array.isArray(record)) {
    return { reason: undefined, until: undefined };
  }
  const { reason, until } = record as { reason?: unknown; until?: unknown };
  const end = typeof until === "string" ? new Date(until) : undefined;
  // An `until` that is present but unreadable bans indefinitely rather than not at all.
  const readableEnd = end && !Number.isNaN(end.getTime()) ? end : undefined;
  if (readableEnd && readableEnd <= now) return null;
  return {
    reason: typeof reason === "string" ? reason.slice(0, MAX_BAN_REASON_CHARS) : undefined,
    until: readableEnd,
  };
}
