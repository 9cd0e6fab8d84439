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
  isTemplate,
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
  const read = envReader(env);
  const ablyKey = ablyKeyOf(read);
  const capabilities = capabilitiesOf(read);
  const clockToleranceSeconds = read.int(
    "JWT_CLOCK_TOLERANCE_SECONDS",
    DEFAULT_CLOCK_TOLERANCE_SECONDS,
    0,
    MAX_CLOCK_TOLERANCE_SECONDS,
  );
  const { providers, identityHeader } = parseProviders({
    env,
    problems: read.problems,
    clockToleranceSeconds,
    bannedRolePattern: bannedRolePatternOf(read),
    capability: read.capability,
    roleCapabilities: read.roleCapabilities,
  });
  checkTemplates(read, capabilities, providers);
  // Problems are listed in the order these run.
  const allowedOrigins = allowedOriginsOf(read);
  const tokens = tokensOf(read);
  const admin = adminOf(read, clockToleranceSeconds);
  const rateLimiters = rateLimitersOf(read);
  const banList = banListOf(read);
  const config: Config = Object.freeze({
    providers: Object.freeze(providers),
    ablyKey,
    ...capabilities,
    ...tokens,
    allowedOrigins,
    identityCookie: read.str("IDENTITY_COOKIE"),
    identityHeader,
    ...banList,
    ...admin,
    ...rateLimiters,
  });
  return read.problems.length > 0
    ? { ok: false, problems: Object.freeze(read.problems) }
    : { ok: true, config, warnings: Object.freeze(read.warnings) };
}

/** Reads variables of `env`, collecting problems and warnings as it goes. */
type EnvReader = ReturnType<typeof envReader>;

function envReader(env: Record<string, unknown>) {
  const problems: string[] = [];
  const warnings: string[] = [];
  /** A string variable, trimmed; undefined when unset, empty or white space only. */
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
  /** A comma-separated list, entries trimmed, empty ones dropped. */
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
  /** A JSON-valued variable: text, or the object wrangler makes of a TOML table; undefined when unset. */
  const json = (name: string): unknown => (env[name] === "" ? undefined : env[name]);
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
  return { env, problems, warnings, str, list, int, bool, json, capability, roleCapabilities };
}

/** ABLY_API_KEY: `<appId>.<keyId>:<secret>`. */
function ablyKeyOf(read: EnvReader): AblyKey {
  const raw = read.str("ABLY_API_KEY");
  const match = raw?.match(/^([^.:\s]+\.[^.:\s]+):(\S+)$/);
  if (raw === undefined) {
    read.problems.push("ABLY_API_KEY is not set (wrangler secret put ABLY_API_KEY; .dev.vars locally)");
  } else if (!match) {
    read.problems.push("ABLY_API_KEY is not of the form <appId>.<keyId>:<secret>");
  }
  return Object.freeze({ keyName: match?.[1] ?? "", secret: match?.[2] ?? "" });
}

function capabilitiesOf(read: EnvReader): Pick<Config, "grant" | "keyCapability" | "roleCapabilities"> {
  const roles = read.json("ROLE_CAPABILITIES");
  return {
    grant: read.capability("ABLY_CAPABILITY", read.json("ABLY_CAPABILITY") ?? DEFAULT_CAPABILITY),
    keyCapability: read.capability("ABLY_KEY_CAPABILITY", read.json("ABLY_KEY_CAPABILITY") ?? DEFAULT_KEY_CAPABILITY),
    roleCapabilities: roles === undefined ? Object.freeze({}) : read.roleCapabilities("ROLE_CAPABILITIES", roles),
  };
}

function bannedRolePatternOf(read: EnvReader): RegExp {
  try {
    return new RegExp(read.str("BANNED_ROLE_PATTERN") ?? DEFAULT_BANNED_ROLE_PATTERN, "i");
  } catch {
    read.problems.push("BANNED_ROLE_PATTERN is not a valid regular expression");
    return new RegExp(DEFAULT_BANNED_ROLE_PATTERN, "i");
  }
}

/**
 * Every `{clientId}` template, the global grants' and every provider's, checked together: a whole
 * segment once; no user able to own a shared channel or another user's channels.
 */
function checkTemplates(
  read: EnvReader,
  { grant, keyCapability, roleCapabilities }: Pick<Config, "grant" | "keyCapability" | "roleCapabilities">,
  providers: readonly ProviderConfig[],
): void {
  const grants: Capability[] = [grant, ...Object.values(roleCapabilities)];
  for (const p of providers) grants.push(p.capability ?? {}, ...Object.values(p.roleCapabilities ?? {}));
  const templates = grants.flatMap((c) => Object.keys(c));
  for (const resource of new Set(templates)) {
    const fault = templateFault(resource);
    if (fault) read.problems.push(`a capability template ${fault}`);
  }
  const captured = templateCapture(templates);
  if (captured) {
    read.problems.push(
      `a user whose id fits ${JSON.stringify(captured[0])} could own the shared channel ${JSON.stringify(captured[1])}: begin them with different literal segments`,
    );
  }
  if (Object.keys(keyCapability).some(isTemplate)) {
    read.problems.push(
      "ABLY_KEY_CAPABILITY is the key's own capability, not a template: {clientId} there is never filled in",
    );
  }
  const clash = templateClash(templates);
  if (clash) {
    read.problems.push(
      `capability templates ${JSON.stringify(clash[0])} and ${JSON.stringify(clash[1])} could give two users the same channel: put {clientId} at the same segment in both, or begin them with different literal segments`,
    );
  }
}

