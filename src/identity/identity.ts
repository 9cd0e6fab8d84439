/**
 * Who the caller is: the identity token from the request, verified with jose against the
 * provider's keys, and the clientId it proves. Touches the request's headers, never its body.
 */
import type { Context } from "hono";
import { decodeJwt, decodeProtectedHeader, type JWTPayload, jwtVerify, type ProtectedHeaderParameters } from "jose";
import type { ProviderConfig } from "./providers";
import { clientIdFor } from "./client-id";
import { MAX_IDENTITY_TOKEN_BYTES, SYMMETRIC_ALGORITHMS } from "../constants";
import { Problem, type ProblemCode } from "../errors";
import { keyResolver } from "./jwks";
import { bearerToken } from "../request/request-headers";
import { netlifyRoles } from "./netlify";
import { type HmacHash, hmacKey } from "../hmac-key";

/** A verified caller. */
export interface Identity {
  /** The provider's clientIdPrefix, then the user id. */
  readonly clientId: string;
  /** The provider that vouched for it: its bans, capability and role capabilities apply. */
  readonly provider: ProviderConfig;
  /** The identity token's `exp`, in seconds since the epoch. */
  readonly expiresAt: number;
  /** The string values at the provider's ROLES_CLAIM path; empty when none is configured or found. */
  readonly roles: readonly string[];
}

/**
 * The identity token: `Authorization: Bearer`, else the bare token in the header a provider names
 * (Cloudflare Access's Cf-Access-Jwt-Assertion), else the cookie named by IDENTITY_COOKIE.
 * Never the query string or body, where tokens end up in logs.
 *
 * The header and the cookie are credentials the browser attaches by itself (Access adds its header
 * from its own cookie), also to an `<img>` or a navigation, from another site or their own, which
 * send no `Origin`. So they count only on a script's request from an allowed page (`fromScript`).
 * And a cookie sent twice, as a
 * same-site subdomain can plant one with a longer Path, is refused rather than guessed at.
 */
export function identityToken(c: Context, cookieName: string | undefined, headerName?: string): string {
  const header = c.req.header("Authorization");
  const ambient = header === undefined ? ambientToken(c, cookieName, headerName) : undefined;
  const raw = header ?? ambient;
  if (raw === undefined || raw === "") {
    throw new Problem("identity-token-missing", "Send the identity token as `Authorization: Bearer <token>`.");
  }
  if (ambient !== undefined && !fromScript(c)) {
    throw new Problem(
      "origin-not-allowed",
      "An identity token sent by cookie or by the browser is accepted only from this origin or ALLOWED_ORIGINS, and this request shows no Origin.",
    );
  }
  const token = header === undefined ? raw : tokenOfBearer(header);
  // Characters, which for a JWT (ASCII) are its bytes; anything else fails to decode a step on.
  if (token.length > MAX_IDENTITY_TOKEN_BYTES) {
    throw new Problem(
      "identity-token-too-large",
      `The identity token is longer than ${MAX_IDENTITY_TOKEN_BYTES} bytes.`,
    );
  }
  return token;
}

/** The token of an `Authorization: Bearer <token>` header, or the problem with it. */
function tokenOfBearer(header: string): string {
  if (!/^Bearer(\s|$)/i.test(header)) {
    throw new Problem("identity-token-missing", "The Authorization header must use the Bearer scheme.");
  }
  const token = bearerToken(header);
  if (!token) {
    throw new Problem("identity-token-malformed", "The Authorization header must hold exactly one Bearer token.");
  }
  return token;
}

/**
 * Whether the request is a script's fetch or XHR from an allowed page: it has an `Origin` (checked
 * by originGuard, or by the admin API's moderator check) or is same-origin, and is not an `<img>`,
 * a navigation or another no-cors load (`Sec-Fetch-Mode`; browsers without Fetch Metadata send
 * `Origin` on CORS requests).
 */
