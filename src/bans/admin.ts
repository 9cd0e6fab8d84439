/**
 * The moderators' API, on with ADMIN_TOKEN or Cloudflare Access (404 otherwise); only a moderator
 * may call it, proven by Access or holding ADMIN_TOKEN (moderator.ts). Bans written here are the
 * same KV records the auth route reads, also kept newest first in an index (ban-index.ts); with
 * ABLY_REVOCABLE_TOKENS a ban also revokes the user's live Ably tokens, at once and again once the
 * ban has reached every location (ban-revocations.ts).
 *
 *   GET    /admin/whoami                  → { moderator: email | null, via: "access" | "token" }
 *   PUT    /admin/bans/{clientId}         { "reason"?, "ttlSeconds"?, "bannedBy"? } → the stored ban + revocation
 *                                         (bannedBy: token callers without Access only; else the verified email or "admin-api")
 *   GET    /admin/bans/{clientId}         → the ban + active + its revocation attempts, or 404
 *   DELETE /admin/bans/{clientId}         → 204, and pending revocations cancelled
 *   POST   /admin/bans/{clientId}/revoke  → revocation for a ban written straight into KV
 *   GET    /admin/bans?cursor=            → { bans: [...], cursor } newest first, bans in force only
 *   GET    /admin/bans?order=key&cursor=  → the same in KV's key order, every key (100 a page; cursor null on the last)
 */
import type { Context, MiddlewareHandler } from "hono";
import { Hono } from "hono/tiny";
import { isAdminOn } from "../config";
import { indexBan, newestBans, unindexBan } from "./ban-index";
import { cancelRevocations, revocationStatus, revokeForBan } from "./ban-revocations";
import { type BanRecord, deleteBan, listBans, listed, readBan, writeBan } from "./bans";
import { moderatorOf } from "./moderator";
import { clientIdFault } from "../identity/client-id";
import { ADMIN_LIST_PAGE_SIZE, MAX_BAN_REASON_BYTES, MAX_BAN_TTL_SECONDS, MAX_BANNED_BY_BYTES } from "../constants";
import { type AppEnv, allowMethods } from "../request/context";
import { Problem } from "../errors";
import { mediaType } from "../request/request-headers";
import { isPlainObject, isWellFormed, storedBytes } from "../validate";

export const admin = new Hono<AppEnv>();

admin.use("/whoami", allowMethods(["GET"]));
admin.use("/bans", allowMethods(["GET"]));
admin.use("/bans/:clientId", allowMethods(["GET", "PUT", "DELETE"]));
admin.use("/bans/:clientId/revoke", allowMethods(["POST"]));

admin.get("/whoami", (c) => {
  const { email, via } = c.get("moderator");
  return c.json({ moderator: email ?? null, via });
});

admin.get("/bans", async (c) => {
  const config = c.get("config");
  const cursor = c.req.query("cursor") || undefined;
  const order = c.req.query("order");
  if (order === "key") return c.json(await listBans(config.bans, cursor, ADMIN_LIST_PAGE_SIZE));
  if (order !== undefined) throw new Problem("request-invalid", "order may only be key.");
  return c.json(await newestBans(config, cursor, ADMIN_LIST_PAGE_SIZE));
});

admin.get("/bans/:clientId", async (c) => {
  const config = c.get("config");
  const clientId = subjectOf(c);
  const record = await readBan(config.bans, clientId);
  if (!record) throw new Problem("ban-not-found", `${clientId} is not banned.`);
  const bannedAt = record.bannedAt === undefined ? undefined : new Date(record.bannedAt);
  return c.json({
    ...listed(clientId, record, new Date()),
    revocation: await revocationStatus(config, clientId, bannedAt),
  });
});

admin.put("/bans/:clientId", async (c) => {
  const config = c.get("config");
  const clientId = subjectOf(c);
  const { reason, ttlSeconds, bannedBy } = parseBanRequest(c.req.header("Content-Type"), await c.req.text());
  const { email } = c.get("moderator");
  // With Access on, bannedBy is proof: a verified email, or "admin-api" for a token caller, who
  // could otherwise sign a ban with a moderator's address.
  if (bannedBy !== undefined && config.access) {
    throw new Problem("request-invalid", "bannedBy is recorded for you while Cloudflare Access is on: leave it out.");
  }
  const now = new Date();
  // Undefined fields vanish when the record is serialized.
  const record = {
    reason,
    until: ttlSeconds === undefined ? undefined : new Date(now.getTime() + ttlSeconds * 1000).toISOString(),
    bannedBy: email ?? bannedBy ?? "admin-api",
    bannedAt: now.toISOString(),
  } satisfies BanRecord;
  // The ban and its revocation first: the index only lists, and its failure (a 503 to retry) must
  // never leave a ban in force without its revocation planned.
  await writeBan(config.bans, clientId, record, ttlSeconds);
  // From here the ban is in KV: an unban made after this moment wins everywhere, one made before
  // it (which KV has already overwritten) nowhere.
  const written = new Date();
  const revocation = await revokeForBan(config, clientId, now, written);
  await indexBan(config, clientId, record, written);
  c.set("outcome", "banned");
  // The shape GET answers with: the record, whether it bans now (it does), its revocation.
  return c.json({ ...listed(clientId, record, now), revocation });
});

