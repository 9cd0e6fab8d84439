/**
 * The revocations a ban makes at Ably, kept in a Durable Object per banned clientId (SQLite-backed,
 * so on the Free plan too; binding BAN_REVOCATIONS, `idFromName(clientId)`).
 *
 * Why two rounds: Ably's revokeTokens reaches only tokens issued before its `issuedBefore`. The
 * first round (at the ban) cuts off live connections; their clients re-authenticate at once, and a
 * location whose ban list has not caught up yet (KV propagation, cached reads) may mint a fresh
 * token. The second round, BAN_PROPAGATION_SECONDS later when every location refuses the user,
 * revokes with `issuedBefore` at that moment and so reaches every token minted in between: from
 * then on no token of the user outlives the ban (unless a location lagged longer; SECURITY.md).
 *
 * Why a Durable Object alarm and not `waitUntil`: the second round must survive a restart or a
 * deploy in between, and an alarm is persisted and retried. A round Ably answers with 429 or 5xx,
 * or not at all, is tried again with doubling delays (constants.ts): the first round each time up
 * to the moment Ably gets the call (its default `issuedBefore`, which no clock of ours can put in
 * Ably's future), the second keeping its first `issuedBefore`, while Ably still accepts it (1 h).
 * Every attempt is kept in the object's storage for GET /admin/bans/{clientId}. Unbanning deletes
 * it all; banning again starts anew.
 */
import { DurableObject } from "cloudflare:workers";
import { type Config, loadConfig } from "../config";
import {
  ABLY_MAX_ISSUED_BEFORE_AGE_MS,
  ISSUED_BEFORE_SKEW_MS,
  REVOCATION_MAX_ATTEMPTS,
  REVOCATION_RETRY_BASE_MS,
  UPSTREAM_TIMEOUT_MS,
} from "../constants";
import { type Revocation, revokeClientTokens } from "./revocation";

/** One call to Ably's revokeTokens, as stored. Times in ms since the epoch. */
interface Attempt {
  /** When it ended: Ably's answer, or giving up on one. */
  readonly at: number;
  /** Undefined when left to Ably (the first round) and Ably did not say. */
  readonly issuedBefore: number | undefined;
  readonly outcome: "revoked" | "failed";
  readonly reason?: string;
}

/** One revocation, tried until it succeeds or is given up. */
interface Round {
  readonly name: "at-ban" | "after-propagation";
  /** When it falls due (its first attempt); retries come later. */
  readonly due: number;
  readonly state: "pending" | "revoked" | "failed";
  readonly attempts: readonly Attempt[];
}

/** What the object stores under PLAN_KEY: everything but the Ably key, which comes from the environment. */
interface Plan {
  /** New on every write: an attempt whose plan changed while it awaited Ably drops its result. */
  readonly revision: string;
  readonly clientId: string;
  readonly restUrl: string;
  readonly rounds: readonly Round[];
}

/** What the admin API shows of a ban's revocations. Times are ISO 8601. */
export interface RevocationStatus {
  /**
   * `pending` while a round is still to come, `revoked` once all are done, `failed` once one was
   * given up; `none` when this ban planned none (written straight into KV); `not-enabled` without
   * ABLY_REVOCABLE_TOKENS.
   */
  readonly status: "pending" | "revoked" | "failed" | "none" | "not-enabled";
  /**
   * From when no token issued to the user is valid any more, the ban having reached every location
   * (within BAN_PROPAGATION_SECONDS): the last round's success, or when it is next tried; null once
   * it failed. Without revocable tokens: the ban plus BAN_PROPAGATION_SECONDS plus the token lifetime.
   */
  readonly airtightAt: string | null;
  /** When the next attempt is due; null when none is. */
  readonly nextAttemptAt?: string | null;
  readonly rounds?: readonly {
    readonly name: Round["name"];
    readonly due: string;
    readonly state: Round["state"];
    /** `issuedBefore` null: the moment Ably got the call, which Ably did not report. */
    readonly attempts: readonly {
      at: string;
      issuedBefore: string | null;
      outcome: Attempt["outcome"];
      reason?: string;
    }[];
  }[];
}

const PLAN_KEY = "plan";
/** When the last unban of this clientId was made (ms): a ban from before it plans nothing. */
const LIFTED_KEY = "liftedAt";