function allowedOriginsOf(read: EnvReader): ReadonlySet<string> {
  const origins = read.list("ALLOWED_ORIGINS");
  for (const origin of origins) {
    if (!isOrigin(origin)) {
      read.problems.push(`ALLOWED_ORIGINS entries must be exact origins like https://app.example.com (no path, no *)`);
      break;
    }
    // Over plain http anyone on the network path could run script as that origin and spend cookies.
    if (!isSecureOrigin(origin)) {
      read.problems.push(
        `ALLOWED_ORIGINS may list http:// origins only on this machine (localhost, 127.0.0.1, [::1]): ${origin}`,
      );
    }
  }
  return new Set(origins);
}

/** The tokens issued, and revoking them. */
function tokensOf(
  read: EnvReader,
): Pick<Config, "tokenTtlSeconds" | "tokenExpiresWithIdentity" | "revocableTokens" | "ablyRestUrl" | "banRevocations"> {
  const revocableTokens = read.bool("ABLY_REVOCABLE_TOKENS");
  const maxTtl = revocableTokens ? ABLY_REVOCABLE_MAX_TTL_SECONDS : ABLY_MAX_TTL_SECONDS;
  const ablyRestUrl = (read.str("ABLY_REST_URL") ?? DEFAULT_ABLY_REST_URL).replace(/\/+$/, "");
  if (!isHttpUrl(ablyRestUrl)) read.problems.push("ABLY_REST_URL must be an http(s) URL");
  const banRevocations = read.env.BAN_REVOCATIONS as DurableObjectNamespace<BanRevocations> | undefined;
  if (revocableTokens && typeof banRevocations?.idFromName !== "function") {
    read.problems.push("ABLY_REVOCABLE_TOKENS needs the Durable Object binding BAN_REVOCATIONS (see wrangler.toml)");
  }
  return {
    tokenTtlSeconds: read.int("ABLY_TOKEN_TTL_SECONDS", DEFAULT_TOKEN_TTL_SECONDS, 1, maxTtl),
    tokenExpiresWithIdentity: read.bool("TOKEN_EXPIRES_WITH_IDENTITY"),
    revocableTokens,
    ablyRestUrl,
    banRevocations,
  };
}

function banListOf(
  read: EnvReader,
): Pick<Config, "bans" | "banCacheTtlSeconds" | "banPropagationSeconds" | "banListFailOpen"> {
  const bans = read.env.BANS as KVNamespace | undefined;
  if (!bans || typeof bans.get !== "function") read.problems.push("KV namespace binding BANS is missing");
  const banCacheTtlSeconds = read.int(
    "BAN_CACHE_TTL_SECONDS",
    DEFAULT_BAN_CACHE_TTL_SECONDS,
    MIN_BAN_CACHE_TTL_SECONDS,
    ABLY_MAX_TTL_SECONDS,
  );
  const leastPropagation = KV_PROPAGATION_SECONDS + banCacheTtlSeconds;
  const banPropagationSeconds = read.int(
    "BAN_PROPAGATION_SECONDS",
    leastPropagation + BAN_PROPAGATION_MARGIN_SECONDS,
    1,
    ABLY_MAX_TTL_SECONDS,
  );
  if (banPropagationSeconds < leastPropagation) {
    read.warnings.push(
      `BAN_PROPAGATION_SECONDS is under KV's ${KV_PROPAGATION_SECONDS} s plus BAN_CACHE_TTL_SECONDS: a location may still issue tokens after a ban's last revocation`,
    );
  }
  return {
    bans: bans as KVNamespace,
    banCacheTtlSeconds,
    banPropagationSeconds,
    banListFailOpen: read.bool("BAN_LIST_FAIL_OPEN"),
  };
}

/** The admin API: on with ADMIN_TOKEN or Cloudflare Access, and then it needs its index. */
function adminOf(read: EnvReader, clockToleranceSeconds: number): Pick<Config, "adminToken" | "access" | "banIndex"> {
  const adminToken = read.str("ADMIN_TOKEN");
  if (adminToken !== undefined && adminToken.length < MIN_ADMIN_TOKEN_CHARS) {
    read.problems.push(`ADMIN_TOKEN must be at least ${MIN_ADMIN_TOKEN_CHARS} characters (openssl rand -hex 32)`);
  }
  const access = parseAccess(
    read.str("ACCESS_TEAM_DOMAIN"),
    read.str("ACCESS_AUD"),
    read.list("MODERATORS"),
    clockToleranceSeconds,
    read.problems,
  );
  const banIndex = read.env.BAN_INDEX as DurableObjectNamespace<BanIndex> | undefined;
  if (isAdminOn({ adminToken, access }) && typeof banIndex?.idFromName !== "function") {
    read.problems.push("the admin API needs the Durable Object binding BAN_INDEX (see wrangler.toml)");
  }
  return { adminToken, access, banIndex: banIndex as DurableObjectNamespace<BanIndex> };
}

/**
 * Whether the admin API and its console are on: ADMIN_TOKEN or Cloudflare Access is configured.
 * A declaration, hoisted: the startup parse above runs before this module's constants exist.
 */
export function isAdminOn(config: Pick<Config, "adminToken" | "access">): boolean {
  return config.adminToken !== undefined || config.access !== undefined;
}

/** The rate limiting bindings; one that is missing is off, with a warning. */
function rateLimitersOf(read: EnvReader): Pick<Config, "ipRateLimiter" | "userRateLimiter"> {
  const limiter = (name: string, what: string) => {
    const binding = read.env[name] as RateLimiter | undefined;
    if (binding && typeof binding.limit === "function") return binding;
    read.warnings.push(`rate limiting per ${what} is off (no ${name} binding)`);
    return undefined;
  };
  return { ipRateLimiter: limiter("IP_RATE_LIMITER", "IP"), userRateLimiter: limiter("USER_RATE_LIMITER", "user") };
}