export function fromScript(c: Context): boolean {
  const mode = c.req.header("Sec-Fetch-Mode");
  if (mode !== undefined && mode !== "cors" && mode !== "same-origin") return false;
  return c.req.header("Origin") !== undefined || c.req.header("Sec-Fetch-Site") === "same-origin";
}

/** The token in the provider's header, else in the cookie. */
function ambientToken(c: Context, cookieName: string | undefined, headerName: string | undefined): string | undefined {
  const fromHeader = headerName ? c.req.header(headerName) : undefined;
  return fromHeader !== undefined || !cookieName ? fromHeader : cookieToken(c, cookieName);
}

/** The value of the cookie `cookieName`, or undefined; refused when the cookie is sent twice. */
export function cookieToken(c: Context, cookieName: string): string | undefined {
  const values = (c.req.header("Cookie") ?? "")
    .split(";")
    .map((pair) => pair.trim())
    .filter((pair) => pair.startsWith(`${cookieName}=`))
    .map((pair) => pair.slice(cookieName.length + 1));
  if (values.length > 1) {
    throw new Problem(
      "identity-token-ambiguous",
      `The ${cookieName} cookie was sent ${values.length} times; clear the stale one (a __Host- cookie name prevents this).`,
    );
  }
  return values[0];
}

/** Verifies the identity token (verifiedToken) and reads who it proves: clientId, roles, expiry. */
export async function verifyIdentity(
  token: string,
  providers: readonly ProviderConfig[],
  /** Called with the provider the token's `iss` chose, before anything is verified: the log names it for refusals too. */
  chosen?: (provider: ProviderConfig) => void,
): Promise<Identity> {
  const { provider, payload, vouchedRoles } = await verifiedToken(token, providers, chosen);
  const roles = provider.rolesClaim ? rolesAt(payload, provider.rolesClaim) : [];
  return {
    clientId: clientIdFrom(payload, provider, providers),
    provider,
    expiresAt: payload.exp as number,
    roles: [...new Set([...roles, ...vouchedRoles])],
  };
}

/** What verifying a token needs of its provider; one without a secret, Netlify site or roles claim leaves them out. */
export type Verifier = Pick<
  ProviderConfig,
  "issuer" | "jwksUrl" | "audiences" | "algorithms" | "clockToleranceSeconds" | "rules"
> &
  Partial<Pick<ProviderConfig, "secret" | "netlifySite" | "rolesClaim">>;

/**
 * The provider among `providers` that vouches for `token`, and the token's verified claims (with
 * the roles a Netlify site's endpoint vouched for). Cheap unverified checks first (shape, which
 * provider by `iss`, algorithm), so garbage never causes a key fetch, then the signature and claims
 * with jose (or, for a hosted Netlify site, its Identity endpoint), then the provider's token-type
 * rules. Any failure is a 401 `identity-token-*` problem (503 when the keys cannot be had).
 */
