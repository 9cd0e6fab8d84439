/**
 * Presets: what the major identity providers' tokens look like, as IDENTITY_PROVIDERS entries.
 * A preset turns a few facts (a domain, a project id) into one or more entries of the generic shape
 * that providers.ts checks (one per issuer spelling); any generic field given beside the preset
 * overrides what the preset sets. The facts come from each provider's documentation of its
 * tokens; docs/providers.md has a copy-paste configuration for each.
 */

/** One IDENTITY_PROVIDERS entry as written in wrangler.toml, before validation. */
export type RawProvider = Readonly<Record<string, unknown>>;

/**
 * Cloudflare Access's application tokens (Cloudflare's "Validate JWTs"), for the preset and for the
 * admin API's moderators (bans/moderator.ts): the header Access adds them in, where a team
 * publishes its keys, their algorithm, and the claim that sets them apart from Access's global
 * session token (`type: org`, meant for no application).
 */
export const CLOUDFLARE_ACCESS = Object.freeze({
  header: "Cf-Access-Jwt-Assertion",
  certsPath: "/cdn-cgi/access/certs",
  algorithm: "RS256",
  claims: Object.freeze({ type: "app" }),
});

/** Clerk's `cat` header value of a session token; a JWT-template or M2M token, signed by the same key, has another. */
const CLERK_SESSION_CATEGORY = "cl_B7d4PD111AAA";

/** A preset's fact: what it must look like, and how a problem describes it. */
interface Fact {
  readonly shape: RegExp;
  /** Shown when the fact is missing or malformed: `the auth0 preset needs domain (a host name, no https://)`. */
  readonly hint: string;
  readonly optional?: true;
  /** A non-empty list of such values rather than one. */
  readonly list?: true;
}

interface Preset {
  /** The facts it takes; the entry's other fields are generic ones, laid over its expansion. */
  readonly facts: Readonly<Record<string, Fact>>;
  /** Groups of fields (facts or generic) of which exactly one must be given. */
  readonly exactlyOne?: readonly (readonly string[])[];
  /** Generic entries, from the checked facts (list facts apart) and the whole entry (for fields it depends on). */
  readonly expand: (
    facts: Readonly<Record<string, string>>,
    entry: RawProvider,
    lists: Readonly<Record<string, readonly string[]>>,
  ) => RawProvider[];
}

