/**
 * One token revocation through Ably's REST API: what a ban asks of Ably so that live connections
 * are cut off instead of lasting until their tokens expire. Only for keys with "revocable tokens"
 * enabled (ABLY_REVOCABLE_TOKENS), which Ably requires before the tokens were issued. When and how
 * often to revoke is ban-revocations.ts's business; this module makes one call and says how it went.
 *
 * `POST {ABLY_REST_URL}/keys/{keyName}/revokeTokens`, HTTP basic auth with the API key, JSON body
 * `{ "targets": ["clientId:<id>"], "issuedBefore"?: <ms> }`; Ably answers 201 with one result per
 * target (`{ target, issuedBefore, appliesAt }`), and revokes only the tokens issued before
 * `issuedBefore`: by default the moment Ably gets the call; it refuses one in the future or more
 * than 1 h back.
 */
import type { AblyKey } from "../config";
import { UPSTREAM_TIMEOUT_MS } from "../constants";
import { callUpstream, jsonBody } from "../upstream";
import { isPlainObject } from "../validate";

/**
 * What became of one revocation. `retryable` failures (Ably answered 429 or 5xx, or not at all)
 * may pass; any other (a refused key or request) will not by trying again.
 */
export type Revocation =
  /** `issuedBefore`: what Ably says it applied, when it says so. */
  | { readonly status: "revoked"; readonly issuedBefore: number | undefined }
  | { readonly status: "failed"; readonly reason: string; readonly retryable: boolean };

/**
 * Asks Ably to revoke every token issued to `clientId` before `issuedBefore` (ms since the epoch),
 * or, without it, before Ably gets the call. Never throws: a failure is reported.
 */
export async function revokeClientTokens(
  restUrl: string,
  key: AblyKey,
  clientId: string,
  issuedBefore?: number,
): Promise<Revocation> {
  const init = {
    method: "POST",
    headers: {
      Authorization: `Basic ${btoa(`${key.keyName}:${key.secret}`)}`,
      "Content-Type": "application/json",
      Accept: "application/json",
    },
    body: JSON.stringify({ targets: [`clientId:${clientId}`], issuedBefore }),
    timeoutMs: UPSTREAM_TIMEOUT_MS,
    accept: [201],
  };
  const unreachable = (why: string) =>
    new Failed(why === "timed out" ? "Ably did not answer in time" : "Ably could not be reached", true);
  const refused = (status: number) => new Failed(`Ably answered HTTP ${status}`, status === 429 || status >= 500);
  let results: unknown;
  try {
    const response = await callUpstream(
      `${restUrl}/keys/${encodeURIComponent(key.keyName)}/revokeTokens`,
      init,
      unreachable,
      refused,
    );
    // Revoked once Ably said 201; the body only adds what it applied.
    results = await jsonBody<unknown>(response, unreachable).catch(() => undefined);
  } catch (error) {
    if (error instanceof Failed) return { status: "failed", reason: error.message, retryable: error.retryable };
    throw error;
  }
  // One result per target; a target Ably could not revoke carries an `error` instead.
  const [result] = Array.isArray(results) ? (results as unknown[]) : [];
  const fields = isPlainObject(result) ? result : {};
  if ("error" in fields) return { status: "failed", reason: "Ably refused to revoke this clientId", retryable: false };
  return {
    status: "revoked",
    issuedBefore: typeof fields.issuedBefore === "number" ? fields.issuedBefore : issuedBefore,
  };
}

/** A revocation that did not happen, and whether trying again may help. */
class Failed extends Error {
  constructor(
    message: string,
    readonly retryable: boolean,
  ) {
    super(message);
  }
}