export async function verifiedToken<P extends Verifier>(
  token: string,
  providers: readonly P[],
  chosen?: (provider: P) => void,
): Promise<{ provider: P; payload: JWTPayload; vouchedRoles: readonly string[] }> {
  let header: ProtectedHeaderParameters;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    unverified = decodeJwt(token);
  } catch {
    throw new Problem("identity-token-malformed", "The identity token is not a signed JWT.");
  }
  const provider = providerFor(unverified.iss, providers);
  chosen?.(provider);
  const alg = header.alg;
  if (typeof alg !== "string" || !provider.algorithms.includes(alg)) {
    throw new Problem(
      "identity-token-algorithm-not-allowed",
      `Identity tokens must be signed with ${provider.algorithms.join(" or ")}.`,
    );
  }

  let payload: JWTPayload;
  let vouchedRoles: string[] = [];
  if (provider.netlifySite) {
    payload = checkClaimsLocally(unverified, provider);
    // The endpoint's user is current: a role given since the token was issued counts too.
    const path = provider.rolesClaim;
    vouchedRoles = [
      ...(await netlifyRoles(provider.netlifySite, token, payload.exp!, (user) => (path ? rolesAt(user, path) : []))),
    ];
  } else {
    // A symmetric algorithm only ever meets this provider's own secret, an asymmetric one only its
    // JWKS: the token's alg can never make a public key into an HMAC secret.
    const symmetric = (SYMMETRIC_ALGORITHMS as readonly string[]).includes(alg);
    if (symmetric && provider.secret === undefined) {
      // Unreachable by configuration (config refuses HS* without a secret); refused, never defaulted.
      throw new Problem("identity-token-algorithm-not-allowed", "This provider's tokens are not HMAC-signed.");
    }
    try {
      ({ payload } = await jwtVerify(
        token,
        symmetric
          ? await hmacKey(provider.secret!, `SHA-${alg.slice(2)}` as HmacHash, "verify")
          : keyResolver(provider),
        {
          issuer: provider.issuer === "" ? undefined : provider.issuer,
          audience: provider.audiences ? [...provider.audiences] : undefined,
          algorithms: [alg],
          clockTolerance: provider.clockToleranceSeconds,
          requiredClaims: ["exp"],
        },
      ));
    } catch (error) {
      if (error instanceof Problem) throw error;
      throw joseProblem(error as { code?: string; claim?: string; reason?: string });
    }
  }
  // jose checks iat only together with maxTokenAge, which would make iat mandatory.
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.iat === "number" && payload.iat > now + provider.clockToleranceSeconds) {
    throw new Problem("identity-token-issued-in-future", "The identity token's iat is in the future.");
  }
  checkRules(provider, header, payload);
  return { provider, payload, vouchedRoles };
}

/**
 * The provider for a token's `iss`, chosen before any key is used: the one with exactly that
 * issuer, or, for a token without `iss`, the one configured for such tokens. Never a guess.
 */
function providerFor<P extends Verifier>(iss: unknown, providers: readonly P[]): P {
  const wanted = iss === undefined ? "" : typeof iss === "string" && iss !== "" ? iss : undefined;
  const provider = wanted === undefined ? undefined : providers.find((p) => p.issuer === wanted);
  if (provider) return provider;
  // One issuer is named, as it helps fix a trailing slash; a list of several is nobody's business.
  const only =
    providers.length === 1 && providers[0]!.issuer !== ""
      ? ` must be exactly ${providers[0]!.issuer}`
      : " is not accepted here";
  throw new Problem(
    "identity-token-issuer-mismatch",
    iss === undefined ? "The identity token has no iss." : `The identity token's iss${only}.`,
  );
}

/**
 * exp (required), nbf and aud, checked here for a token whose signature someone else vouches for
 * (Netlify's Identity endpoint): before asking, so an expired token never costs a call.
 */
function checkClaimsLocally(payload: JWTPayload, provider: Verifier): JWTPayload {
  const now = Math.floor(Date.now() / 1000);
  const tolerance = provider.clockToleranceSeconds;
  if (payload.exp === undefined)
    throw new Problem("identity-token-claim-missing", "The identity token has no exp claim.");
  if (typeof payload.exp !== "number")
    throw new Problem("identity-token-claim-invalid", "The identity token's exp claim is invalid.");
  if (payload.exp <= now - tolerance)
    throw new Problem("identity-token-expired", "The identity token has expired; get a fresh one.");
  if (payload.nbf !== undefined && !(typeof payload.nbf === "number" && payload.nbf <= now + tolerance)) {
    throw new Problem("identity-token-not-yet-valid", "The identity token's nbf is in the future.");
  }
  if (provider.audiences) {
    if (payload.aud === undefined)
      throw new Problem("identity-token-claim-missing", "The identity token has no aud claim.");
    const auds = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!auds.some((aud) => provider.audiences!.includes(aud))) {
      throw new Problem("identity-token-audience-mismatch", "The identity token's aud is not accepted.");
    }
  }
  return payload;
}

