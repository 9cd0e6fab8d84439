/**
 * Who the caller is: the identity token from the request, verified with jose against the
 * provider's keys, and the clientId it proves. Touches the request's headers, never its body.
 */
import type { Context } from "hono";
import { getCookie } from "hono/cookie";
import { decodeJwt, decodeProtectedHeader, type JWTPayload, jwtVerify } from "jose";
import type { ProviderConfig } from "./config";
import { clientIdFault } from "./client-id";
import { MAX_IDENTITY_TOKEN_BYTES } from "./constants";
import { Problem, type ProblemCode } from "./errors";
import { keyResolver } from "./jwks";

/** A verified caller. */
export interface Identity {
  readonly clientId: string;
  readonly issuer: string;
  /** The identity token's `exp`, in seconds since the epoch. */
  readonly expiresAt: number;
  /** The string values at the provider's ROLES_CLAIM path; empty when none is configured or found. */
  readonly roles: readonly string[];
}

// RFC 6750 2.1: "Bearer" (any case), one or more spaces, a b64token.
const BEARER = /^Bearer +([A-Za-z0-9\-._~+/]+=*)$/i;

/**
 * The identity token: `Authorization: Bearer`, else the cookie named by IDENTITY_COOKIE.
 * Never the query string or body, where tokens end up in logs.
 */
export function identityToken(c: Context, cookieName: string | undefined): string {
  const header = c.req.header("Authorization");
  const raw = header ?? (cookieName ? getCookie(c, cookieName) : undefined);
  if (raw === undefined || raw === "") {
    throw new Problem(
      "identity-token-missing",
      "Send the identity token as `Authorization: Bearer <token>`.",
    );
  }
  if (raw.length > MAX_IDENTITY_TOKEN_BYTES) {
    throw new Problem(
      "identity-token-too-large",
      `The identity token is longer than ${MAX_IDENTITY_TOKEN_BYTES} bytes.`,
    );
  }
  if (header === undefined) return raw;
  if (!/^Bearer(\s|$)/i.test(header)) {
    throw new Problem(
      "identity-token-missing",
      "The Authorization header must use the Bearer scheme.",
    );
  }
  const token = BEARER.exec(header)?.[1];
  if (!token) {
    throw new Problem(
      "identity-token-malformed",
      "The Authorization header must hold exactly one Bearer token.",
    );
  }
  return token;
}

/**
 * Verifies the identity token against the provider: cheap unverified checks first (shape,
 * algorithm, issuer), so garbage never causes a key fetch, then jose's signature and claims checks.
 */
export async function verifyIdentity(token: string, provider: ProviderConfig): Promise<Identity> {
  let header: ReturnType<typeof decodeProtectedHeader>;
  let unverified: JWTPayload;
  try {
    header = decodeProtectedHeader(token);
    unverified = decodeJwt(token);
  } catch {
    throw new Problem("identity-token-malformed", "The identity token is not a signed JWT.");
  }
  if (typeof header.alg !== "string" || !provider.algorithms.includes(header.alg)) {
    throw new Problem(
      "identity-token-algorithm-not-allowed",
      `Identity tokens must be signed with ${provider.algorithms.join(" or ")}.`,
    );
  }
  if (unverified.iss !== provider.issuer) {
    throw new Problem(
      "identity-token-issuer-mismatch",
      `The identity token's iss must be exactly ${provider.issuer}.`,
    );
  }

  let payload: JWTPayload;
  try {
    ({ payload } = await jwtVerify(token, keyResolver(provider), {
      issuer: provider.issuer,
      audience: provider.audiences ? [...provider.audiences] : undefined,
      algorithms: [...provider.algorithms],
      clockTolerance: provider.clockToleranceSeconds,
      requiredClaims: ["exp"],
    }));
  } catch (error) {
    if (error instanceof Problem) throw error;
    throw joseProblem(error as { code?: string; claim?: string; reason?: string });
  }
  // jose checks iat only together with maxTokenAge, which would make iat mandatory.
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.iat === "number" && payload.iat > now + provider.clockToleranceSeconds) {
    throw new Problem("identity-token-issued-in-future", "The identity token's iat is in the future.");
  }
  return {
    clientId: clientIdFrom(payload, provider.clientIdClaim),
    issuer: provider.issuer,
    expiresAt: payload.exp as number,
    roles: provider.rolesClaim ? rolesAt(payload, provider.rolesClaim) : [],
  };
}

/** The roles at a claim path: an array's strings, or a single string. Anything else is no roles. */
function rolesAt(payload: JWTPayload, path: readonly string[]): string[] {
  let value: unknown = payload;
  for (const part of path) {
    if (typeof value !== "object" || value === null || !Object.hasOwn(value, part)) return [];
    value = (value as Record<string, unknown>)[part];
  }
  if (typeof value === "string") return [value];
  return Array.isArray(value) ? value.filter((role): role is string => typeof role === "string") : [];
}

/** The clientId a verified payload proves, or 401 when it could not safely be one. */
function clientIdFrom(payload: JWTPayload, claim: string): string {
  const value = Object.hasOwn(payload, claim) ? payload[claim] : undefined;
  const fault = value === undefined ? "is missing" : clientIdFault(value);
  if (fault) throw new Problem("client-id-invalid", `The identity token's ${claim} claim ${fault}.`);
  return value as string;
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
