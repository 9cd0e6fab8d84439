/**
 * What a local stand-in for Ably remembers, shared by its REST and Realtime halves: every token
 * presented (checked as token-check.ts says Ably checks it), and the revocations.
 *
 * Token revocation as Ably documents it ("Token revocation"; REST `POST /keys/{keyName}/revokeTokens`):
 * HTTP basic auth with the key, a JSON body of 1 to 100 `targets` of the form `type:value` and an
 * optional `issuedBefore` (ms; the time of the call when absent; refused in the future or more than
 * 1 h back); answered 201 with one result per target. It revokes the tokens of a `clientId:` target
 * issued before `issuedBefore` (`iat` × 1000 < `issuedBefore`): such a token is refused with 40141
 * from then on, and the listeners (the live connections) are told, so they can cut the ones holding
 * one. A token issued later is untouched. Other target types are answered and recorded only.
 */
import {
  type AblyError,
  ablyError,
  type AblyGrant,
  type Capability,
  checkToken,
  isError,
  parseObject,
} from "./token-check.ts";

/** One token presented to the stand-in. */
export interface Seen {
  via: "rest" | "connect" | "auth";
  token: string;
  grant?: AblyGrant;
  error?: AblyError;
}

/** One happening at the stand-in, for assertions on the order of things. */
export type Event =
  | ({ kind: "token" } & Seen)
  | { kind: "revocation"; target: string; issuedBefore: number }
  | { kind: "cut"; clientId: string | undefined; token: string; code: number }
  | { kind: "mark"; label: string };

const TARGET_TYPES = new Set(["clientId", "revocationKey", "channel"]);
/** Ably refuses a revocation's `issuedBefore` further back than this, in ms (1 h). */
const MAX_ISSUED_BEFORE_AGE_MS = 3_600_000;
/** Ably's limit on targets in one revocation request. */
const MAX_TARGETS = 100;

/** A key with every capability: what the development key and most tests use. */
export const EVERYTHING: Capability = { "[*]*": ["*"] };

export function createStandIn(apiKey: string, keyCapability: Capability = EVERYTHING) {
  const [keyName] = apiKey.split(":") as [string];
  const seen: Seen[] = [];
  const log: Event[] = [];
  /** What was revoked (target, issuedBefore), in order. */
  const revoked: { target: string; issuedBefore: number }[] = [];
  /** clientId → the latest `issuedBefore` it was revoked with: tokens issued before it are refused. */
  const revokedBefore = new Map<string, number>();
  const onRevocation = new Set<() => void>();

  const isRevoked = (grant: AblyGrant) =>
    grant.clientId !== undefined && grant.iat * 1000 < (revokedBefore.get(grant.clientId) ?? -Infinity);

  /** Checks and records one presented token. */
  function present(via: Seen["via"], token: string): AblyGrant | AblyError {
    const checked = checkToken(token, apiKey, keyCapability);
    const result = !isError(checked) && isRevoked(checked) ? ablyError(40141, "Token revoked") : checked;
    const entry: Seen = isError(result) ? { via, token, error: result } : { via, token, grant: result };
    seen.push(entry);
    log.push({ kind: "token", ...entry });
    return result;
  }

  /** `POST /keys/{keyName}/revokeTokens`, checked as Ably documents it; answers [status, body]. */
  function revokeTokens(authorization: string | null, contentType: string | null, body: string): [number, unknown] {
    const refuse = (statusCode: number, code: number, message: string): [number, unknown] => [
      statusCode,
      { error: ablyError(code, message, statusCode) },
    ];
    if (authorization !== `Basic ${Buffer.from(apiKey).toString("base64")}`) {
      return refuse(401, 40101, "Invalid credentials");
    }
    if (!contentType?.startsWith("application/json")) return refuse(400, 40000, "expected application/json");
    const request = parseObject(body);
    const targets = request?.targets;
    if (
      !Array.isArray(targets) ||
      targets.length === 0 ||
      targets.length > MAX_TARGETS ||
      !targets.every((t) => typeof t === "string" && t.includes(":") && TARGET_TYPES.has(t.split(":")[0]!))
    ) {
      return refuse(400, 40000, "targets must be 1 to 100 strings of the form type:value");
    }
    const now = Date.now();
    const issuedBefore = request?.issuedBefore ?? now;
    if (typeof issuedBefore !== "number" || issuedBefore > now || issuedBefore < now - MAX_ISSUED_BEFORE_AGE_MS) {
      return refuse(400, 40000, "issuedBefore must be a time in ms, not in the future nor more than 1 h back");
    }
    for (const target of targets as string[]) {
      revoked.push({ target, issuedBefore });
      log.push({ kind: "revocation", target, issuedBefore });
      const clientId = /^clientId:(.+)$/.exec(target)?.[1];
      if (clientId !== undefined) {
        revokedBefore.set(clientId, Math.max(issuedBefore, revokedBefore.get(clientId) ?? -Infinity));
      }
    }
    for (const listener of onRevocation) listener();
    return [201, (targets as string[]).map((target) => ({ target, issuedBefore, appliesAt: now }))];
  }

  return {
    keyName,
    present,
    isRevoked,
    revokeTokens,
    /** Calls `listener` after every revocation; returns how to stop. */
    onRevocation: (listener: () => void) => {
      onRevocation.add(listener);
      return () => void onRevocation.delete(listener);
    },
    /** Every token presented, in order. */
    seen,
    /** Tokens, revocations, cut connections and marks, in the order they happened. */
    log,
    /** What was revoked, in order. */
    revoked,
    /** Adds a test's own event to `log`, to place it among the stand-in's. */
    mark: (label: string) => void log.push({ kind: "mark", label }),
    /** The grants of the tokens accepted for `clientId`, in order. */
    accepted: (clientId: string) =>
      seen.filter((s) => s.grant?.clientId === clientId).map((s) => ({ via: s.via, token: s.token, ...s.grant! })),
  };
}

export type StandIn = ReturnType<typeof createStandIn>;
