/**
 * The worker's configuration: read from the environment once per isolate, validated, frozen.
 * Nothing else in the worker reads `env` strings. Every problem is reported together.
 *
 * Identity providers: either the single-provider variables (JWT_ISSUER, JWKS_URL, ...) describe
 * one, or IDENTITY_PROVIDERS lists several (generic entries or presets, see providers.ts); setting
 * both is a configuration error, so no issuer is ever trusted by accident.
 */
import { type Capability, CapabilityError, parseCapability } from "./capability";
import { parseProviderList } from "./provider-list";
import { isHttpUrl, isOrigin, isPlainObject, jsonOrUndefined } from "./validate";
import type { RateLimiter } from "./rate-limit";
import type { BanRevocations } from "./ban-revocations";
import {
  ABLY_MAX_TTL_SECONDS,
  ABLY_REVOCABLE_MAX_TTL_SECONDS,
  ASYMMETRIC_ALGORITHMS,
  BAN_PROPAGATION_MARGIN_SECONDS,
  DEFAULT_ABLY_REST_URL,
  DEFAULT_ALGORITHMS,
  DEFAULT_BAN_CACHE_TTL_SECONDS,
  DEFAULT_CLOCK_TOLERANCE_SECONDS,
  DEFAULT_TOKEN_TTL_SECONDS,
  KV_PROPAGATION_SECONDS,
  MAX_CLOCK_TOLERANCE_SECONDS,
  MIN_ADMIN_TOKEN_CHARS,
  MIN_BAN_CACHE_TTL_SECONDS,
} from "./constants";

/**
 * Least privilege: each user may publish, subscribe and use presence and history on their own
 * channel `private:<clientId>` and nothing else. Widen it with ABLY_CAPABILITY.
 */
export const DEFAULT_CAPABILITY = '{"private:{clientId}":["history","presence","publish","subscribe"]}';

/** What an Ably API key may grant when ABLY_KEY_CAPABILITY is unset: everything (a key's default). */
export const DEFAULT_KEY_CAPABILITY = '{"*":["*"]}';

/** Roles that ban, as in the seed's Netlify Identity function: any role starting with "banned". */
export const DEFAULT_BANNED_ROLE_PATTERN = "^banned";

/**
 * A check of one claim (or protected header) value beyond jose's: how a provider's access token is
 * told from an ID or other token signed by the same keys (Cognito `token_use`, Keycloak `typ`,
 * Cloudflare `type`, Clerk `azp` and `cat`, Entra `ver`).
 */
