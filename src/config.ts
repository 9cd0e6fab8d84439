/**
 * The worker's configuration: read from the environment once per isolate (the isolate's own at
 * startup), validated, frozen. Nothing else in the worker reads `env` strings. Every problem is
 * reported together.
 *
 * Identity providers are parsed by providers.ts: the single-provider variables (JWT_ISSUER,
 * JWKS_URL, ...) as a shorthand for one entry, IDENTITY_PROVIDERS as a list of entries or presets.
 */
import { env as isolateEnv } from "cloudflare:workers";
import {
  type Capability,
  CapabilityError,
  parseCapability,
  templateCapture,
  templateClash,
  templateFault,
} from "./ably/capability";
import { parseProviders, type ProviderConfig } from "./identity/providers";
import { isHttpUrl, isOrigin, isPlainObject, isSecureOrigin, jsonOrUndefined } from "./validate";
import type { RateLimiter } from "./request/rate-limit";
import type { BanRevocations } from "./bans/ban-revocations";
import type { BanIndex } from "./bans/ban-index";
import { type AccessConfig, parseAccess } from "./bans/moderator";
import {
  ABLY_MAX_TTL_SECONDS,
  ABLY_REVOCABLE_MAX_TTL_SECONDS,
  BAN_PROPAGATION_MARGIN_SECONDS,
  DEFAULT_ABLY_REST_URL,
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
const DEFAULT_CAPABILITY = '{"private:{clientId}":["history","presence","publish","subscribe"]}';

/** What an Ably API key may grant when ABLY_KEY_CAPABILITY is unset: everything (a key's default). */
const DEFAULT_KEY_CAPABILITY = '{"*":["*"]}';

/** Roles that ban, as in the Netlify Identity function this project grew from: any role starting with "banned". */
const DEFAULT_BANNED_ROLE_PATTERN = "^banned";

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
  /** The admin API's bearer token (ADMIN_TOKEN, a secret). Default none; with no Cloudflare Access either, the admin API is off (404). */
  readonly adminToken: string | undefined;
  /** Cloudflare Access in front of the admin API (ACCESS_TEAM_DOMAIN, ACCESS_AUD, MODERATORS). Default none: off. */
  readonly access: AccessConfig | undefined;
  /** Whether the admin API and its console are on: ADMIN_TOKEN or Cloudflare Access is configured. */
  readonly adminOn: boolean;
  /** The bans newest first (Durable Object binding BAN_INDEX); required with the admin API. */
  readonly banIndex: DurableObjectNamespace<BanIndex>;
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

/**
 * The isolate's own environment, parsed at startup (no I/O) so that its first request finds the
 * work done. A parse that throws is left to that request, which answers it as before.
 */
const startup = (() => {
  const env = isolateEnv as unknown as Record<string, unknown>;
  try {
    return { env, result: parseConfig(env) };
  } catch {
    return undefined;
  }
})();

/**
 * The configuration for this environment, parsed on first use and then reused by the isolate. A
 * handler's `env` is another object than the isolate's, with the same bindings: matched entry by
 * entry, it takes the startup parse; any other environment (a test's) is parsed for itself.
 */
export function loadConfig(env: object): ConfigResult {
  let result = cache.get(env);
  if (!result) {
    const vars = env as Record<string, unknown>;
    result = startup && sameEntries(vars, startup.env) ? startup.result : parseConfig(vars);
    cache.set(env, result);
  }
  return result;
}

/** Whether two environments hold the same names, each bound to the very same value. */
function sameEntries(a: Record<string, unknown>, b: Record<string, unknown>): boolean {
  const names = Object.keys(a);
  return names.length === Object.keys(b).length && names.every((name) => a[name] === b[name]);
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
    // White space alone is unset too: a blank ACCESS_AUD must read as missing, not as an audience.
    return value.trim() || undefined;
  };
  const list = (name: string): string[] =>
    (str(name) ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
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
    return Object.freeze(
      Object.fromEntries(
        Object.entries(roles).map(([role, cap]) => [role, capability(`${where} (role ${role})`, cap)]),
      ),
    );
  };
  /** A JSON-valued variable: text, or the object wrangler makes of a TOML table; undefined when unset. */
  const jsonVar = (name: string): unknown => (env[name] === "" ? undefined : env[name]);
  const grant = capability("ABLY_CAPABILITY", jsonVar("ABLY_CAPABILITY") ?? DEFAULT_CAPABILITY);
  const keyCapability = capability("ABLY_KEY_CAPABILITY", jsonVar("ABLY_KEY_CAPABILITY") ?? DEFAULT_KEY_CAPABILITY);
  const rawRoleCapabilities = jsonVar("ROLE_CAPABILITIES");
  const globalRoleCapabilities: Readonly<Record<string, Capability>> =
    rawRoleCapabilities === undefined ? Object.freeze({}) : roleCapabilities("ROLE_CAPABILITIES", rawRoleCapabilities);
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

  const { providers, identityHeader } = parseProviders({
    env,
    problems,
    clockToleranceSeconds,
    bannedRolePattern,
    capability,
    roleCapabilities,
  });

  const grants: Capability[] = [grant, ...Object.values(globalRoleCapabilities)];
  for (const p of providers) grants.push(p.capability ?? {}, ...Object.values(p.roleCapabilities ?? {}));
  const templates = grants.flatMap((c) => Object.keys(c));
  for (const resource of new Set(templates)) {
    const fault = templateFault(resource);
    if (fault) problems.push(`a capability template ${fault}`);
  }
  const captured = templateCapture(templates);
  if (captured) {
    problems.push(
      `a user whose id fits ${JSON.stringify(captured[0])} could own the shared channel ${JSON.stringify(captured[1])}: begin them with different literal segments`,
    );
  }
  if (Object.keys(keyCapability).some((resource) => resource.includes("{clientId}"))) {
    problems.push(
      "ABLY_KEY_CAPABILITY is the key's own capability, not a template: {clientId} there is never filled in",
    );
  }
  const clash = templateClash(templates);
  if (clash) {
    problems.push(
      `capability templates ${JSON.stringify(clash[0])} and ${JSON.stringify(clash[1])} could give two users the same channel: put {clientId} at the same segment in both, or begin them with different literal segments`,
    );
  }

  const allowedOrigins = list("ALLOWED_ORIGINS");
  for (const origin of allowedOrigins) {
    if (!isOrigin(origin)) {
      problems.push(`ALLOWED_ORIGINS entries must be exact origins like https://app.example.com (no path, no *)`);
      break;
    }
    // Over plain http anyone on the network path could run script as that origin and spend cookies.
    if (!isSecureOrigin(origin)) {
      problems.push(
        `ALLOWED_ORIGINS may list http:// origins only on this machine (localhost, 127.0.0.1, [::1]): ${origin}`,
      );
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

  const access = parseAccess(
    str("ACCESS_TEAM_DOMAIN"),
    str("ACCESS_AUD"),
    list("MODERATORS"),
    clockToleranceSeconds,
    problems,
  );
  const banIndex = env.BAN_INDEX as DurableObjectNamespace<BanIndex> | undefined;
  const adminOn = adminToken !== undefined || access !== undefined;
  if (adminOn && typeof banIndex?.idFromName !== "function") {
    problems.push("the admin API needs the Durable Object binding BAN_INDEX (see wrangler.toml)");
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
    adminToken,
    access,
    adminOn,
    banIndex: banIndex as DurableObjectNamespace<BanIndex>,
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
