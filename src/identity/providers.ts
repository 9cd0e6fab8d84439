/**
 * The identity providers whose tokens the worker accepts, validated into frozen ProviderConfigs by
 * one function, whichever way they are written: the single-provider variables (JWT_ISSUER,
 * JWKS_URL, ...) are a shorthand for one entry, IDENTITY_PROVIDERS lists entries (generic, or a
 * preset that presets.ts expands). With both, the shorthand is the first entry. Every problem names
 * the variable or the entry (`IDENTITY_PROVIDERS[2]: ...`) and the field, never a secret's value.
 */
import type { Capability } from "../ably/capability";
import { clientIdFault } from "./client-id";
import {
  ASYMMETRIC_ALGORITHMS,
  DEFAULT_ALGORITHMS,
  MAX_CLOCK_TOLERANCE_SECONDS,
  MIN_HMAC_SECRET_BYTES,
  SYMMETRIC_ALGORITHMS,
} from "../constants";
import { expandPreset, type RawProvider } from "./presets";
import { isHttpUrl, isOrigin, isPlainObject, jsonOrUndefined, utf8 } from "../validate";

/**
 * A check of one claim (or protected header) value beyond jose's: how a provider's access token is
 * told from an ID or other token signed by the same keys (Cognito `token_use`, Keycloak `typ`,
 * Cloudflare `type`, Clerk `azp` and `cat`, Entra `ver` and `scp`).
 */
export interface ClaimRule {
  /** Where the value is: the verified payload or the protected header. */
  readonly in: "payload" | "header";
  readonly name: string;
  /** Accepted values, compared exactly; undefined: any non-empty string (`true` in the entry). */
  readonly oneOf: readonly string[] | undefined;
  /** Whether a token without it is refused (`requireClaims`, `requireHeaders`) or passes (`claimsIfPresent`, `headersIfPresent`). */
  readonly required: boolean;
}

/** One identity provider whose tokens the worker accepts. */
export interface ProviderConfig {
  /** For logs and problems: the entry's `name` (presets set one), else its issuer. */
  readonly name: string;
  /**
   * Exact `iss` of its tokens (JWT_ISSUER, `issuer`). "" for the one provider chosen for tokens
   * without `iss` (`"issuer": null`), which never uses a JWKS.
   */
  readonly issuer: string;
  /** Its JWKS (JWKS_URL, `jwksUrl`); when undefined, found through the issuer's OIDC discovery document. */
  readonly jwksUrl: string | undefined;
  /** Accepted `aud` values (JWT_AUDIENCE, `audience`); `null` only with the no-audience switch. */
  readonly audiences: readonly string[] | null;
  /** Accepted JWS algorithms (JWT_ALGORITHMS, `algorithms`). HS* only with `secret` or `netlifySite`. Default RS256, ES256. */
  readonly algorithms: readonly string[];
  /** HMAC secret for this provider's HS* tokens only: the value of the binding `secretBinding` names. Default none. */
  readonly secret: string | undefined;
  /** A hosted Netlify site's origin, whose Identity endpoint vouches for its HS256 tokens (`netlifySite`). Default none. */
  readonly netlifySite: string | undefined;
  /** Top-level claim holding the user id that becomes the clientId (CLIENT_ID_CLAIM, `clientIdClaim`). Default `sub`. */
  readonly clientIdClaim: string;
  /** Put before the user id so two providers' users cannot collide (`clientIdPrefix`), e.g. `auth0:`. Default "". */
  readonly clientIdPrefix: string;
  /** Clock skew allowed on exp, nbf and iat, in seconds (JWT_CLOCK_TOLERANCE_SECONDS, `clockToleranceSeconds`). Default 30. */
  readonly clockToleranceSeconds: number;
  /** Dot-separated path of the claim holding the user's roles (ROLES_CLAIM, `rolesClaim`), e.g. `app_metadata.roles`. Default none. */
  readonly rolesClaim: readonly string[] | undefined;
  /** Roles that ban (`bannedRolePattern`, case-insensitive). Default BANNED_ROLE_PATTERN. */
  readonly bannedRolePattern: RegExp;
  /** Token-type checks (`requireClaims`, `claimsIfPresent`, `headersIfPresent`). Default none. */
  readonly rules: readonly ClaimRule[];
  /** Replaces ABLY_CAPABILITY for this provider's users (`capability`). Default none. */
  readonly capability: Capability | undefined;
  /** Replaces ROLE_CAPABILITIES for this provider's users (`roleCapabilities`). Default none. */
  readonly roleCapabilities: Readonly<Record<string, Capability>> | undefined;
}