export class BanRevocations extends DurableObject<Env> {
  /**
   * Revokes the user's tokens now and again `propagationSeconds` from now, replacing whatever was
   * planned before (a re-ban reschedules). Answers once the first round's first attempt is made.
   * A ban put into KV at `writtenAt` (ms) that an unban has lifted since plans nothing: the unban
   * ran while its PUT was on its way here.
   */
  async revokeNowAndAfterPropagation(
    clientId: string,
    restUrl: string,
    propagationSeconds: number,
    writtenAt: number,
  ): Promise<RevocationStatus> {
    if (writtenAt <= ((await this.ctx.storage.get<number>(LIFTED_KEY)) ?? -Infinity)) {
      return { status: "none", airtightAt: null };
    }
    const now = Date.now();
    const round = (name: Round["name"], due: number): Round => ({ name, due, state: "pending", attempts: [] });
    const plan = await this.store(
      {
        clientId,
        restUrl,
        rounds: [round("at-ban", now), round("after-propagation", now + propagationSeconds * 1000)],
      },
      // Stored before calling Ably, with the alarm where the retry would be had the call failed: a
      // crash during it is retried, and no alarm races it.
      now + UPSTREAM_TIMEOUT_MS + retryDelay(1),
    );
    const stored = await this.attemptNext(plan);
    return stored ? statusOf(stored) : { status: "none", airtightAt: null };
  }

  /** Drops every pending round and the history: the ban was lifted at `liftedAt` (ms). */
  async cancel(liftedAt: number): Promise<void> {
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    await this.ctx.storage.put(LIFTED_KEY, liftedAt);
  }

  /** The revocations of the current ban, or null when none was planned. */
  async status(): Promise<RevocationStatus | null> {
    const plan = await this.ctx.storage.get<Plan>(PLAN_KEY);
    return plan ? statusOf(plan) : null;
  }

  /** Makes the attempt that is due. An alarm runs when it is due, so none is checked against the clock. */
  override async alarm(): Promise<void> {
    const plan = await this.ctx.storage.get<Plan>(PLAN_KEY);
    if (plan) await this.attemptNext(plan);
  }

  /**
   * Makes the earliest pending round's next attempt and stores the result, with the alarm at the
   * attempt after it; answers the plan stored then. The first round leaves `issuedBefore` to Ably
   * (the moment of each call), so that it reaches a token issued a moment before the ban whatever
   * the clocks; the second keeps the `issuedBefore` of its first attempt, so that its retries
   * revoke what it set out to (and no token issued later, e.g. once a temporary ban ended).
   * Other calls and alarms may run while Ably is awaited (a Durable Object's input gate stays open
   * during a fetch, and keeping it shut with blockConcurrencyWhile also holds back the fetch's own
   * timeout): an unban or a re-ban meanwhile wins, and this result is dropped.
   */
  private async attemptNext(plan: Plan): Promise<Plan | undefined> {
    const next = nextAttempt(plan);
    if (!next) return plan;
    const round = plan.rounds[next.index]!;
    const fixed =
      round.name === "at-ban" ? undefined : (round.attempts[0]?.issuedBefore ?? Date.now() - ISSUED_BEFORE_SKEW_MS);
    const result = await this.revoke(plan, fixed);
    const issuedBefore = result.status === "revoked" ? result.issuedBefore : fixed;
    const at = Date.now(); // when Ably answered or the call gave up: the backoff counts from there
    if (result.status === "failed") {
      console.warn({ revocation: "failed", clientId: plan.clientId, round: round.name, reason: result.reason });
    }
    const attempts = [
      ...round.attempts,
      { at, issuedBefore, outcome: result.status, ...(result.status === "failed" ? { reason: result.reason } : {}) },
    ];
    const rounds = plan.rounds.map((r, i) =>
      i === next.index ? { ...r, attempts, state: stateAfter(result, attempts, fixed) } : r,
    );
    const current = await this.ctx.storage.get<Plan>(PLAN_KEY);
    if (current?.revision !== plan.revision) return current;
    return this.store({ ...plan, rounds });
  }

  /** One call to Ably with the key from this object's environment, which is the worker's. */
  private async revoke(plan: Plan, issuedBefore: number | undefined): Promise<Revocation> {
    const result = loadConfig(this.env);
    if (!result.ok) return { status: "failed", reason: "the worker is misconfigured (see /healthz)", retryable: true };
    return revokeClientTokens(plan.restUrl, result.config.ablyKey, plan.clientId, issuedBefore);
  }

  /**
   * Stores the plan under a new revision and points the alarm at `alarmAt`, by default its next
   * attempt; clears the alarm when none is left.
   */
  private async store(content: Omit<Plan, "revision">, alarmAt = nextAttempt(content)?.at): Promise<Plan> {
    const plan = { ...content, revision: crypto.randomUUID() };
    await this.ctx.storage.put(PLAN_KEY, plan);
    if (alarmAt === undefined) await this.ctx.storage.deleteAlarm();
    else await this.ctx.storage.setAlarm(alarmAt);
    return plan;
  }
}

/** The pending round to try next and when. */
function nextAttempt(plan: Pick<Plan, "rounds">): { index: number; at: number } | undefined {
  let next: { index: number; at: number } | undefined;
  plan.rounds.forEach((round, index) => {
    const at = nextAttemptOf(round);
    if (at !== undefined && (!next || at < next.at)) next = { index, at };
  });
  return next;
}

