/**
 * Presets: what the major identity providers' tokens look like, as IDENTITY_PROVIDERS entries.
 * A preset turns a few facts (a domain, a project id) into one or more entries of the generic shape
 * that providers.ts checks (one per issuer spelling); any generic field given beside the preset
 * overrides what the preset sets. The facts come from each provider's documentation of its
 * tokens; the README has a copy-paste configuration for each.
 */

/** One IDENTITY_PROVIDERS entry as written in wrangler.toml, before validation. */
export type RawProvider = Readonly<Record<string, unknown>>;

/** Clerk's `cat` header value of a session token; a JWT-template or M2M token, signed by the same key, has another. */
const CLERK_SESSION_CATEGORY = "cl_B7d4PD111AAA";

interface Preset {
  /** The preset's own facts, each a required non-empty string unless listed in `optional`. */
  readonly params: readonly string[];
  readonly optional?: readonly string[];
  /** Generic entries, from the checked facts and the whole entry (for fields it depends on). */
  readonly expand: (facts: Readonly<Record<string, string>>, entry: RawProvider) => RawProvider[];
}

/** A bare host name, optionally with a port: no scheme, path or credentials to confuse a URL. */
const HOST = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:\d{1,5})?$/i;

const PRESETS: Readonly<Record<string, Preset>> = {
  // Access tokens for your API (requested with `audience`); iss keeps Auth0's trailing slash.
  auth0: {
    params: ["domain"],
    expand: ({ domain }) => [{
      name: "auth0",
      issuer: `https://${domain}/`,
      jwksUrl: `https://${domain}/.well-known/jwks.json`,
      algorithms: ["RS256"],
    }],
  },
  // Session tokens: no aud; `azp` is the page's origin (checked when present, as Clerk's SDK does);
  // the `cat` header, required, tells a session token from a JWT-template or M2M token signed by the same key.
  clerk: {
    params: ["frontendApi"],
    expand: ({ frontendApi }, entry) => [{
      name: "clerk",
      issuer: `https://${frontendApi}`,
      jwksUrl: `https://${frontendApi}/.well-known/jwks.json`,
      algorithms: ["RS256"],
      noAudience: entry.audience === undefined,
      claimsIfPresent: { azp: entry.authorizedParties },
      requireHeaders: { cat: [CLERK_SESSION_CATEGORY] },
    }],
  },
  // ID tokens (user.getIdToken()): aud is the project id.
  firebase: {
    params: ["projectId"],
    expand: ({ projectId }) => [{
      name: "firebase",
      issuer: `https://securetoken.google.com/${projectId}`,
      jwksUrl: "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
      algorithms: ["RS256"],
      audience: projectId,
    }],
  },
  // Access tokens: asymmetric signing keys through the JWKS; the legacy HS256 secret only when
  // `secretBinding` names it. aud `authenticated` leaves out anon and service_role keys.
  supabase: {
    params: ["projectRef"],
    expand: ({ projectRef }, entry) => {
      const issuer = `https://${projectRef}.supabase.co/auth/v1`;
      return [{
        name: "supabase",
        issuer,
        jwksUrl: `${issuer}/.well-known/jwks.json`,
        algorithms: ["ES256", "RS256", ...(entry.secretBinding === undefined ? [] : ["HS256"])],
        audience: "authenticated",
        rolesClaim: "app_metadata.roles",
      }];
    },
  },
  // Access tokens by default (`tokenUse: "id"` for ID tokens): both are signed by the pool's keys,
  // `token_use` tells them apart. Both issuer formats (original, and the "updated" one a pool may
  // switch to) are accepted, each with its own JWKS.
  cognito: {
    params: ["region", "userPoolId", "clientId"],
    optional: ["tokenUse"],
    expand: ({ region, userPoolId, clientId, tokenUse = "access" }) =>
      ["cognito-idp", "issuer-cognito-idp"].map((host) => {
        const issuer = `https://${host}.${region}.amazonaws.com/${userPoolId}`;
        const kind = tokenUse === "id"
          ? { audience: clientId, requireClaims: { token_use: "id" } }
          : { noAudience: true, requireClaims: { token_use: tokenUse, client_id: clientId } };
        return { name: `cognito (${host})`, issuer, jwksUrl: `${issuer}/.well-known/jwks.json`, algorithms: ["RS256"], rolesClaim: "cognito:groups", ...kind };
      }),
  },
  // Access tokens for your own API (delegated: with `scp`). v2 and v1 tokens (the version follows the API's manifest, not
  // the endpoint), each checked against its own issuer and `ver`; clientId is `oid`, stable per tenant.
  entra: {
    params: ["tenantId"],
    expand: ({ tenantId }) => [
      { version: "2.0", issuer: `https://login.microsoftonline.com/${tenantId}/v2.0`, keys: "discovery/v2.0/keys" },
      { version: "1.0", issuer: `https://sts.windows.net/${tenantId}/`, keys: "discovery/keys" },
    ].map(({ version, issuer, keys }) => ({
      name: `entra (v${version})`,
      issuer,
      jwksUrl: `https://login.microsoftonline.com/${tenantId}/${keys}`,
      algorithms: ["RS256"],
      clientIdClaim: "oid",
      rolesClaim: "roles",
      // `scp` (delegated scopes) is in every access token a user's app gets, never in an ID token,
      // which the same keys sign with the same aud when the SPA and the API share a registration.
      requireClaims: { ver: version, tid: tenantId, scp: true },
    })),
  },
  // Access tokens (payload `typ: Bearer`; ID and refresh tokens say `ID` and `Refresh`).
  keycloak: {
    params: ["url", "realm"],
    expand: ({ url, realm }) => {
      const issuer = `${url!.replace(/\/+$/, "")}/realms/${realm}`;
      return [{
        name: "keycloak",
        issuer,
        jwksUrl: `${issuer}/protocol/openid-connect/certs`,
        algorithms: ["RS256"],
        rolesClaim: "realm_access.roles",
        requireClaims: { typ: "Bearer" },
      }];
    },
  },
  // Sign-In ID tokens: both issuer spellings Google uses; `hostedDomain` pins a Workspace domain (`hd`).
  google: {
    params: [],
    optional: ["hostedDomain"],
    expand: ({ hostedDomain }) =>
      ["https://accounts.google.com", "accounts.google.com"].map((issuer) => ({
        name: "google",
        issuer,
        jwksUrl: "https://www.googleapis.com/oauth2/v3/certs",
        algorithms: ["RS256"],
        ...(hostedDomain === undefined ? {} : { requireClaims: { hd: hostedDomain } }),
      })),
  },
  // Application tokens, sent by Cloudflare's edge in Cf-Access-Jwt-Assertion; `type: org` (the
  // global session token) is refused. aud is your application's AUD tag. No discovery.
  "cloudflare-access": {
    params: ["team"],
    expand: ({ team }) => {
      const issuer = `https://${team}.cloudflareaccess.com`;
      return [{
        name: "cloudflare-access",
        issuer,
        jwksUrl: `${issuer}/cdn-cgi/access/certs`,
        algorithms: ["RS256"],
        requireClaims: { type: "app" },
        tokenHeader: "Cf-Access-Jwt-Assertion",
      }];
    },
  },
  // GoTrue access tokens: no iss, HS256. A hosted site's tokens are checked by its own Identity
  // endpoint (`site`); a self-hosted GoTrue's by its secret (`secretBinding`).
  netlify: {
    params: [],
    optional: ["site"],
    expand: ({ site }, entry) => [{
      name: "netlify",
      issuer: null,
      algorithms: ["HS256"],
      noAudience: entry.audience === undefined,
      rolesClaim: "app_metadata.roles",
      ...(site === undefined ? {} : { netlifySite: site }),
    }],
  },
};

