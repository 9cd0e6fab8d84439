/**
 * Who is calling the admin API, proven one of two ways:
 *
 *  - `Authorization: Bearer <ADMIN_TOKEN>` (scripts): whoever holds the shared secret, nobody in
 *    particular, so the ban's `bannedBy` is what the caller says.
 *  - Cloudflare Access (people): the application token Access sends in `Cf-Access-Jwt-Assertion`,
 *    or its `CF_Authorization` cookie, verified with jose against the team's certs (through the
 *    worker's JWKS cache, jwks.ts): issuer ACCESS_TEAM_DOMAIN, audience ACCESS_AUD, RS256,
 *    `type: app`. Its `email` must be on MODERATORS, which the worker enforces itself (an Access
 *    application token carries no groups), and becomes the ban's `bannedBy`.
 *
 * `Authorization`, when sent, decides alone: a script behind Access is a token caller.
 */
import type { Context } from "hono";
import { timingSafeEqual } from "hono/utils/buffer";
import type { Config } from "../config";
import { MAX_BANNED_BY_BYTES } from "../constants";
import { Problem } from "../errors";
import { cookieToken, fromScript, verifiedToken, type Verifier } from "../identity/identity";
import { CLOUDFLARE_ACCESS } from "../identity/presets";
import { bearerToken, isOwnOrigin } from "../request/request-headers";
import { isOrigin, isSecureOrigin, storedBytes } from "../validate";

/** The admin API's caller. */
export interface Moderator {
  readonly via: "access" | "token";
  /** The verified Access email; undefined for a token caller. */
  readonly email: string | undefined;
}

/** Cloudflare Access in front of the admin API. */
export interface AccessConfig {
  /** How an Access application token is checked: issuer, certs URL, AUD tag, RS256, `type: app`. */
  readonly verifier: Verifier;
  /**
   * MODERATORS, ASCII letters lower-cased: `alice@example.com` admits that address, `@example.com`
   * any address at exactly that domain (not its subdomains).
   */
  readonly moderators: readonly string[];
}

/** The cookie Access sets on the worker's own host, beside the header it adds (CLOUDFLARE_ACCESS). */
const ACCESS_COOKIE = "CF_Authorization";

/** A MODERATORS entry: one `@`, a domain after it, no white space; an address or, with nothing before the `@`, a domain. */
const ENTRY = /^[^@\s]*@[^@\s]+$/;

/**
 * Access for the admin API from ACCESS_TEAM_DOMAIN, ACCESS_AUD and MODERATORS (the list's empty
 * entries already dropped), or undefined when none is set; what is wrong goes to `problems`.
 */
export function parseAccess(
  teamDomain: string | undefined,
  aud: string | undefined,
  moderators: readonly string[],
  clockToleranceSeconds: number,
  problems: string[],
): AccessConfig | undefined {
  if (teamDomain === undefined && aud === undefined && moderators.length === 0) return undefined;
  const issuer = (teamDomain ?? "").replace(/\/+$/, "");
  if (teamDomain === undefined || aud === undefined || moderators.length === 0) {
    problems.push("ACCESS_TEAM_DOMAIN, ACCESS_AUD and MODERATORS go together");
  }
  if (teamDomain !== undefined && !(isOrigin(issuer) && isSecureOrigin(issuer))) {
    problems.push(
      "ACCESS_TEAM_DOMAIN must be an https origin: https://<team>.cloudflareaccess.com (http only on localhost)",
    );
  }
  if (!moderators.every((entry) => ENTRY.test(entry))) {
    problems.push("MODERATORS entries must be addresses (a@example.com) or domains (@example.com)");
  }
  const verifier: Verifier = {
    issuer,
    jwksUrl: `${issuer}${CLOUDFLARE_ACCESS.certsPath}`,
    audiences: [aud ?? ""],
    algorithms: [CLOUDFLARE_ACCESS.algorithm],
    clockToleranceSeconds,
    rules: Object.entries(CLOUDFLARE_ACCESS.claims).map(([name, value]) => ({
      in: "payload",
      name,
      oneOf: [value],
      required: true,
    })),
  };
  return Object.freeze({ verifier, moderators: moderators.map(asciiLower) });
}

