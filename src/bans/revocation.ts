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
  const failed = (reason: string, retryable: boolean): Revocation => ({ status: "failed", reason, retryable });
  let response: Response;
  try {
    response = await fetch(`${restUrl}/keys/${encodeURIComponent(key.keyName)}/revokeTokens`, {
      method: "POST",
      headers: {
        Authorization: `Basic ${btoa(`${key.keyName}:${key.secret}`)}`,
        "Content-Type": "application/json",
        Accept: "application/json",
      },
      body: JSON.stringify({ targets: [`clientId:${clientId}`], issuedBefore }),
      redirect: "manual",
      signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
    });
  } catch (error) {
    const timedOut = (error as Error).name === "TimeoutError";
    return failed(timedOut ? "Ably did not answer in time" : "Ably could not be reached", true);
  }
  if (response.status !== 201) {
    await response.body?.cancel();
    return failed(`Ably answered HTTP ${response.status}`, response.status === 429 || response.status >= 500);
  }
  // One result per target; a target Ably could not revoke carries an `error` instead.
  const results = await response.json<unknown>().catch(() => undefined);
  const [result] = Array.isArray(results) ? (results as unknown[]) : [];
  const fields = typeof result === "object" && result !== null ? (result as Record<string, unknown>) : {};
  if ("error" in fields) return failed("Ably refused to revoke this clientId", false);
  return {
    status: "revoked",
    issuedBefore: typeof fields.issuedBefore === "number" ? fields.issuedBefore : issuedBefore,
  };
}