/** What parsing providers needs from the rest of the configuration. */
export interface ProviderContext {
  readonly env: Readonly<Record<string, unknown>>;
  readonly problems: string[];
  /** JWT_CLOCK_TOLERANCE_SECONDS, the default of `clockToleranceSeconds`. */
  readonly clockToleranceSeconds: number;
  /** BANNED_ROLE_PATTERN, the default of `bannedRolePattern`. */
  readonly bannedRolePattern: RegExp;
  /** Parses a capability (JSON text or object), reporting problems under `where`. */
  readonly capability: (where: string, value: unknown) => Capability;
  /** Parses a role → capability map, reporting problems under `where`. */
  readonly roleCapabilities: (where: string, value: unknown) => Readonly<Record<string, Capability>>;
}

/** The single-provider variables, each the shorthand for one field of an entry. */
const SHORTHAND: Readonly<Record<string, string>> = {
  JWT_ISSUER: "issuer",
  JWKS_URL: "jwksUrl",
  JWT_AUDIENCE: "audience",
  JWT_NO_AUDIENCE: "noAudience",
  JWT_ALGORITHMS: "algorithms",
  CLIENT_ID_CLAIM: "clientIdClaim",
  ROLES_CLAIM: "rolesClaim",
};

/** Where an entry came from: how its problems name it and its fields. */
interface Source {
  /** The entry in a problem: `IDENTITY_PROVIDERS[2]`, or `JWT_ISSUER` for the shorthand. */
  readonly name: string;
  /** Put before a problem about one field (`IDENTITY_PROVIDERS[2]: `), "" for the shorthand. */
  readonly prefix: string;
  /** A field as the operator wrote it: `audience`, or `JWT_AUDIENCE` for the shorthand. */
  readonly field: (name: string) => string;
}

/**
 * The providers the single-provider variables and IDENTITY_PROVIDERS (a JSON array, as text or as
 * wrangler's JSON var) describe, and the one header a provider may name for its tokens. Problems
 * go to `ctx`.
 */
export function parseProviders(ctx: ProviderContext): {
  providers: ProviderConfig[];
  identityHeader: string | undefined;
} {
  const { env, problems } = ctx;
  const entries: { raw: RawProvider; source: Source }[] = [];
  const shorthand = shorthandEntry(env);
  if (shorthand) {
    const byField = Object.fromEntries(Object.entries(SHORTHAND).map(([variable, field]) => [field, variable]));
    entries.push({ raw: shorthand, source: { name: "JWT_ISSUER", prefix: "", field: (f) => byField[f] ?? f } });
  }
  const listed = env.IDENTITY_PROVIDERS === "" ? undefined : env.IDENTITY_PROVIDERS;
  if (listed !== undefined) {
    const list = typeof listed === "string" ? jsonOrUndefined(listed) : listed;
    if (!Array.isArray(list) || list.length === 0 || !list.every(isPlainObject)) {
      problems.push("IDENTITY_PROVIDERS must be a non-empty array of provider objects");
    } else {
      list.forEach((raw: RawProvider, i) => {
        const name = `IDENTITY_PROVIDERS[${i}]`;
        entries.push({ raw, source: { name, prefix: `${name}: `, field: (f) => f } });
      });
    }
  }
  if (entries.length === 0) {
    problems.push("no identity provider: set JWT_ISSUER and JWT_AUDIENCE, or IDENTITY_PROVIDERS");
  }

  const headers = new Set<string>();
  const byEntry = entries.map(({ raw, source }) =>
    expandPreset(raw, source.name, (m) => problems.push(m)).map((expanded) => provider(expanded, source, ctx, headers)),
  );
  const parsed = byEntry.flat();
  const issuers = parsed.map((p) => p.issuer);
  if (new Set(issuers).size !== issuers.length) {
    problems.push("an issuer is configured twice (at most one entry may have issuer null)");
  }
  // Two entries are two sets of people: with one prefix, the same user id in both would be one clientId.
  const prefixes = byEntry.map((expanded) => expanded[0]?.clientIdPrefix);
  prefixes.forEach((prefix, i) => {
    const j = prefixes.indexOf(prefix);
    if (prefix !== undefined && j < i) {
      problems.push(
        `${entries[j]!.source.name} and ${entries[i]!.source.name} have the same clientIdPrefix ${JSON.stringify(prefix)}: give each provider its own, or their users' ids collide`,
      );
    }
  });
  if (headers.size > 1)
    problems.push("IDENTITY_PROVIDERS: only one tokenHeader may be configured across all providers");
  return { providers: parsed, identityHeader: [...headers][0] };
}

