/**
 * The ban list: KV namespace BANS, keyed by clientId; a present key bans. Also the role ban: a
 * verified token whose roles match the configured pattern is banned without any KV read.
 *
 * Value: empty or anything → banned indefinitely. JSON `{ "reason", "until", "bannedBy",
 * "bannedAt" }` (all optional; times ISO 8601) → banned, the reason shown to the user, and no
 * longer banned once `until` has passed. A value that cannot be understood bans (fail closed).
 * The full schema is in docs/operations.md ("Banning users").
 */
import type { Config } from "../config";
import type { Identity } from "../identity/identity";
import { BAN_LOOKUP_TIMEOUT_MS, KV_MIN_EXPIRATION_TTL_SECONDS, MAX_BAN_REASON_CHARS } from "../constants";
import { Problem } from "../errors";
import { withTimeout } from "../upstream";
import { isPlainObject } from "../validate";

/** A stored ban, as the admin API writes it. */
export interface BanRecord {
  readonly reason?: string;
  /** ISO 8601; absent for an indefinite ban. */
  readonly until?: string;
  /** Who banned: the moderator's email verified by Cloudflare Access, else what an ADMIN_TOKEN caller said. */
  readonly bannedBy?: string;
  /** ISO 8601. */
  readonly bannedAt?: string;
}

/** A ban in force. */
export interface Ban {
  /** Shown to the user; undefined when the record gives none. */
  readonly reason: string | undefined;
  /** When the ban ends; undefined for an indefinite ban. */
  readonly until: Date | undefined;
}

/**
 * Refuses a banned user with 403 `user-banned` (so ably-js stops retrying): first by a role in the
 * verified token, which costs no KV read, then by the ban list.
 */
export async function refuseBanned(identity: Identity, config: Config): Promise<void> {
  const role = bannedRole(identity.roles, identity.provider.bannedRolePattern);
  if (role !== undefined) throw new Problem("user-banned", `You are banned (role ${role}).`);
  const ban = await banFor(config.bans, identity.clientId, config.banCacheTtlSeconds, config.banListFailOpen);
  if (ban) {
    throw new Problem("user-banned", ban.reason ? `You are banned: ${ban.reason}` : "You are banned from this app.");
  }
}

/**
 * The ban in force for `clientId`, or null. `cacheTtlSeconds` lets each location serve the answer
 * from its cache for that long, which is how long a new ban may take to hold there.
 * A KV read that fails or takes over 2 s is `ban-list-unavailable` (503): we never issue a token we
 * could not check, unless the operator chose `failOpen` (BAN_LIST_FAIL_OPEN), which logs and issues.
 */
export async function banFor(
  bans: KVNamespace,
  clientId: string,
  cacheTtlSeconds: number,
  failOpen = false,
  now: Date = new Date(),
): Promise<Ban | null> {
  let value: string | null;
  try {
    value = await banListCall(() => bans.get(clientId, { cacheTtl: cacheTtlSeconds }));
  } catch (error) {
    if (!failOpen) throw error;
    console.warn({ banList: "unavailable", failOpen: true });
    return null;
  }
  return value === null ? null : parseBan(value, now);
}

/** What a stored ban value means at `now`. */
function parseBan(value: string, now: Date): Ban | null {
  return banIn(parseRecord(value), now);
}

/**
 * An ISO 8601 date and time with its zone, as the admin API writes `until`. Only this ends a ban:
 * `Date` also reads "5" or "0" (as years), which would lift a ban nobody meant to lift.
 */
const ISO_INSTANT = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:\d{2})$/;

/** What a ban record means at `now`. */
function banIn(record: BanRecord, now: Date): Ban | null {
  const end = record.until !== undefined && ISO_INSTANT.test(record.until) ? new Date(record.until) : undefined;
  // An `until` that is present but unreadable bans indefinitely rather than not at all.
  const readableEnd = end && !Number.isNaN(end.getTime()) ? end : undefined;
  if (readableEnd && readableEnd <= now) return null;
  return { reason: shown(record.reason), until: readableEnd };
}