admin.delete("/bans/:clientId", async (c) => {
  const config = c.get("config");
  const clientId = subjectOf(c);
  // Bans made before this moment are lifted, also one whose PUT is still on its way to the index
  // or the revocations (a PUT waits up to 5 s on Ably): it must not list or revoke afterwards.
  const liftedAt = new Date();
  await deleteBan(config.bans, clientId);
  // Before the index, as in PUT: a lifted ban's planned revocation must never outlive a failed index.
  await cancelRevocations(config, clientId, liftedAt);
  await unindexBan(config, clientId, liftedAt);
  c.set("outcome", "unbanned");
  return c.body(null, 204);
});

// A ban put straight into KV (`wrangler kv key put`) schedules nothing: this revokes for it, as a
// PUT would have, counting BAN_PROPAGATION_SECONDS from now.
admin.post("/bans/:clientId/revoke", async (c) => {
  const config = c.get("config");
  const clientId = subjectOf(c);
  if (!config.revocableTokens) {
    throw new Problem(
      "revocation-not-enabled",
      "Set ABLY_REVOCABLE_TOKENS=true (for a key with revocable tokens) to revoke.",
    );
  }
  if (!(await readBan(config.bans, clientId))) throw new Problem("ban-not-found", `${clientId} is not banned.`);
  const revocation = await revokeForBan(config, clientId, new Date());
  c.set("outcome", "revoked");
  return c.json({ clientId, revocation });
});

/** 404 for the admin API and its console unless ADMIN_TOKEN or Cloudflare Access is configured. */
export function adminOn(): MiddlewareHandler<AppEnv> {
  return async function adminOn(c, next) {
    if (!isAdminOn(c.get("config"))) {
      throw new Problem("not-found", "The admin API is off (no ADMIN_TOKEN, no Cloudflare Access).");
    }
    await next();
  };
}

/** Only a moderator passes (moderator.ts). */
export function adminAuth(): MiddlewareHandler<AppEnv> {
  return async function adminAuth(c, next) {
    c.set("moderator", await moderatorOf(c, c.get("config")));
    await next();
  };
}

/** The clientId the call acts on, also put in the log record. */
function subjectOf(c: Context<AppEnv>): string {
  const clientId = clientIdParam(c.req.url);
  c.set("clientId", clientId);
  return clientId;
}

/** The clientId of `/admin/bans/{clientId}[/revoke]` in the request's `url`, or a 400 saying what is wrong with it. */
function clientIdParam(url: string): string {
  // Decoded here, strictly: Hono's param keeps a malformed escape (`%ED%A0%80`, a lone surrogate)
  // as literal text, which would ban an id nobody sent.
  // The third segment: this app is mounted at /admin (src/index.ts), its routes are /bans/:clientId.
  const raw = new URL(url).pathname.split("/")[3]!;
  let value: string;
  try {
    value = decodeURIComponent(raw);
  } catch {
    throw new Problem("request-invalid", "The clientId in the path is not percent-encoded UTF-8.");
  }
  const fault = clientIdFault(value);
  if (fault) throw new Problem("request-invalid", `The clientId in the path ${fault}.`);
  return value;
}

/** The PUT body: a JSON object with only the optional `reason`, `ttlSeconds` and `bannedBy`. */
function parseBanRequest(
  type: string | undefined,
  body: string,
): { reason?: string; ttlSeconds?: number; bannedBy?: string } {
  const invalid = (why: string) => new Problem("request-invalid", why);
  if (body === "") return {};
  if (mediaType(type) !== "application/json") {
    throw new Problem("unsupported-media-type", "Send the ban as application/json.");
  }
  let value: unknown;
  try {
    value = JSON.parse(body);
  } catch {
    throw invalid("The body is not valid JSON.");
  }
  if (!isPlainObject(value)) {
    throw invalid('The body must be a JSON object such as {"reason":"spam","ttlSeconds":3600}.');
  }
  const { reason, ttlSeconds, bannedBy, ...unknown } = value;
  const extra = Object.keys(unknown);
  if (extra.length > 0) throw invalid(`Unknown fields: ${extra.join(", ")}; use reason, ttlSeconds, bannedBy.`);
  // Well-formed (no lone surrogate, which no UTF-8 can carry to the user), its size counted as stored.
  const fits = (text: unknown, bytes: number) =>
    typeof text === "string" && isWellFormed(text) && storedBytes(text) <= bytes;
  if (reason !== undefined && !fits(reason, MAX_BAN_REASON_BYTES)) {
    throw invalid(
      `reason must be well-formed text of at most ${MAX_BAN_REASON_BYTES} bytes as stored (JSON-escaped UTF-8).`,
    );
  }
  if (bannedBy !== undefined && !fits(bannedBy, MAX_BANNED_BY_BYTES)) {
    throw invalid(
      `bannedBy must be well-formed text of at most ${MAX_BANNED_BY_BYTES} bytes as stored (JSON-escaped UTF-8).`,
    );
  }
  const ttlOk =
    typeof ttlSeconds === "number" &&
    Number.isInteger(ttlSeconds) &&
    ttlSeconds >= 1 &&
    ttlSeconds <= MAX_BAN_TTL_SECONDS;
  if (ttlSeconds !== undefined && !ttlOk) {
    throw invalid(`ttlSeconds must be a whole number from 1 to ${MAX_BAN_TTL_SECONDS}; omit it for an indefinite ban.`);
  }
  return value; // every field checked above
}