/**
 * The entry the single-provider variables describe, or undefined when none is set. Comma-separated
 * lists become lists and `true`/`false` booleans; anything else is left for the entry's checks.
 */
function shorthandEntry(env: Readonly<Record<string, unknown>>): RawProvider | undefined {
  const entry: Record<string, unknown> = {};
  for (const [variable, field] of Object.entries(SHORTHAND)) {
    const value = typeof env[variable] === "string" ? env[variable].trim() : env[variable];
    if (value === undefined || value === "") continue;
    if (typeof value !== "string") entry[field] = value;
    else if (field === "audience" || field === "algorithms")
      entry[field] = value
        .split(",")
        .map((v) => v.trim())
        .filter(Boolean);
    else if (field === "noAudience") entry[field] = value === "true" ? true : value === "false" ? false : value;
    else entry[field] = value;
  }
  return Object.keys(entry).length === 0 ? undefined : entry;
}

/** One generic entry (presets already expanded), checked the same whichever way it was written. */
function provider(raw: RawProvider, source: Source, ctx: ProviderContext, headers: Set<string>): ProviderConfig {
  const { env } = ctx;
  const f = source.field;
  const fault = (message: string) => ctx.problems.push(source.prefix + message);
  for (const field of Object.keys(raw)) {
    if (!PROVIDER_FIELDS.includes(field)) fault(`unknown field ${field}`);
  }
  const text = (field: string): string | undefined => {
    const value = raw[field];
    if (value === undefined) return undefined;
    if (typeof value !== "string" || value === "") fault(`${f(field)} must be a non-empty string`);
    return typeof value === "string" && value !== "" ? value : undefined;
  };
  const texts = (field: string): string[] | undefined => {
    const value = raw[field];
    if (value === undefined) return undefined;
    const items = typeof value === "string" ? [value] : value;
    if (Array.isArray(items) && items.length > 0 && items.every((v) => typeof v === "string" && v !== "")) {
      return items as string[];
    }
    fault(`${f(field)} must be a string or a non-empty list of strings`);
    return [];
  };

  const issuer = raw.issuer === null ? null : text("issuer");
  if (issuer === undefined) fault(`${f("issuer")} is required`);
  const jwksUrl = text("jwksUrl");
  if (jwksUrl !== undefined && !isHttpUrl(jwksUrl)) fault(`${f("jwksUrl")} must be an http(s) URL`);
  if (issuer && !jwksUrl && !isHttpUrl(issuer))
    fault(`${f("issuer")} must be an http(s) URL when discovery finds the JWKS (or set ${f("jwksUrl")})`);

  const secretBinding = text("secretBinding");
  const secretValue = secretBinding === undefined ? undefined : env[secretBinding];
  if (
    secretBinding !== undefined &&
    (typeof secretValue !== "string" || utf8(secretValue).length < MIN_HMAC_SECRET_BYTES)
  ) {
    fault(`secretBinding names ${secretBinding}, which must be a secret of at least ${MIN_HMAC_SECRET_BYTES} bytes`);
  }
  // The worker's own secrets must never double as a provider's: whoever knows them could mint identities.
  if (secretBinding === "ABLY_API_KEY" || secretBinding === "ADMIN_TOKEN")
    fault(`secretBinding may not name ${secretBinding}`);
  const secret = typeof secretValue === "string" && secretBinding !== undefined ? secretValue : undefined;
  const netlifySite = text("netlifySite");
  if (netlifySite !== undefined && !(isOrigin(netlifySite) && netlifySite.startsWith("https:"))) {
    fault("netlifySite must be the site's https origin, e.g. https://example.netlify.app");
  }
  if (netlifySite !== undefined && secretBinding !== undefined)
    fault("netlifySite and secretBinding exclude each other");
  const symmetric = secretBinding !== undefined || netlifySite !== undefined;
  if (issuer === null && !symmetric)
    fault("a provider with issuer null needs secretBinding or netlifySite: it has no JWKS");
  if (jwksUrl !== undefined && issuer === null) fault("a provider with issuer null has no JWKS");

  const algorithms = texts("algorithms") ?? [
    ...(issuer === null || netlifySite ? [] : DEFAULT_ALGORITHMS),
    ...(symmetric ? ["HS256"] : []),
  ];
  for (const alg of algorithms) {
    const isSymmetric = (SYMMETRIC_ALGORITHMS as readonly string[]).includes(alg);
    if (!isSymmetric && !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(alg)) {
      fault(`${f("algorithms")} may only list ${[...ASYMMETRIC_ALGORITHMS, ...SYMMETRIC_ALGORITHMS].join(", ")}`);
    } else if (isSymmetric && !symmetric) {
      fault(`${f("algorithms")}: ${alg} needs the provider's own secret (secretBinding); never a JWKS`);
    } else if (!isSymmetric && (issuer === null || netlifySite)) {
      fault(`${f("algorithms")}: ${alg} needs a JWKS, which a provider with issuer null or netlifySite does not have`);
    }
  }
  if (netlifySite !== undefined && algorithms.some((alg) => alg !== "HS256"))
    fault("a Netlify site's tokens are HS256 only");

  const audiences = texts("audience");
  const noAudience = raw.noAudience === undefined ? false : raw.noAudience;
  if (typeof noAudience !== "boolean") fault(`${f("noAudience")} must be true or false`);
  if (noAudience === true && audiences) fault(`${f("audience")} and ${f("noAudience")} true exclude each other`);
  if (noAudience !== true && !audiences)
    fault(`${f("audience")} is required (${f("noAudience")} true only for tokens that carry no aud)`);

  const prefix = text("clientIdPrefix") ?? "";
  if (prefix !== "" && clientIdFault(prefix)) fault(`clientIdPrefix ${clientIdFault(prefix)}`);
  // A dot-separated path, or a list of names for claims that contain dots (Auth0's namespaced ones).
  const rolesPath =
    typeof raw.rolesClaim === "string"
      ? raw.rolesClaim.split(".")
      : raw.rolesClaim === undefined
        ? undefined
        : texts("rolesClaim");
  if (rolesPath?.some((part) => part === ""))
    fault(`${f("rolesClaim")} must be a dot-separated claim path or a list of claim names`);
  let bannedRoles = ctx.bannedRolePattern;
  const bannedText = text("bannedRolePattern");
  try {
    if (bannedText !== undefined) bannedRoles = new RegExp(bannedText, "i");
  } catch {
    fault("bannedRolePattern is not a valid regular expression");
  }
  const tolerance = raw.clockToleranceSeconds ?? ctx.clockToleranceSeconds;
  if (
    !Number.isInteger(tolerance) ||
    (tolerance as number) < 0 ||
    (tolerance as number) > MAX_CLOCK_TOLERANCE_SECONDS
  ) {
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
    capability: raw.capability === undefined ? undefined : ctx.capability(`${source.prefix}capability`, raw.capability),
    roleCapabilities:
      raw.roleCapabilities === undefined
        ? undefined
        : ctx.roleCapabilities(`${source.prefix}roleCapabilities`, raw.roleCapabilities),
  });
}

/** The fields of a generic IDENTITY_PROVIDERS entry; anything else is a typo and refused. */
const PROVIDER_FIELDS: readonly string[] = [
  "name",
  "issuer",
  "jwksUrl",
  "audience",
  "noAudience",
  "algorithms",
  "secretBinding",
  "netlifySite",
  "clientIdClaim",
  "clientIdPrefix",
  "clockToleranceSeconds",
  "rolesClaim",
  "bannedRolePattern",
  "requireClaims",
  "requireHeaders",
  "claimsIfPresent",
  "headersIfPresent",
  "capability",
  "roleCapabilities",
  "tokenHeader",
];

/** The entry fields that hold claim rules: where the value is, and whether it must be there. */
const RULE_FIELDS = [
  ["requireClaims", "payload", true],
  ["requireHeaders", "header", true],
  ["claimsIfPresent", "payload", false],
  ["headersIfPresent", "header", false],
] as const;