/** Preset facts whose values are not plain names: checked here, the rest by `HOST` or as names. */
const FACT_SHAPES: Readonly<Record<string, RegExp>> = {
  domain: HOST,
  frontendApi: HOST,
  url: /^https?:\/\/[^/?#\s]+(\/[^?#\s]*)?$/,
  site: /^https:\/\/[^/?#\s]+$/,
  tokenUse: /^(access|id)$/,
};

/** Fields a preset consumes (its facts) and never passes on as generic fields. */
const presetFacts = (name: string): readonly string[] => {
  const preset = PRESETS[name];
  return preset ? [...preset.params, ...(preset.optional ?? [])] : [];
};

/**
 * The generic entries `entry` stands for: itself without a `preset`, else the preset's expansion
 * with the entry's other fields over it. Problems are reported through `problem`, naming `where`.
 */
export function expandPreset(entry: RawProvider, where: string, problem: (message: string) => void): RawProvider[] {
  if (entry.preset === undefined) return [entry];
  const name = typeof entry.preset === "string" ? entry.preset : "";
  const preset = Object.hasOwn(PRESETS, name) ? PRESETS[name]! : undefined;
  if (!preset) {
    problem(`${where}: preset must be one of ${Object.keys(PRESETS).join(", ")}`);
    return [];
  }
  const facts: Record<string, string> = {};
  let ok = true;
  for (const param of [...preset.params, ...(preset.optional ?? [])]) {
    const value = entry[param];
    if (value === undefined && preset.optional?.includes(param)) continue;
    const shape = FACT_SHAPES[param] ?? /^[A-Za-z0-9._-]+$/;
    if (typeof value !== "string" || !shape.test(value)) {
      problem(`${where}: the ${name} preset needs ${param} (${param === "domain" || param === "frontendApi" ? "a host name, no https://" : "see the README"})`);
      ok = false;
    } else {
      facts[param] = value;
    }
  }
  if (name === "clerk" && !isStringList(entry.authorizedParties)) {
    problem(`${where}: the clerk preset needs authorizedParties (your app's origins, a list)`);
    ok = false;
  }
  if (name === "netlify" && (entry.site === undefined) === (entry.secretBinding === undefined)) {
    problem(`${where}: the netlify preset needs site (hosted) or secretBinding (self-hosted GoTrue), not both`);
    ok = false;
  }
  if (!ok) return [];
  const rest = Object.fromEntries(
    Object.entries(entry).filter(([field]) => field !== "preset" && field !== "authorizedParties" && !presetFacts(name).includes(field)),
  );
  return preset.expand(facts, entry).map((expanded) => ({ ...expanded, ...rest }));
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.length > 0 && value.every((item) => typeof item === "string" && item !== "");
}