/**
 * The caller, proven, or: 401 `admin-unauthorized` (no credential, or a wrong token), 401
 * `identity-token-*` (an Access token that does not verify), 403 `origin-not-allowed` (Access
 * credentials on another origin's request), 403 `moderator-not-allowed` (verified, not listed).
 */
export async function moderatorOf(c: Context, config: Config): Promise<Moderator> {
  const authorization = c.req.header("Authorization");
  const token = authorization === undefined && config.access ? accessToken(c) : undefined;
  if (token !== undefined) return { via: "access", email: await listedEmail(token, config.access!) };
  const expected = config.adminToken;
  const presented = bearerToken(authorization) ?? "";
  if (expected === undefined || !(await timingSafeEqual(presented, expected))) {
    const access = config.access ? "Sign in with Cloudflare Access, or s" : "S";
    throw new Problem("admin-unauthorized", `${access}end the ADMIN_TOKEN as \`Authorization: Bearer <token>\`.`);
  }
  return { via: "token", email: undefined };
}

/**
 * The Access token of the request: Access's header, else its cookie. The browser sends the cookie
 * with any request to the worker, from any page, and Access adds the header from it, so neither
 * counts on a request that a page of another origin made (CSRF): Fetch Metadata or `Origin` say
 * so. The cookie also needs a script's request (identity.ts's rule): a navigation or `<img>` never.
 */
function accessToken(c: Context): string | undefined {
  const header = c.req.header(CLOUDFLARE_ACCESS.header);
  const token = header ?? cookieToken(c, ACCESS_COOKIE);
  if (token === undefined) return undefined;
  const site = c.req.header("Sec-Fetch-Site");
  const origin = c.req.header("Origin");
  // `none`: the user typed the address or used a bookmark; no page made the request.
  const foreign =
    (site !== undefined && site !== "same-origin" && site !== "none") ||
    (origin !== undefined && !isOwnOrigin(c.req.url, origin));
  if (foreign || (header === undefined && !fromScript(c))) {
    throw new Problem("origin-not-allowed", "Cloudflare Access credentials count only on this origin's own scripts.");
  }
  return token;
}

/** The verified email of an Access token, if it is a listed moderator's and fits in a ban record. */
async function listedEmail(token: string, access: AccessConfig): Promise<string> {
  const { payload } = await verifiedToken(token, [access.verifier]);
  const email = payload.email;
  if (typeof email !== "string" || !isListed(email, access.moderators)) {
    throw new Problem("moderator-not-allowed", "You are not on this worker's MODERATORS.");
  }
  if (storedBytes(email) > MAX_BANNED_BY_BYTES) {
    throw new Problem("moderator-not-allowed", `Your email is over ${MAX_BANNED_BY_BYTES} bytes, too long to record.`);
  }
  return email;
}

/**
 * Whether `email` is listed: ASCII case aside, equal to an address entry, or with exactly one `@`,
 * something before it, and exactly a domain entry's domain after it. Nothing else is folded or
 * trimmed: `x@example.com.` is not at `@example.com`, nor is a look-alike Unicode domain.
 */
function isListed(email: string, entries: readonly string[]): boolean {
  const folded = asciiLower(email);
  const at = folded.indexOf("@");
  if (at < 1 || folded.includes("@", at + 1)) return false;
  return entries.includes(folded) || entries.includes(folded.slice(at));
}

/** Only A-Z lower-cased: Unicode case mapping would let `\u212a` (Kelvin sign) stand for `k`. */
const asciiLower = (text: string) => text.replace(/[A-Z]+/g, (letters) => letters.toLowerCase());
