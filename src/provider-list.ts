/**
 * IDENTITY_PROVIDERS: several identity providers in one worker, each a generic entry or a preset
 * (expanded by providers.ts), validated into frozen ProviderConfigs. Every problem names the entry
 * (`IDENTITY_PROVIDERS[2]`) and the field, never a secret's value.
 */
import type { Capability } from "./capability";
import { clientIdFault } from "./client-id";
import type { ClaimRule, ProviderConfig } from "./config";
import {
  ASYMMETRIC_ALGORITHMS,
  DEFAULT_ALGORITHMS,
  MAX_CLOCK_TOLERANCE_SECONDS,
  MIN_HMAC_SECRET_BYTES,
  SYMMETRIC_ALGORITHMS,
} from "./constants";
import { expandPreset, type RawProvider } from "./providers";
import { isHttpUrl, isOrigin, isPlainObject, jsonOrUndefined } from "./validate";

/** What parsing a list needs from the rest of the configuration. */
export interface ListContext {
  readonly env: Readonly<Record<string, unknown>>;
  readonly problems: string[];
  readonly warnings: string[];
  /** JWT_CLOCK_TOLERANCE_SECONDS, the default of `clockToleranceSeconds`. */
  readonly clockToleranceSeconds: number;
  /** BANNED_ROLE_PATTERN, the default of `bannedRolePattern`. */
  readonly bannedRolePattern: RegExp;
  /** Parses a capability (JSON text or object), reporting problems under `where`. */
  readonly capability: (where: string, value: unknown) => Capability;
  /** Parses a role → capability map, reporting problems under `where`. */
  readonly roleCapabilities: (where: string, value: unknown) => Readonly<Record<string, Capability>>;
}

/**
 * The providers IDENTITY_PROVIDERS lists (a JSON array, as text or as wrangler's JSON var), and the
 * one header a provider may name for its tokens. Problems and warnings go to `ctx`.
 */
export function parseProviderList(value: unknown, ctx: ListContext): { providers: ProviderConfig[]; identityHeader: string | undefined } {
  const { problems } = ctx;
  const headers = new Set<string>();
  const entries = typeof value === "string" ? jsonOrUndefined(value) : value;
  if (!Array.isArray(entries) || entries.length === 0 || !entries.every(isPlainObject)) {
    problems.push("IDENTITY_PROVIDERS must be a non-empty array of provider objects");
    return { providers: [], identityHeader: undefined };
  }
  const byEntry = (entries as RawProvider[]).map((entry, i) => {
    const where = `IDENTITY_PROVIDERS[${i}]`;
    return expandPreset(entry, where, (m) => problems.push(m)).map((raw) => listedProvider(raw, where, ctx, headers));
  });
  const parsed = byEntry.flat();
  const issuers = parsed.map((p) => p.issuer);
  if (new Set(issuers).size !== issuers.length) {
    problems.push("IDENTITY_PROVIDERS lists an issuer twice (at most one entry may have issuer null)");
  }
  // Two entries are two sets of people: with one prefix, the same user id in both would be one clientId.
  const prefixes = byEntry.map((expanded) => expanded[0]?.clientIdPrefix);
  prefixes.forEach((prefix, i) => {
    const j = prefixes.indexOf(prefix);
    if (prefix !== undefined && j < i) {
      problems.push(`IDENTITY_PROVIDERS[${j}] and [${i}] have the same clientIdPrefix ${JSON.stringify(prefix)}: give each provider its own, or their users' ids collide`);
    }
  });
  if (headers.size > 1) problems.push("IDENTITY_PROVIDERS: only one tokenHeader may be configured across all providers");
  return { providers: parsed, identityHeader: [...headers][0] };
}