/** The provider's token-type rules on the verified header and payload. */
function checkRules(provider: Verifier, header: ProtectedHeaderParameters, payload: JWTPayload): void {
  for (const rule of provider.rules) {
    const source: Record<string, unknown> = rule.in === "header" ? header : payload;
    const where = rule.in === "header" ? "header" : "claim";
    if (!Object.hasOwn(source, rule.name)) {
      if (!rule.required) continue;
      throw new Problem("identity-token-claim-missing", `The identity token has no ${rule.name} ${where}.`);
    }
    const value = source[rule.name];
    if (typeof value !== "string" || value === "" || (rule.oneOf && !rule.oneOf.includes(value))) {
      const expected = rule.oneOf ? rule.oneOf.join(" or ") : "a non-empty string";
      throw new Problem(
        "identity-token-claim-invalid",
        `The identity token's ${rule.name} ${where} must be ${expected}: another kind of token from the same provider.`,
      );
    }
  }
}

/** The roles at a claim path: an array's strings, or a single string. Anything else is no roles. */
function rolesAt(payload: Readonly<Record<string, unknown>>, path: readonly string[]): string[] {
  let value: unknown = payload;
  for (const part of path) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, part)) return [];
    value = (value as Record<string, unknown>)[part];
  }
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((role): role is string => typeof role === "string") : [];
}

/** The clientId a verified payload proves (the provider's prefix, then the claim), or 401 when it could not safely be one. */
function clientIdFrom(payload: JWTPayload, provider: ProviderConfig, providers: readonly ProviderConfig[]): string {
  const claim = provider.clientIdClaim;
  const value = Object.hasOwn(payload, claim) ? payload[claim] : undefined;
  const result = value === undefined ? { fault: "is missing" } : clientIdFor(value, provider, providers);
  if ("fault" in result) throw new Problem("client-id-invalid", `The identity token's ${claim} claim ${result.fault}.`);
  return result.id;
}

/** Maps jose's stable error codes to ours; the detail says which check failed. */
function joseProblem(error: { code?: string; claim?: string; reason?: string }): Problem {
  const byCode: Record<string, [ProblemCode, string]> = {
    ERR_JWT_EXPIRED: ["identity-token-expired", "The identity token has expired; get a fresh one."],
    ERR_JWS_SIGNATURE_VERIFICATION_FAILED: [
      "identity-token-signature-invalid",
      "The identity token's signature does not verify.",
    ],
    ERR_JOSE_ALG_NOT_ALLOWED: [
      "identity-token-algorithm-not-allowed",
      "The identity token's algorithm is not allowed.",
    ],
    ERR_JWKS_NO_MATCHING_KEY: [
      "identity-token-key-unknown",
      "No key of the identity provider matches the token's kid.",
    ],
    ERR_JWKS_MULTIPLE_MATCHING_KEYS: [
      "identity-token-key-unknown",
      "The identity token has no kid and the provider has several keys.",
    ],
  };
  const known = error.code ? byCode[error.code] : undefined;
  if (known) return new Problem(...known);
  if (error.code === "ERR_JWT_CLAIM_VALIDATION_FAILED") {
    const claim = error.claim ?? "a claim";
    if (error.reason === "missing") {
      return new Problem("identity-token-claim-missing", `The identity token has no ${claim} claim.`);
    }
    if (claim === "aud") {
      return new Problem("identity-token-audience-mismatch", "The identity token's aud is not accepted.");
    }
    if (claim === "nbf") {
      return new Problem("identity-token-not-yet-valid", "The identity token's nbf is in the future.");
    }
    return new Problem("identity-token-claim-invalid", `The identity token's ${claim} claim is invalid.`);
  }
  return new Problem("identity-token-malformed", "The identity token is not a valid signed JWT.");
}