/** A bare host name, optionally with a port: no scheme, path or credentials to confuse a URL. */
const HOST: Fact = {
  shape: /^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+(:\d{1,5})?$/i,
  hint: "a host name, no https://",
};
/** An identifier a provider gives you (region, pool, tenant, project, realm, client id). */
const NAME: Fact = { shape: /^[A-Za-z0-9._-]+$/, hint: "letters, digits, dots, dashes and underscores" };
const ORIGIN = /^https?:\/\/[^/?#\s]+$/;

const PRESETS: Readonly<Record<string, Preset>> = {
  // Access tokens for your API (requested with `audience`); iss keeps Auth0's trailing slash.
  auth0: {
    facts: { domain: HOST },
    expand: ({ domain }) => [
      {
        name: "auth0",
        issuer: `https://${domain}/`,
        jwksUrl: `https://${domain}/.well-known/jwks.json`,
        algorithms: ["RS256"],
      },
    ],
  },
  // Session tokens: no aud; `azp` is the page's origin (checked when present, as Clerk's SDK does);
  // the `cat` header, required, tells a session token from a JWT-template or M2M token signed by the same key.
  clerk: {
    facts: { frontendApi: HOST, authorizedParties: { shape: ORIGIN, hint: "your app's origins, a list", list: true } },
    expand: ({ frontendApi }, entry, { authorizedParties }) => [
      {
        name: "clerk",
        issuer: `https://${frontendApi}`,
        jwksUrl: `https://${frontendApi}/.well-known/jwks.json`,
        algorithms: ["RS256"],
        noAudience: entry.audience === undefined,
        claimsIfPresent: { azp: authorizedParties },
        requireHeaders: { cat: [CLERK_SESSION_CATEGORY] },
      },
    ],
  },
  // ID tokens (user.getIdToken()): aud is the project id.
  firebase: {
    facts: { projectId: NAME },
    expand: ({ projectId }) => [
      {
        name: "firebase",
        issuer: `https://securetoken.google.com/${projectId}`,
        jwksUrl: "https://www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com",
        algorithms: ["RS256"],
        audience: projectId,
      },
    ],
  },
  // Access tokens: asymmetric signing keys through the JWKS; the legacy HS256 secret only when
  // `secretBinding` names it. aud `authenticated` leaves out anon and service_role keys.
  supabase: {
    facts: { projectRef: NAME },
    expand: ({ projectRef }, entry) => {
      const issuer = `https://${projectRef}.supabase.co/auth/v1`;
      return [
        {
          name: "supabase",
          issuer,
          jwksUrl: `${issuer}/.well-known/jwks.json`,
          algorithms: ["ES256", "RS256", ...(entry.secretBinding === undefined ? [] : ["HS256"])],
          audience: "authenticated",
          rolesClaim: "app_metadata.roles",
        },
      ];
    },
  },
  // Access tokens by default (`tokenUse: "id"` for ID tokens): both are signed by the pool's keys,
  // `token_use` tells them apart. Both issuer formats (original, and the "updated" one a pool may
  // switch to) are accepted, each with its own JWKS.
  cognito: {
    facts: {
      region: NAME,
      userPoolId: NAME,
      clientId: NAME,
      tokenUse: { shape: /^(access|id)$/, hint: "access or id", optional: true },
    },
    expand: ({ region, userPoolId, clientId, tokenUse = "access" }) =>
      ["cognito-idp", "issuer-cognito-idp"].map((host) => {
        const issuer = `https://${host}.${region}.amazonaws.com/${userPoolId}`;
        const kind =
          tokenUse === "id"
            ? { audience: clientId, requireClaims: { token_use: "id" } }
            : { noAudience: true, requireClaims: { token_use: tokenUse, client_id: clientId } };
        return {
          name: `cognito (${host})`,
          issuer,
          jwksUrl: `${issuer}/.well-known/jwks.json`,
          algorithms: ["RS256"],
          rolesClaim: "cognito:groups",
          ...kind,
        };
      }),
  },
  // Access tokens for your own API (delegated: with `scp`). v2 and v1 tokens (the version follows the API's manifest, not
  // the endpoint), each checked against its own issuer and `ver`; clientId is `oid`, stable per tenant.
  entra: {
    facts: { tenantId: NAME },
    expand: ({ tenantId }) =>
      [
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
    facts: {
      url: { shape: /^https?:\/\/[^/?#\s]+(\/[^?#\s]*)?$/, hint: "the server's URL, e.g. https://kc.example.com" },
      realm: NAME,
    },
    expand: ({ url, realm }) => {
      const issuer = `${url!.replace(/\/+$/, "")}/realms/${realm}`;
      return [
        {
          name: "keycloak",
          issuer,
          jwksUrl: `${issuer}/protocol/openid-connect/certs`,
          algorithms: ["RS256"],
          rolesClaim: "realm_access.roles",
          requireClaims: { typ: "Bearer" },
        },
      ];
    },
  },
  // Sign-In ID tokens: both issuer spellings Google uses; `hostedDomain` pins a Workspace domain (`hd`).
  google: {
    facts: { hostedDomain: { ...HOST, hint: "your Workspace domain", optional: true } },
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
    facts: { team: NAME },
    expand: ({ team }) => {
      const issuer = `https://${team}.cloudflareaccess.com`;
      return [
        {
          name: "cloudflare-access",
          issuer,
          jwksUrl: `${issuer}${CLOUDFLARE_ACCESS.certsPath}`,
          algorithms: [CLOUDFLARE_ACCESS.algorithm],
          requireClaims: CLOUDFLARE_ACCESS.claims,
          tokenHeader: CLOUDFLARE_ACCESS.header,
        },
      ];
    },
  },
  // GoTrue access tokens: no iss, HS256. A hosted site's tokens are checked by its own Identity
  // endpoint (`site`); a self-hosted GoTrue's by its secret (`secretBinding`).
  netlify: {
    facts: { site: { shape: /^https:\/\/[^/?#\s]+$/, hint: "the site's https origin", optional: true } },
    exactlyOne: [["site", "secretBinding"]],
    expand: ({ site }, entry) => [
      {
        name: "netlify",
        issuer: null,
        algorithms: ["HS256"],
        noAudience: entry.audience === undefined,
        rolesClaim: "app_metadata.roles",
        ...(site === undefined ? {} : { netlifySite: site }),
      },
    ],
  },
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
  const lists: Record<string, readonly string[]> = {};
  let ok = true;
  for (const [param, fact] of Object.entries(preset.facts)) {
    const value = entry[param];
    if (value === undefined && fact.optional) continue;
    const values = fact.list ? value : [value];
    if (
      !Array.isArray(values) ||
      values.length === 0 ||
      !values.every((v) => typeof v === "string" && fact.shape.test(v))
    ) {
      problem(`${where}: the ${name} preset needs ${param} (${fact.hint})`);
      ok = false;
    } else {
      if (fact.list) lists[param] = values as string[];
      else facts[param] = value as string;
    }
  }
  for (const group of preset.exactlyOne ?? []) {
    if (group.filter((field) => entry[field] !== undefined).length !== 1) {
      problem(`${where}: the ${name} preset needs exactly one of ${group.join(", ")}`);
      ok = false;
    }
  }
  if (!ok) return [];
  const rest = Object.fromEntries(
    Object.entries(entry).filter(([field]) => field !== "preset" && !Object.hasOwn(preset.facts, field)),
  );
  return preset.expand(facts, entry, lists).map((expanded) => ({ ...expanded, ...rest }));
}