/** One generic IDENTITY_PROVIDERS entry (presets already expanded). */
function listedProvider(raw: RawProvider, where: string, ctx: ListContext, headers: Set<string>): ProviderConfig {
  const { env } = ctx;
  const fault = (message: string) => ctx.problems.push(`${where}: ${message}`);
  for (const field of Object.keys(raw)) {
    if (!PROVIDER_FIELDS.includes(field)) fault(`unknown field ${field}`);
  }
  const text = (field: string): string | undefined => {
    const value = raw[field];
    if (value === undefined) return undefined;
    if (typeof value !== "string" || value === "") fault(`${field} must be a non-empty string`);
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  const texts = (field: string): string[] | undefined => {
    const value = raw[field];
    if (value === undefined) return undefined;
    const items = typeof value === "string" ? [value] : value;
    if (Array.isArray(items) && items.length > 0 && items.every((v) => typeof v === "string" && v !== "")) {
      return items as string[];
    }
    fault(`${field} must be a string or a non-empty list of strings`);
    return [];
  };

  const issuer = raw.issuer === null ? null : text("issuer");
  if (issuer === undefined) fault("issuer is required (null only for the provider of tokens without iss)");
  const jwksUrl = text("jwksUrl");
  if (jwksUrl !== undefined && !isHttpUrl(jwksUrl)) fault("jwksUrl must be an http(s) URL");
  if (issuer && !jwksUrl && !isHttpUrl(issuer)) fault("issuer must be an http(s) URL when discovery finds the JWKS");

  const secretBinding = text("secretBinding");
  const secretValue = secretBinding === undefined ? undefined : env[secretBinding];
  if (secretBinding !== undefined && (typeof secretValue !== "string" || new TextEncoder().encode(secretValue).length < MIN_HMAC_SECRET_BYTES)) {
    fault(`secretBinding names ${secretBinding}, which must be a secret of at least ${MIN_HMAC_SECRET_BYTES} bytes`);
  }
  // The worker's own secrets must never double as a provider's: whoever knows them could mint identities.
  if (secretBinding === "ABLY_API_KEY" || secretBinding === "ADMIN_TOKEN") fault(`secretBinding may not name ${secretBinding}`);
  const secret = typeof secretValue === "string" && secretBinding !== undefined ? secretValue : undefined;
  const netlifySite = text("netlifySite");
  if (netlifySite !== undefined && !(isOrigin(netlifySite) && netlifySite.startsWith("https:"))) {
    fault("netlifySite must be the site's https origin, e.g. https://example.netlify.app");
  }
  if (netlifySite !== undefined && secretBinding !== undefined) fault("netlifySite and secretBinding exclude each other");
  const symmetric = secretBinding !== undefined || netlifySite !== undefined;
  if (issuer === null && !symmetric) fault("a provider with issuer null needs secretBinding or netlifySite: it has no JWKS");
  if (jwksUrl !== undefined && issuer === null) fault("a provider with issuer null has no JWKS");

  const algorithms = texts("algorithms") ?? [
    ...(issuer === null || netlifySite ? [] : DEFAULT_ALGORITHMS),
    ...(symmetric ? ["HS256"] : []),
  ];
  for (const alg of algorithms) {
    const isSymmetric = (SYMMETRIC_ALGORITHMS as readonly string[]).includes(alg);
    if (!isSymmetric && !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg)) {
      fault(`algorithms may only list ${[...ASYMMETRIC_ALGORITHMS, ...SYMMETRIC_ALGORITHMS].join(", ")}`);
    } else if (isSymmetric && !symmetric) {
      fault(`${alg} needs the provider's own secret (secretBinding); never a JWKS`);
    } else if (!isSymmetric && (issuer === null || netlifySite)) {
      fault(`${alg} needs a JWKS, which a provider with issuer null or netlifySite does not have`);
    }
  }
  if (netlifySite !== undefined && algorithms.some((alg) => alg !== "HS256")) fault("a Netlify site's tokens are HS256 only");

  const audiences = texts("audience");
  const noAudience = raw.noAudience === undefined ? false : raw.noAudience;
  if (typeof noAudience !== "boolean") fault("noAudience must be true or false");
  if (noAudience === true && audiences) fault("audience and noAudience: true exclude each other");
  if (noAudience !== true && !audiences) fault("audience is required (noAudience: true only for tokens that carry no aud)");

  const prefix = text("clientIdPrefix") ?? "";
  if (prefix !== "" && clientIdFault(prefix)) fault(`clientIdPrefix ${clientIdFault(prefix)}`);
  // A dot-separated path, or a list of names for claims that contain dots (Auth0's namespaced ones).
  const rolesPath = typeof raw.rolesClaim === "string" ? raw.rolesClaim.split(".") : raw.rolesClaim === undefined ? undefined : texts("rolesClaim");
  if (rolesPath?.some((part) => part === "")) fault("rolesClaim must be a dot-separated claim path or a list of claim names");
  let bannedRoles = ctx.bannedRolePattern;
  const bannedText = text("bannedRolePattern");
  try {
    if (bannedText !== undefined) bannedRoles = new RegExp(bannedText, "i");
  } catch {
    fault("bannedRolePattern is not a valid regular expression");
  }
  const tolerance = raw.clockToleranceSeconds ?? ctx.clockToleranceSeconds;
  if (!Number.isInteger(tolerance) || (tolerance as number) < 0 || (tolerance as number) > MAX_CLOCK_TOLERANCE_SECONDS) {
    fault(`clockToleranceSeconds must be a whole number from 0 to ${MAX_CLOCK_TOLERANCE_SECONDS}`);
  }

  const rules: ClaimRule[] = [];
  for (const [field, place, required] of RULE_FIELDS) {
    const value = raw[field];
    if (value === undefined) continue;
    if (!isPlainObject(value)) {
      fault(`${field} must map claim names to a value or a list of values`);
      continue;
    }
    for (const [name, accepted] of Object.entries(value)) {
      if (accepted === true) {
        rules.push(Object.freeze({ in: place, name, oneOf: undefined, required }));
        continue;
      }
      const oneOf: unknown = typeof accepted === "string" ? [accepted] : accepted;
      if (!Array.isArray(oneOf) || oneOf.length === 0 || !oneOf.every((v) => typeof v === "string" && v !== "")) {
        fault(`${field}.${name} must be a string, a non-empty list of strings, or true (any value)`);
        continue;
      }
      rules.push(Object.freeze({ in: place, name, oneOf: Object.freeze([...(oneOf as string[])]), required }));
    }
  }
  const tokenHeader = text("tokenHeader");
  if (tokenHeader !== undefined) {
    if (!/^[A-Za-z0-9-]+$/.test(tokenHeader) || /^(authorization|cookie)$/i.test(tokenHeader)) {
      fault("tokenHeader must be a header name other than Authorization and Cookie");
    } else {
      headers.add(tokenHeader);
    }
  }

  return Object.freeze({
    name: text("name") ?? issuer ?? "tokens without iss",
    issuer: issuer ?? "",
    jwksUrl,
    audiences: audiences ? Object.freeze(audiences) : null,
    algorithms: Object.freeze(algorithms),
    secret,
    netlifySite,
    clientIdClaim: text("clientIdClaim") ?? "sub",
    clientIdPrefix: prefix,
    clockToleranceSeconds: tolerance as number,
    rolesClaim: rolesPath ? Object.freeze(rolesPath) : undefined,
    bannedRolePattern: bannedRoles,
    rules: Object.freeze(rules),
    capability: raw.capability === undefined ? undefined : ctx.capability(`${where} capability`, raw.capability),
    roleCapabilities: raw.roleCapabilities === undefined ? undefined : ctx.roleCapabilities(`${where} roleCapabilities`, raw.roleCapabilities),
  });
}

/** The fields of a generic IDENTITY_PROVIDERS entry; anything else is a typo and refused. */
const PROVIDER_FIELDS: readonly string[] = [
  "name", "issuer", "jwksUrl", "audience", "noAudience", "algorithms", "secretBinding", "netlifySite",
  "clientIdClaim", "clientIdPrefix", "clockToleranceSeconds", "rolesClaim", "bannedRolePattern",
  "requireClaims", "requireHeaders", "claimsIfPresent", "headersIfPresent", "capability", "roleCapabilities", "tokenHeader",
];

/** The entry fields that hold claim rules: where the value is, and whether it must be there. */
const RULE_FIELDS = [
  ["requireClaims", "payload", true],
  ["requireHeaders", "header", true],
  ["claimsIfPresent", "payload", false],
  ["headersIfPresent", "header", false],
] as const;
