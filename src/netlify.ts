/**
 * Hosted Netlify Identity: GoTrue signs HS256 with a secret Netlify never reveals, so a site's
 * token is checked by asking the site's own Identity endpoint, `GET /.netlify/identity/user` with
 * the token as Bearer: 200 with the user is valid, 401 is not. The answer is remembered briefly per
 * isolate, keyed by the token's SHA-256 (never the token itself), so renewals and retries do not
 * each cost a call to Netlify.
 */
import { NETLIFY_USER_CACHE_MAX_ENTRIES, NETLIFY_USER_CACHE_MS, UPSTREAM_TIMEOUT_MS } from "./constants";
import { Problem } from "./errors";

/** The user as the Identity endpoint describes it (`id`, `email`, `app_metadata`, ...). */
export type NetlifyUser = Readonly<Record<string, unknown>>;

/** Valid tokens' users by SHA-256 of site and token, with when to forget them (ms since the epoch). Oldest first. */
const vouched = new Map<string, { readonly user: NetlifyUser; readonly until: number }>();

/**
 * The user `site` says `token` belongs to. The token's exp (seconds since the epoch) bounds how long
 * the answer is kept. A 401 or 403 is `identity-token-rejected`; any other failure (timeout,
 * network, another status, not JSON) is the provider's: `identity-provider-unavailable`, 503.
 */
export async function netlifyUser(site: string, token: string, exp: number): Promise<NetlifyUser> {
  const key = await sha256(`${site} ${token}`);
  const now = Date.now();
  const hit = vouched.get(key);
  if (hit && hit.until > now) return hit.user;
  vouched.delete(key);

  const url = `${site}/.netlify/identity/user`;
  const unavailable = (why: string) =>
    new Problem("identity-provider-unavailable", `Netlify Identity at ${url} could not be asked: ${why}.`);
  let response: Response;
  try {
    response = await fetch(url, {
      headers: { Authorization: `Bearer ${token}`, accept: "application/json" },
      redirect: "manual",
      signal: AbortSignal.timeout(UPSTREAM_TIMEOUT_MS),
    });
  } catch (error) {
    throw unavailable((error as Error).name === "TimeoutError" ? "timed out" : "network error");
  }
  if (response.status === 401 || response.status === 403) {
    await response.body?.cancel();
    throw new Problem("identity-token-rejected", "Netlify Identity does not accept the identity token.");
  }
  if (response.status !== 200) {
    await response.body?.cancel();
    throw unavailable(`HTTP ${response.status}`);
  }
  let user: unknown;
  try {
    user = await response.json();
  } catch {
    throw unavailable("not JSON");
  }
  if (typeof user !== "object" || user === null || Array.isArray(user)) throw unavailable("not a user");

  while (vouched.size >= NETLIFY_USER_CACHE_MAX_ENTRIES) vouched.delete(vouched.keys().next().value!);
  vouched.set(key, { user: user as NetlifyUser, until: Math.min(now + NETLIFY_USER_CACHE_MS, exp * 1000) });
  return user as NetlifyUser;
}

/** Forgets every remembered answer, as a fresh isolate starts. For tests. */
export function forgetNetlifyAnswers(): void {
  vouched.clear();
}

async function sha256(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
