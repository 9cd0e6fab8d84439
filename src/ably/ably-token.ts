/**
 * The Ably JWT: what a verified caller may be issued, and its signature. Follows Ably's "JWT
 * authentication" format: header `typ: JWT`, `alg: HS256`, `kid: <appId>.<keyId>`; claims `iat`
 * and `exp` in seconds, `x-ably-capability` as a JSON string, `x-ably-clientId`.
 */
import { SignJWT } from "jose";
import { type Capability, instantiate, intersect, stringifyCapability, union } from "./capability";
import type { AblyKey, Config } from "../config";
import { MAX_ABLY_JWT_BYTES } from "../constants";
import { hmacKey } from "../hmac-key";
import { Problem } from "../errors";
import type { Identity } from "../identity/identity";
import type { TokenParams } from "../request/params";

/** What one token grants, before it is signed. */
export interface Grant {
  readonly clientId: string;
  readonly capability: Capability;
  readonly issuedAt: number;
  readonly expiresAt: number;
}

/**
 * What `identity` may be issued given what it asked for: its own clientId only (403 otherwise),
 * the requested capability narrowed to the granted one (403 when nothing is left), and a
 * lifetime of min(requested, configured, identity token's remaining life when so configured).
 */
export function grantFor(
  identity: Identity,
  params: TokenParams,
  config: Config,
  now: number = Math.floor(Date.now() / 1000),
): Grant {
  if (params.clientId !== undefined && params.clientId !== identity.clientId) {
    throw new Problem("client-id-mismatch", "The requested clientId differs from the one your identity token proves.");
  }
  const granted = grantedCapability(identity, config);
  const capability = params.capability ? intersect(params.capability, granted) : granted;
  if (Object.keys(capability).length === 0) {
    throw new Problem(
      "capability-empty",
      `Nothing of the requested capability is granted; the grant is ${stringifyCapability(granted)}.`,
    );
  }
  let ttl = config.tokenTtlSeconds;
  if (params.ttlMs !== undefined) ttl = Math.min(ttl, Math.floor(params.ttlMs / 1000));
  let expiresAt = now + ttl;
  // Ably wants whole seconds; RFC 7519 allows an identity token's exp to have a fraction.
  if (config.tokenExpiresWithIdentity) expiresAt = Math.min(expiresAt, Math.floor(identity.expiresAt));
  if (expiresAt <= now) {
    // Only reachable with TOKEN_EXPIRES_WITH_IDENTITY and an identity token inside its clock tolerance.
    throw new Problem("identity-token-expired", "The identity token has expired; get a fresh one.");
  }
  return { clientId: identity.clientId, capability, issuedAt: now, expiresAt };
}

/**
 * What `identity` is granted before any request narrows it: the base capability (the provider's,
 * else ABLY_CAPABILITY) united with the capability of each of its roles (the provider's
 * roleCapabilities, else ROLE_CAPABILITIES), `{clientId}` filled in, and never wider than the key
 * itself may grant (ABLY_KEY_CAPABILITY).
 */
function grantedCapability(identity: Identity, config: Config): Capability {
  const base = identity.provider.capability ?? config.grant;
  const byRole = identity.provider.roleCapabilities ?? config.roleCapabilities;
  const forRoles = identity.roles.filter((role) => Object.hasOwn(byRole, role)).map((role) => byRole[role]!);
  // Without roles the base alone, already canonical: union() would only copy it.
  const template = forRoles.length === 0 ? base : union(base, ...forRoles);
  return intersect(instantiate(template, identity.clientId), config.keyCapability);
}

/** Signs `grant` as an Ably JWT; refuses (400) one too large for Ably's header limit. */
export async function signAblyToken(grant: Grant, key: AblyKey): Promise<string> {
  const jwt = await new SignJWT({
    "x-ably-capability": stringifyCapability(grant.capability),
    "x-ably-clientId": grant.clientId,
  })
    .setProtectedHeader({ typ: "JWT", alg: "HS256", kid: key.keyName })
    .setIssuedAt(grant.issuedAt)
    .setExpirationTime(grant.expiresAt)
    .sign(await hmacKey(key.secret, "SHA-256", "sign"));
  if (jwt.length > MAX_ABLY_JWT_BYTES) {
    throw new Problem(
      "ably-token-too-large",
      `The token would be ${jwt.length} bytes, over Ably's limit of ${MAX_ABLY_JWT_BYTES}; request a narrower capability.`,
    );
  }
  return jwt;
}
