/**
 * The bans newest first, for GET /admin/bans: KV lists only in key order. One Durable Object
 * (SQLite-backed, so on the Free plan too; binding BAN_INDEX, the one instance named INDEX_NAME)
 * holds a row per ban the admin API wrote, put by PUT and deleted by DELETE; a re-ban moves the
 * row to the front. A temporary ban leaves it once its `until` has passed.
 *
 * KV stays the truth about who is banned. A ban written straight into KV is not indexed
 * (GET /admin/bans?order=key lists KV itself); one deleted straight from KV stays listed until
 * DELETE /admin/bans/{clientId}, which answers 204 either way.
 */
import { DurableObject } from "cloudflare:workers";
import type { Config } from "../config";
import { type BanPage, type BanRecord, banListCall, listed } from "./bans";
import { UNBAN_MEMORY_MS } from "../constants";
import { Problem } from "../errors";

/** The name of the one index object: any fixed name; it is never a clientId's object (another class). */
const INDEX_NAME = "bans";

/** A place in the order: a ban's `bannedAt` (ms since the epoch), then its clientId. */
interface Position {
  readonly bannedAt: number;
  readonly clientId: string;
}

export class BanIndex extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    // id: the clientId; at: bannedAt and until: its end (NULL: indefinite), in ms since the epoch;
    // record: the BanRecord as JSON. The index serves the newest-first order read backwards.
    ctx.storage.sql.exec(
      "CREATE TABLE IF NOT EXISTS bans (id TEXT PRIMARY KEY, at INTEGER, until INTEGER, record TEXT)",
    );
    ctx.storage.sql.exec("CREATE INDEX IF NOT EXISTS bans_at ON bans (at, id)");
    // Each page drops the ended bans first: found by this index, not by reading the whole table.
    ctx.storage.sql.exec("CREATE INDEX IF NOT EXISTS bans_until ON bans (until)");
    // id: a clientId; at: when its last unban was made (ms). A PUT still on its way with an older
    // ban must not list it again.
    ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS lifted (id TEXT PRIMARY KEY, at INTEGER)");
  }

  /**
   * Indexes a ban as written by the admin API (it always has `bannedAt`) and put into KV at
   * `writtenAt` (ms), replacing an earlier one, unless an unban made since has lifted it.
   */
  put(clientId: string, record: BanRecord & { bannedAt: string }, writtenAt: number): void {
    const until = record.until === undefined ? null : Date.parse(record.until);
    this.ctx.storage.sql.exec(
      "INSERT OR REPLACE INTO bans SELECT ?1, ?2, ?3, ?4 WHERE NOT EXISTS (SELECT 1 FROM lifted WHERE id = ?1 AND at >= ?5)",
      clientId,
      Date.parse(record.bannedAt),
      until,
      JSON.stringify(record),
      writtenAt,
    );
  }

  /** Takes a ban out, and remembers the unban (at `liftedAt`, ms) for a ban still on its way. */
  remove(clientId: string, liftedAt: number): void {
    this.ctx.storage.sql.exec("DELETE FROM bans WHERE id = ?", clientId);
    this.ctx.storage.sql.exec("DELETE FROM lifted WHERE at < ?", liftedAt - UNBAN_MEMORY_MS);
    this.ctx.storage.sql.exec("INSERT OR REPLACE INTO lifted VALUES (?, ?)", clientId, liftedAt);
  }

  /** Up to `limit` bans after `after`, newest first; those ended by `now` (ms) are dropped for good first. */
  page(after: Position, limit: number, now: number): { clientId: string; bannedAt: number; record: BanRecord }[] {
    this.ctx.storage.sql.exec("DELETE FROM bans WHERE until <= ?", now);
    return this.ctx.storage.sql
      .exec<{ id: string; at: number; record: string }>(
        "SELECT id, at, record FROM bans WHERE (at, id) < (?, ?) ORDER BY at DESC, id DESC LIMIT ?",
        after.bannedAt,
        after.clientId,
        limit,
      )
      .toArray()
      .map((row) => ({
        clientId: row.id,
        bannedAt: row.at,
        record: JSON.parse(row.record) as BanRecord,
      }));
  }
}

const indexOf = (config: Config) => config.banIndex.get(config.banIndex.idFromName(INDEX_NAME));

/** Puts a ban written to KV at `writtenAt` into the index (see BanIndex.put). */
export async function indexBan(
  config: Config,
  clientId: string,
  record: BanRecord & { bannedAt: string },
  writtenAt: Date,
) {
  await banListCall(() => indexOf(config).put(clientId, record, writtenAt.getTime()));
}

/** Takes a ban lifted at `liftedAt` out of the index. */
export async function unindexBan(config: Config, clientId: string, liftedAt: Date) {
  await banListCall(() => indexOf(config).remove(clientId, liftedAt.getTime()));
}

/**
 * One page of the bans in force, newest first, and the cursor of the next (null on the last):
 * `<bannedAt ms>:<clientId>` of the page's last ban, which the next page starts after.
 */
export async function newestBans(config: Config, cursor: string | undefined, limit: number): Promise<BanPage> {
  const now = new Date();
  const after = cursor === undefined ? { bannedAt: Number.MAX_SAFE_INTEGER, clientId: "" } : placeOf(cursor);
  // One more than a page: whether there is a next page, without another call.
  const rows = await banListCall(() => indexOf(config).page(after, limit + 1, now.getTime()));
  const page = rows.slice(0, limit);
  const last = page.at(-1);
  return {
    bans: page.map((row) => listed(row.clientId, row.record, now)),
    cursor: rows.length > limit && last ? `${last.bannedAt}:${last.clientId}` : null,
  };
}

/** The place a cursor names, `<bannedAt ms>:<clientId>`; a malformed one is a 400. */
function placeOf(cursor: string): { bannedAt: number; clientId: string } {
  const match = /^(\d{1,16}):(.+)$/s.exec(cursor);
  if (!match) throw new Problem("request-invalid", "Unknown cursor.");
  return { bannedAt: Number(match[1]), clientId: match[2]! };
}
