/**
 * Token revocation through Ably's REST API, so a ban cuts off live connections within seconds
 * instead of at token expiry. Only for keys with "revocable tokens" enabled (ABLY_REVOCABLE_TOKENS),
 * which Ably requires before the tokens were issued.
 *
 * `POST {ABLY_REST_URL}/keys/{keyName}/revokeTokens`, HTTP basic auth with the API key, JSON body
 * `{ "targets": ["clientId:<id>"] }`; Ably answers 201 with one result per target.
 */
import type { AblyKey } from "./config";
import { UPSTREAM_TIMEOUT_MS } from "./constants";

/** What became of a revocation: `revoked`, `not-enabled` (ABLY_REVOCABLE_TOKENS is off), or why it failed. */
export type Revocation = { readonly status: "revoked" | "not-enabled" } | { readonly status: "failed"; readonly reason: string };

/** Asks Ably to revoke every token issued to `clientId`. Never throws: a failure is reported. */
export async function revokeClientTokens(restUrl: string, key: AblyKey, clientId: string): Promise<Revocation> {
  const failed = (reason: string): Revocation => ({ status: "failed", reason });
  let response: Response;
  try {
    response = await fetch(`${restUrl}/keys/${encodeURIComponent(key.keyName)}/revokeTokens`, {
      method: "POST",
      headers: {
        Authorization: `Basic ${btoa(`${key.keyName}:${key.secret}`)}`,
        "Content-Type": "application/json",
        Accept: "application/json",
      },
      body: JSON.stringify({ targets: [`clientId:${clientId}`] }),
      redirect: "manual",
      signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
    });
  } catch (error) {
    return failed((error as Error).name === "TimeoutError" ? "Ably did not answer in time" : "Ably could not be reached");
  }
  if (response.status !== 201) {
    await response.body?.cancel();
    return failed(`Ably answered HTTP ${response.status}`);
  }
  // One result per target; a target Ably could not revoke carries an `error` instead.
  const results = await response.json<unknown>().catch(() => undefined);
  const refused = Array.isArray(results) && results.some((r) => typeof r === "object" && r !== null && "error" in r);
  return refused ? failed("Ably refused to revoke this clientId") : { status: "revoked" };
}