/** When a pending round is tried next: when it is due, or the backoff after its last failure. */
function nextAttemptOf(round: Round): number | undefined {
  if (round.state !== "pending") return undefined;
  const last = round.attempts.at(-1);
  return last ? last.at + retryDelay(round.attempts.length) : round.due;
}

/** The wait after the `failures`-th failed attempt: REVOCATION_RETRY_BASE_MS, doubling each time. */
export const retryDelay = (failures: number): number => REVOCATION_RETRY_BASE_MS * 2 ** (failures - 1);

/**
 * A round's state after an attempt: given up after a failure that will not pass by retrying, after
 * REVOCATION_MAX_ATTEMPTS, or when the next try would come after Ably stops accepting a fixed `issuedBefore`.
 */
function stateAfter(result: Revocation, attempts: readonly Attempt[], fixed: number | undefined): Round["state"] {
  if (result.status === "revoked") return "revoked";
  const nextAt = attempts.at(-1)!.at + retryDelay(attempts.length);
  const inTime = fixed === undefined || nextAt - fixed < ABLY_MAX_ISSUED_BEFORE_AGE_MS;
  const retry = result.retryable && attempts.length < REVOCATION_MAX_ATTEMPTS && inTime;
  return retry ? "pending" : "failed";
}

/**
 * What the admin API shows. The ban is airtight when the last round succeeds: its `issuedBefore` is
 * the latest, so it revokes all the first one did and every token minted since.
 */
function statusOf(plan: Plan): RevocationStatus {
  const iso = (ms: number) => new Date(ms).toISOString();
  const next = nextAttempt(plan);
  const last = plan.rounds.at(-1)!;
  const airtight = last.state === "revoked" ? last.attempts.at(-1)!.at : nextAttemptOf(last);
  return {
    status: plan.rounds.some((r) => r.state === "failed") ? "failed" : next ? "pending" : "revoked",
    airtightAt: airtight === undefined ? null : iso(airtight),
    nextAttemptAt: next ? iso(next.at) : null,
    rounds: plan.rounds.map((r) => ({
      name: r.name,
      due: iso(r.due),
      state: r.state,
      attempts: r.attempts.map((a) => ({
        ...a,
        at: iso(a.at),
        issuedBefore: a.issuedBefore === undefined ? null : iso(a.issuedBefore),
      })),
    })),
  };
}

/** The object for `clientId`. */
const objectFor = (namespace: DurableObjectNamespace<BanRevocations>, clientId: string) =>
  namespace.get(namespace.idFromName(clientId));

/**
 * What a new ban does about tokens already issued: with revocable tokens, revoke now and after
 * BAN_PROPAGATION_SECONDS; without, nothing (see `withoutRevocation`). `writtenAt`: when the ban
 * was put into KV, so that an unban made since wins (BanRevocations.revokeNowAndAfterPropagation).
 */
export async function revokeForBan(
  config: Config,
  clientId: string,
  bannedAt: Date,
  writtenAt: Date = bannedAt,
): Promise<RevocationStatus> {
  if (!config.revocableTokens || !config.banRevocations) return withoutRevocation(config, bannedAt);
  return objectFor(config.banRevocations, clientId).revokeNowAndAfterPropagation(
    clientId,
    config.ablyRestUrl,
    config.banPropagationSeconds,
    writtenAt.getTime(),
  );
}

/**
 * The revocations of `clientId`'s ban as the admin API shows them. With revocable tokens but none
 * planned (a ban written straight into KV), `none`: POST /admin/bans/{clientId}/revoke plans them.
 */
export async function revocationStatus(
  config: Config,
  clientId: string,
  bannedAt: Date | undefined,
): Promise<RevocationStatus> {
  if (!config.revocableTokens || !config.banRevocations) return withoutRevocation(config, bannedAt);
  return (await objectFor(config.banRevocations, clientId).status()) ?? { status: "none", airtightAt: null };
}

/** Cancels what is pending for `clientId`, and any ban from before `liftedAt` still on its way (an unban). */
export async function cancelRevocations(config: Config, clientId: string, liftedAt: Date): Promise<void> {
  if (config.revocableTokens && config.banRevocations) {
    await objectFor(config.banRevocations, clientId).cancel(liftedAt.getTime());
  }
}

/**
 * Without revocable tokens a ban holds once every token issued before it reached every location has
 * expired: BAN_PROPAGATION_SECONDS plus the token lifetime after it (unknown when it gives no time).
 */
function withoutRevocation(config: Config, bannedAt: Date | undefined): RevocationStatus {
  const airtight = bannedAt && bannedAt.getTime() + (config.banPropagationSeconds + config.tokenTtlSeconds) * 1000;
  return {
    status: "not-enabled",
    airtightAt: airtight && !Number.isNaN(airtight) ? new Date(airtight).toISOString() : null,
  };
}