export interface ClaimRule {
  /** Where the value is: the verified payload or the protected header. */
  readonly in: "payload" | "header";
  readonly name: string;
  /** Accepted values, compared exactly. */
  readonly oneOf: readonly string[];
  /** Whether a token without it is refused (`requireClaims`) or passes (`claimsIfPresent`, `headersIfPresent`). */
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

/** The Ably API key, split. The secret never leaves the worker: only `keyName` appears in tokens. */
export interface AblyKey {
  /** `<appId>.<keyId>`: the JWT's `kid`. */
  readonly keyName: string;
  /** The part after the colon: the HS256 secret. */
  readonly secret: string;
}

export interface Config {
  readonly providers: readonly ProviderConfig[];
  readonly ablyKey: AblyKey;
  /** Capability granted to every user, `{clientId}` still in it (ABLY_CAPABILITY). */
  readonly grant: Capability;
  /** Role → capability added to the grant of users with that role (ROLE_CAPABILITIES). Default none. */
  readonly roleCapabilities: Readonly<Record<string, Capability>>;
  /** What the Ably key itself may grant (ABLY_KEY_CAPABILITY); every grant is intersected with it. Default `{"*":["*"]}`. */
  readonly keyCapability: Capability;
  /** Lifetime of issued tokens, in seconds (ABLY_TOKEN_TTL_SECONDS). Default 3600, at most 86400. */
  readonly tokenTtlSeconds: number;
  /** Whether issued tokens expire no later than the identity token (TOKEN_EXPIRES_WITH_IDENTITY). Default false. */
  readonly tokenExpiresWithIdentity: boolean;
  /** Exact browser origins allowed to call cross-origin with credentials (ALLOWED_ORIGINS). Default none. */
  readonly allowedOrigins: ReadonlySet<string>;
  /** Cookie that may carry the identity token when no Authorization header does (IDENTITY_COOKIE). Default none. */
  readonly identityCookie: string | undefined;
  /** Header that may carry it when no Authorization header does: a provider's `tokenHeader` (Cloudflare Access: Cf-Access-Jwt-Assertion). Default none. */
  readonly identityHeader: string | undefined;
  /** The ban list (KV binding BANS). */
  readonly bans: KVNamespace;
  /** KV `cacheTtl` of ban reads, in seconds (BAN_CACHE_TTL_SECONDS). Default 60, at least 30. */
  readonly banCacheTtlSeconds: number;
  /** Roles that ban (BANNED_ROLE_PATTERN, case-insensitive). Default `^banned`; only used with ROLES_CLAIM. */
  readonly bannedRolePattern: RegExp;
  /** The admin API's bearer token (ADMIN_TOKEN, a secret); undefined turns the admin API off (404). */
  readonly adminToken: string | undefined;
  /** Whether the key has Ably's revocable tokens on (ABLY_REVOCABLE_TOKENS): bans revoke, TTL ≤ 1 h. Default false. */
  readonly revocableTokens: boolean;
  /** Ably's REST base URL, for revocation (ABLY_REST_URL). Default https://main.realtime.ably.net. */
  readonly ablyRestUrl: string;
  /**
   * How long a ban takes to hold in every location, in seconds (BAN_PROPAGATION_SECONDS): KV's
   * propagation plus the cached reads of BAN_CACHE_TTL_SECONDS. With revocable tokens the second
   * revocation comes this long after the ban. Default KV's 60 + BAN_CACHE_TTL_SECONDS + a 60 s margin.
   */
  readonly banPropagationSeconds: number;
  /** The Durable Objects that revoke for bans (binding BAN_REVOCATIONS); required with ABLY_REVOCABLE_TOKENS. */
  readonly banRevocations: DurableObjectNamespace<BanRevocations> | undefined;
  /** Whether tokens are issued when the ban list cannot be read (BAN_LIST_FAIL_OPEN). Default false: 503. */
  readonly banListFailOpen: boolean;
  /** Per client IP limit, before verification (binding IP_RATE_LIMITER); undefined: off. */
  readonly ipRateLimiter: RateLimiter | undefined;
  /** Per clientId limit, after verification (binding USER_RATE_LIMITER); undefined: off. */
  readonly userRateLimiter: RateLimiter | undefined;
}

export type ConfigResult =
  | { readonly ok: true; readonly config: Config; readonly warnings: readonly string[] }
  | { readonly ok: false; readonly problems: readonly string[] };

const cache = new WeakMap<object, ConfigResult>();

/** The configuration for this environment, parsed on first use and then reused by the isolate. */
export function loadConfig(env: object): ConfigResult {
  let result = cache.get(env);
  if (!result) {
    result = parseConfig(env as Record<string, unknown>);
    cache.set(env, result);
  }
  return result;
}

/** Parses and validates; problem messages name variables, never their values (some are secrets). */
export function parseConfig(env: Record<string, unknown>): ConfigResult {
  const problems: string[] = [];
  const warnings: string[] = [];
  const str = (name: string): string | undefined => {
    const value = env[name];
    if (value === undefined || value === "") return undefined;
    if (typeof value !== "string") {
      problems.push(`${name} must be a string`);
      return undefined;
    }
    return value.trim();
  };
  const list = (name: string): string[] =>
    (str(name) ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const int = (name: string, fallback: number, min: number, max: number): number => {
    const raw = str(name);
    if (raw === undefined) return fallback;
    const n = /^\d+$/.test(raw) ? Number(raw) : NaN;
    if (!(n >= min && n <= max)) {
      problems.push(`${name} must be a whole number from ${min} to ${max}`);
      return fallback;
    }
    return n;
  };
  const bool = (name: string): boolean => {
    const raw = str(name);
    if (raw === undefined || raw === "false") return false;
    if (raw === "true") return true;
    problems.push(`${name} must be "true" or "false"`);
    return false;
  };

  // The Ably key: <appId>.<keyId>:<secret>
  const rawKey = str("ABLY_API_KEY");
  const keyMatch = rawKey?.match(/^([^.:\s]+\.[^.:\s]+):(\S+)$/);
  if (rawKey === undefined) {
    problems.push("ABLY_API_KEY is not set (wrangler secret put ABLY_API_KEY; .dev.vars locally)");
  } else if (!keyMatch) {
    problems.push("ABLY_API_KEY is not of the form <appId>.<keyId>:<secret>");
  }

  /** A capability from JSON text or (wrangler's JSON vars) an object; `{}` when it is invalid. */
  const capability = (where: string, value: unknown): Capability => {
    try {
      const parsed = parseCapability(typeof value === "string" ? value : JSON.stringify(value));
      if (Object.keys(parsed).length === 0) problems.push(`${where} grants nothing`);
      return parsed;
    } catch (e) {
      if (!(e instanceof CapabilityError)) throw e;
      problems.push(`${where} ${e.message}`);
      return {};
    }
  };
  /** Role → capability, as for ROLE_CAPABILITIES. */
  const roleCapabilities = (where: string, value: unknown): Readonly<Record<string, Capability>> => {
    const roles = typeof value === "string" ? jsonOrUndefined(value) : value;
    if (!isPlainObject(roles)) {
      problems.push(`${where} must be a JSON object mapping role names to capabilities`);
      return {};
    }
    return Object.freeze(Object.fromEntries(
      Object.entries(roles).map(([role, cap]) => [role, capability(`${where} (role ${role})`, cap)]),
    ));
  };
  /** A JSON-valued variable: text, or the object wrangler makes of a TOML table; undefined when unset. */
  const jsonVar = (name: string): unknown => (env[name] === "" ? undefined : env[name]);
  const grant = capability("ABLY_CAPABILITY", jsonVar("ABLY_CAPABILITY") ?? DEFAULT_CAPABILITY);
  const keyCapability = capability("ABLY_KEY_CAPABILITY", jsonVar("ABLY_KEY_CAPABILITY") ?? DEFAULT_KEY_CAPABILITY);
  const rawRoleCapabilities = jsonVar("ROLE_CAPABILITIES");
  const globalRoleCapabilities = rawRoleCapabilities === undefined
    ? Object.freeze({})
    : roleCapabilities("ROLE_CAPABILITIES", rawRoleCapabilities);
  const clockToleranceSeconds = int(
    "JWT_CLOCK_TOLERANCE_SECONDS",
    DEFAULT_CLOCK_TOLERANCE_SECONDS,
    0,
    MAX_CLOCK_TOLERANCE_SECONDS,
  );
  let bannedRolePattern = /^banned/i;
  try {
    bannedRolePattern = new RegExp(str("BANNED_ROLE_PATTERN") ?? DEFAULT_BANNED_ROLE_PATTERN, "i");
  } catch {
    problems.push("BANNED_ROLE_PATTERN is not a valid regular expression");
  }

  const listed = jsonVar("IDENTITY_PROVIDERS");
  let providers: ProviderConfig[];
  let identityHeader: string | undefined;
  if (listed === undefined) {
    providers = [singleProvider()];
  } else {
    const single = SINGLE_PROVIDER_VARIABLES.filter((name) => str(name) !== undefined);
    if (single.length > 0) {
      problems.push(`IDENTITY_PROVIDERS excludes the single-provider variables (remove ${single.join(", ")}, or describe that provider in the list)`);
    }
    ({ providers, identityHeader } = parseProviderList(listed, {
      env, problems, warnings, clockToleranceSeconds, bannedRolePattern, capability, roleCapabilities,
    }));
  }

  /** The provider the single-provider variables describe. */
  function singleProvider(): ProviderConfig {
    const issuer = str("JWT_ISSUER");
    if (issuer === undefined) problems.push("JWT_ISSUER is not set");
    else if (!isHttpUrl(issuer)) problems.push("JWT_ISSUER must be an http(s) URL");

    const jwksUrl = str("JWKS_URL");
    if (jwksUrl !== undefined && !isHttpUrl(jwksUrl)) problems.push("JWKS_URL must be an http(s) URL");

    const audiences = list("JWT_AUDIENCE");
    const noAudience = bool("JWT_NO_AUDIENCE");
    if (noAudience && audiences.length > 0) {
      problems.push("JWT_AUDIENCE and JWT_NO_AUDIENCE=true exclude each other");
    } else if (!noAudience && audiences.length === 0) {
      problems.push(
        "JWT_AUDIENCE is not set (set JWT_NO_AUDIENCE=true only for a provider that issues no aud)",
      );
    }

    const algorithms = list("JWT_ALGORITHMS");
    const badAlgs = algorithms.filter((a) => !(ASYMMETRIC_ALGORITHMS as readonly string[]).includes(a));
    if (badAlgs.length > 0) {
      problems.push(`JWT_ALGORITHMS may only list ${ASYMMETRIC_ALGORITHMS.join(", ")}`);
    }

    const rolesClaim = str("ROLES_CLAIM")?.split(".");
    if (rolesClaim?.some((part) => part === "")) problems.push("ROLES_CLAIM must be a dot-separated claim path");
    return Object.freeze({
      name: issuer ?? "JWT_ISSUER",
      issuer: issuer ?? "",
      jwksUrl,
      audiences: noAudience ? null : Object.freeze(audiences),
      algorithms: Object.freeze(algorithms.length > 0 ? algorithms : [...DEFAULT_ALGORITHMS]),
      secret: undefined,
      netlifySite: undefined,
      clientIdClaim: str("CLIENT_ID_CLAIM") ?? "sub",
      clientIdPrefix: "",
      clockToleranceSeconds,
      rolesClaim: rolesClaim ? Object.freeze(rolesClaim) : undefined,
      bannedRolePattern,
      rules: Object.freeze([]),
      capability: undefined,
      roleCapabilities: undefined,
    });
  }

  const allowedOrigins = list("ALLOWED_ORIGINS");
  for (const origin of allowedOrigins) {
    if (!isOrigin(origin)) {
      problems.push(
        `ALLOWED_ORIGINS entries must be exact origins like https://app.example.com (no path, no *)`,
      );
      break;
    }
  }

  const revocableTokens = bool("ABLY_REVOCABLE_TOKENS");
  const maxTtl = revocableTokens ? ABLY_REVOCABLE_MAX_TTL_SECONDS : ABLY_MAX_TTL_SECONDS;
  const tokenTtlSeconds = int("ABLY_TOKEN_TTL_SECONDS", DEFAULT_TOKEN_TTL_SECONDS, 1, maxTtl);

  const ablyRestUrl = (str("ABLY_REST_URL") ?? DEFAULT_ABLY_REST_URL).replace(/\/+$/, "");
  if (!isHttpUrl(ablyRestUrl)) problems.push("ABLY_REST_URL must be an http(s) URL");

  const adminToken = str("ADMIN_TOKEN");
  if (adminToken !== undefined && adminToken.length < MIN_ADMIN_TOKEN_CHARS) {
    problems.push(`ADMIN_TOKEN must be at least ${MIN_ADMIN_TOKEN_CHARS} characters (openssl rand -hex 32)`);
  }


  const limiter = (name: string) => {
    const binding = env[name] as RateLimiter | undefined;
    return binding && typeof binding.limit === "function" ? binding : undefined;
  };
  const ipRateLimiter = limiter("IP_RATE_LIMITER");
  const userRateLimiter = limiter("USER_RATE_LIMITER");
  warnings.push(
    ...(ipRateLimiter ? [] : ["rate limiting per IP is off (no IP_RATE_LIMITER binding)"]),
    ...(userRateLimiter ? [] : ["rate limiting per user is off (no USER_RATE_LIMITER binding)"]),
  );

  const bans = env.BANS as KVNamespace | undefined;
  if (!bans || typeof bans.get !== "function") problems.push("KV namespace binding BANS is missing");

  const banCacheTtlSeconds = int(
    "BAN_CACHE_TTL_SECONDS",
    DEFAULT_BAN_CACHE_TTL_SECONDS,
    MIN_BAN_CACHE_TTL_SECONDS,
    ABLY_MAX_TTL_SECONDS,
  );
  const leastPropagation = KV_PROPAGATION_SECONDS + banCacheTtlSeconds;
  const banPropagationSeconds = int(
    "BAN_PROPAGATION_SECONDS",
    leastPropagation + BAN_PROPAGATION_MARGIN_SECONDS,
    1,
    ABLY_MAX_TTL_SECONDS,
  );
  if (banPropagationSeconds < leastPropagation) {
    warnings.push(
      `BAN_PROPAGATION_SECONDS is under KV's ${KV_PROPAGATION_SECONDS} s plus BAN_CACHE_TTL_SECONDS: a location may still issue tokens after a ban's last revocation`,
    );
  }
  const banRevocations = env.BAN_REVOCATIONS as DurableObjectNamespace<BanRevocations> | undefined;
  if (revocableTokens && typeof banRevocations?.idFromName !== "function") {
    problems.push("ABLY_REVOCABLE_TOKENS needs the Durable Object binding BAN_REVOCATIONS (see wrangler.toml)");
  }

  const config: Config = Object.freeze({
    providers: Object.freeze(providers),
    ablyKey: Object.freeze({ keyName: keyMatch?.[1] ?? "", secret: keyMatch?.[2] ?? "" }),
    grant,
    roleCapabilities: globalRoleCapabilities,
    keyCapability,
    tokenTtlSeconds,
    tokenExpiresWithIdentity: bool("TOKEN_EXPIRES_WITH_IDENTITY"),
    allowedOrigins: new Set(allowedOrigins),
    identityCookie: str("IDENTITY_COOKIE"),
    identityHeader,
    bans: bans as KVNamespace,
    banCacheTtlSeconds,
    bannedRolePattern,
    adminToken,
    revocableTokens,
    ablyRestUrl,
    banPropagationSeconds,
    banRevocations,
    banListFailOpen: bool("BAN_LIST_FAIL_OPEN"),
    ipRateLimiter,
    userRateLimiter,
  });
  return problems.length > 0
    ? { ok: false, problems: Object.freeze(problems) }
    : { ok: true, config, warnings: Object.freeze(warnings) };
}

/** The variables that describe the single provider; IDENTITY_PROVIDERS excludes them. */
const SINGLE_PROVIDER_VARIABLES = [
  "JWT_ISSUER", "JWKS_URL", "JWT_AUDIENCE", "JWT_NO_AUDIENCE", "JWT_ALGORITHMS", "CLIENT_ID_CLAIM", "ROLES_CLAIM",
] as const;
