/**
 * Hosted Netlify Identity: GoTrue signs HS256 with a secret Netlify never reveals, so a site's
 * token is checked by asking the site's own Identity endpoint, `GET /.netlify/identity/user` with
 * the token as Bearer: 200 with the user is valid, 401 is not. Concurrent requests with one token
 * share one ask, and the answer is remembered briefly per isolate, keyed by the token's SHA-256
 * (never the token itself), so renewals and retries do not each cost a call to Netlify. Only what
 * is used is kept (the user's roles), within NETLIFY_CACHE_MAX_BYTES: a user object may carry
 * hundreds of KiB of `user_metadata`, and an isolate has 128 MB.
 */
import { NETLIFY_CACHE_MAX_BYTES, NETLIFY_USER_CACHE_MS, UPSTREAM_TIMEOUT_MS } from "../constants";
import { Problem } from "../errors";
import { singleFlight } from "../single-flight";
import { callUpstream, type Failure, jsonBody } from "../upstream";
import { sha256 } from "hono/utils/crypto";
import { isPlainObject } from "../validate";

/** The user as the Identity endpoint describes it (`id`, `email`, `app_metadata`, ...). */
export type NetlifyUser = Readonly<Record<string, unknown>>;

/** Roles of valid tokens by SHA-256 of site and token, with when to forget them (ms since the epoch) and their size. Oldest first. */
const vouched = new Map<
  string,
  { readonly roles: readonly string[]; readonly until: number; readonly bytes: number }
>();
let heldBytes = 0;

/**
 * The roles `rolesOf` finds in the user `site` says `token` belongs to. The token's exp (seconds
 * since the epoch) bounds how long the answer is kept. A 401 or 403 is `identity-token-rejected`;
 * any other failure (timeout, network, another status, not JSON) is the provider's:
 * `identity-provider-unavailable`, 503.
 */
export async function netlifyRoles(
  site: string,
  token: string,
  exp: number,
  rolesOf: (user: NetlifyUser) => string[],
): Promise<readonly string[]> {
  const key = (await sha256(`${site} ${token}`))!;
  const hit = vouched.get(key);
  if (hit && hit.until > Date.now()) return hit.roles;
  const url = `${site}/.netlify/identity/user`;
  const unavailable = (why: string) =>
    new Problem("identity-provider-unavailable", `Netlify Identity at ${url} could not be asked: ${why}.`);
  return singleFlight(
    `netlify ${key}`,
    async () => {
      const roles = rolesOf(await askNetlify(url, token, unavailable));
      remember(key, roles, Math.min(Date.now() + NETLIFY_USER_CACHE_MS, exp * 1000));
      return roles;
    },
    () => unavailable("timed out"),
  );
}

async function askNetlify(url: string, token: string, unavailable: Failure): Promise<NetlifyUser> {
  const rejected = (status: number) =>
    status === 401 || status === 403
      ? new Problem("identity-token-rejected", "Netlify Identity does not accept the identity token.")
      : undefined;
  const init = {
    headers: { Authorization: `Bearer ${token}`, accept: "application/json" },
    timeoutMs: UPSTREAM_TIMEOUT_MS,
    accept: [200],
  };
  const user = await jsonBody<unknown>(await callUpstream(url, init, unavailable, rejected), unavailable);
  if (!isPlainObject(user)) throw unavailable("not a user");
  return user;
}

/** Keeps `roles` under `key`, forgetting the oldest answers to stay within NETLIFY_CACHE_MAX_BYTES. */
function remember(key: string, roles: readonly string[], until: number): void {
  // UTF-16 strings: two bytes a code unit, the key and each role counted.
  const bytes = 2 * (key.length + roles.reduce((sum, role) => sum + role.length, 0));
  forget(key);
  if (bytes > NETLIFY_CACHE_MAX_BYTES) return;
  for (const oldest of vouched.keys()) {
    if (heldBytes + bytes <= NETLIFY_CACHE_MAX_BYTES) break;
    forget(oldest);
  }
  vouched.set(key, { roles, until, bytes });
  heldBytes += bytes;
}

function forget(key: string): void {
  heldBytes -= vouched.get(key)?.bytes ?? 0;
  vouched.delete(key);
}

/** Forgets every remembered answer, as a fresh isolate starts. For tests. */
export function forgetNetlifyAnswers(): void {
  vouched.clear();
  heldBytes = 0;
}

/** How many bytes the remembered answers take, as `remember` counts them. For tests. */
export function netlifyCacheBytes(): number {
  return heldBytes;
}