/** The part of a reason the user is shown: at most MAX_BAN_REASON_CHARS, never half of a surrogate pair. */
function shown(reason: string | undefined): string | undefined {
  const cut = reason?.slice(0, MAX_BAN_REASON_CHARS);
  return cut !== undefined && /[\ud800-\udbff]$/.test(cut) ? cut.slice(0, -1) : cut;
}

/** The first of `roles` that matches the banned-role pattern, or undefined. */
function bannedRole(roles: readonly string[], pattern: RegExp): string | undefined {
  return roles.find((role) => pattern.test(role));
}

/** Reads one stored record, or null when the key is absent. No cacheTtl: moderators see fresh data. */
export async function readBan(bans: KVNamespace, clientId: string): Promise<BanRecord | null> {
  const value = await banListCall(() => bans.get(clientId));
  return value === null ? null : parseRecord(value);
}

/**
 * Stores a ban. A temporary one (`ttlSeconds`) ends at `until` and its key expires by itself; KV
 * keeps a key at least 60 s, so a shorter ban outlives its `until` in KV but not in effect.
 */
export async function writeBan(
  bans: KVNamespace,
  clientId: string,
  record: BanRecord,
  ttlSeconds: number | undefined,
): Promise<void> {
  // No metadata: KV sends it as a header, where free text (a reason, an email) is not plain ASCII.
  const options =
    ttlSeconds === undefined ? {} : { expirationTtl: Math.max(ttlSeconds, KV_MIN_EXPIRATION_TTL_SECONDS) };
  await banListCall(() => bans.put(clientId, JSON.stringify(record), options));
}

export async function deleteBan(bans: KVNamespace, clientId: string): Promise<void> {
  await banListCall(() => bans.delete(clientId));
}

/** A ban as the admin API shows it: its record, and whether it bans at the time of asking. */
export type ListedBan = BanRecord & { readonly clientId: string; readonly active: boolean };

/** One page of a listing, and the cursor of the next (null on the last). */
export type BanPage = { bans: ListedBan[]; cursor: string | null };

export function listed(clientId: string, record: BanRecord, now: Date): ListedBan {
  return { clientId, ...record, active: banIn(record, now) !== null };
}

/**
 * One page of bans in KV's key order, with the cursor of the next page (null on the last one).
 * Each key's value is read (one KV read per ban, all at once), so a ban written straight into KV is
 * listed with its reason and `until` too; a key deleted meanwhile is left out.
 */
export async function listBans(bans: KVNamespace, cursor: string | undefined, limit: number): Promise<BanPage> {
  const now = new Date();
  const page = await banListCall(() => bans.list({ cursor, limit }));
  const records = await Promise.all(page.keys.map((key) => readBan(bans, key.name)));
  return {
    bans: page.keys.flatMap((key, i) => (records[i] ? [listed(key.name, records[i], now)] : [])),
    cursor: page.list_complete ? null : page.cursor,
  };
}

/** The record in a stored value; any value that is not a JSON object is an indefinite ban. */
function parseRecord(value: string): BanRecord {
  let record: unknown;
  try {
    record = JSON.parse(value);
  } catch {
    return {};
  }
  if (!isPlainObject(record)) return {};
  const { reason, until, bannedBy, bannedAt } = record;
  const text = (v: unknown) => (typeof v === "string" ? v : undefined);
  // A non-string `until` must still ban: keep it as unreadable text rather than drop it.
  const end = until === undefined ? undefined : (text(until) ?? "unreadable");
  return strip({ reason: text(reason), until: end, bannedBy: text(bannedBy), bannedAt: text(bannedAt) });
}

function strip(record: { [K in keyof BanRecord]: string | undefined }): BanRecord {
  return Object.fromEntries(Object.entries(record).filter(([, v]) => v !== undefined));
}

/**
 * Runs one operation on the ban list (KV, or its index); any failure of the store itself, or a wait
 * past the timeout, is `ban-list-unavailable` (503).
 */
export async function banListCall<T>(operation: () => Promise<T>): Promise<T> {
  try {
    return await withTimeout(operation(), BAN_LOOKUP_TIMEOUT_MS, () => new Error("timed out"));
  } catch {
    throw new Problem("ban-list-unavailable", "The ban list could not be read or written; try again shortly.");
  }
}
