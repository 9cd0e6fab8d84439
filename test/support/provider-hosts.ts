/**
 * Stand-ins for the identity providers of the presets, at the real providers' own JWKS URLs
 * (the worker suite's outbound fetches never reach the network: Miniflare hands every one to
 * `handle`). One key pair per provider, generated at start-up; Auth0's and Clerk's keys share a
 * `kid`, so a token of one signed with the other's key must be refused. Netlify's Identity
 * endpoint checks HS256 tokens with a secret only it and the tests know, as a hosted site does.
 * GET https://providers.test/__fetches reports fetch counts by host and path.
 */
import { type JWK, jwtVerify } from "jose";
import { keyPair } from "./keys.ts";

/** The facts every preset test uses: made-up tenants in each provider's documented shapes. */
export const FACTS = {
  auth0Domain: "my-domain.auth0.com",
  clerkFrontendApi: "clerk.example.com",
  firebaseProject: "my-project",
  supabaseRef: "abcdefghijklmnopqrst",
  cognitoRegion: "us-west-2",
  cognitoPool: "us-west-2_example",
  cognitoClient: "57cbishk4j24pabc1234567890",
  entraTenant: "72f988bf-86f1-41af-91ab-2d7cd011db47",
  keycloakUrl: "https://kc.example.com",
  keycloakRealm: "myrealm",
  cloudflareTeam: "yourteam",
  netlifySite: "https://example.netlify.app",
  /** A Netlify site whose Identity endpoint is down (500). */
  netlifyDownSite: "https://down-site.netlify.app",
} as const;

const { cognitoRegion: region, cognitoPool: pool, entraTenant: tid } = FACTS;
const COGNITO_JWKS = [
  `cognito-idp.${region}.amazonaws.com/${pool}/.well-known/jwks.json`,
  `issuer-cognito-idp.${region}.amazonaws.com/${pool}/.well-known/jwks.json`,
];

/**
 * The providers with a JWKS here, one row each: its signing key's algorithm and `kid`, and every
 * host and path (the provider's documented URLs) whose JWKS holds that key. A Cognito pool signs ID
 * and access tokens with different keys, both in its JWKS.
 */
const PROVIDERS = {
  auth0: { alg: "RS256", kid: "shared-kid", jwks: [`${FACTS.auth0Domain}/.well-known/jwks.json`] },
  clerk: { alg: "RS256", kid: "shared-kid", jwks: [`${FACTS.clerkFrontendApi}/.well-known/jwks.json`] },
  firebase: {
    alg: "RS256",
    kid: "a5b2f9c1e0d87e3f6c4b2a19d8e7f6c5b4a3d2e1",
    jwks: ["www.googleapis.com/service_accounts/v1/jwk/securetoken@system.gserviceaccount.com"],
  },
  supabase: {
    alg: "ES256",
    kid: "3a18cfe2-7226-43b0-bbb4-7c5242f2406e",
    jwks: [`${FACTS.supabaseRef}.supabase.co/auth/v1/.well-known/jwks.json`],
  },
  cognito: { alg: "RS256", kid: "1234example=", jwks: COGNITO_JWKS },
  cognitoId: { alg: "RS256", kid: "5678example=", jwks: COGNITO_JWKS },
  entra: {
    alg: "RS256",
    kid: "i6lGk3FZzxRcUb2C3nEQ7syHJlY",
    jwks: [`login.microsoftonline.com/${tid}/discovery/v2.0/keys`, `login.microsoftonline.com/${tid}/discovery/keys`],
  },
  keycloak: {
    alg: "RS256",
    kid: "FJ86GcF3jTbNLOco4NvZkUCIUmfYCqoqtOQeMfbhNlE",
    jwks: [`kc.example.com/realms/${FACTS.keycloakRealm}/protocol/openid-connect/certs`],
  },
  google: {
    alg: "RS256",
    kid: "08d3245c62f86b6362afcbbffe1d069826dd1dc1",
    jwks: ["www.googleapis.com/oauth2/v3/certs"],
  },
  cloudflare: {
    alg: "RS256",
    kid: "9338abe1baf2fe492f646a736f25afbf7b025e35c627be4f60c414d4c73069b8",
    jwks: [`${FACTS.cloudflareTeam}.cloudflareaccess.com/cdn-cgi/access/certs`],
  },
} as const satisfies Record<string, { alg: "RS256" | "ES256"; kid: string; jwks: readonly string[] }>;
export type Keyed = keyof typeof PROVIDERS;
const KEYED = Object.keys(PROVIDERS) as Keyed[];

export interface ProviderKeys {
  /** Private JWKs by provider. */
  readonly keys: Record<Keyed, JWK>;
  /** The HS256 secret the hosted Netlify site signs with (the worker never sees it). */
  readonly netlifySecret: string;
}

export async function providerHosts() {
  const pairs = Object.fromEntries(
    await Promise.all(
      KEYED.map(async (name) => [name, await keyPair(PROVIDERS[name].alg, PROVIDERS[name].kid)] as const),
    ),
  ) as Record<Keyed, Awaited<ReturnType<typeof keyPair>>>;
  const netlifySecret = `netlify-hosted-secret-${crypto.randomUUID()}`;

  /** JWKS by host and path. */
  const served: Record<string, { keys: JWK[] }> = {};
  for (const name of KEYED) {
    for (const where of PROVIDERS[name].jwks) (served[where] ??= { keys: [] }).keys.push(pairs[name].pub);
  }
  const hosts = new Set([
    ...Object.keys(served).map((where) => where.split("/")[0]!),
    "example.netlify.app",
    "down-site.netlify.app",
    "providers.test",
  ]);
  const fetches = new Map<string, number>();
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

  /** The answer for `request` if it is for one of these hosts, else undefined. */
  async function handle(request: Request): Promise<Response | undefined> {
    const url = new URL(request.url);
    if (!hosts.has(url.host)) return undefined;
    if (url.pathname === "/__fetches") return json(Object.fromEntries(fetches));
    const where = `${url.host}${url.pathname}`;
    fetches.set(where, (fetches.get(where) ?? 0) + 1);
    if (Object.hasOwn(served, where)) return json(served[where]);
    if (url.host === "down-site.netlify.app") return json({ error: "down" }, 500);
    if (where === "example.netlify.app/.netlify/identity/user") return netlifyUser(request);
    return json({ error: "not found" }, 404);
  }

  /** GoTrue's GET /user: the token's user, or 401 as GoTrue answers a bad token. */
  async function netlifyUser(request: Request): Promise<Response> {
    const token = /^Bearer (\S+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
    try {
      const { payload } = await jwtVerify(token ?? "", new TextEncoder().encode(netlifySecret), {
        algorithms: ["HS256"],
      });
      // `pad_kib` (tests only) stands for the large user_metadata a real user object may carry.
      const padding = "x".repeat(Number(payload.pad_kib ?? 0) * 1024);
      return json({
        id: payload.sub,
        aud: "",
        role: "",
        email: payload.email,
        app_metadata: payload.app_metadata ?? {},
        user_metadata: { padding },
      });
    } catch {
      return json({ code: 401, msg: "Invalid token: signature is invalid" }, 401);
    }
  }

  const privateKeys: ProviderKeys = {
    keys: Object.fromEntries(KEYED.map((name) => [name, pairs[name].priv])) as Record<Keyed, JWK>,
    netlifySecret,
  };
  return { handle, privateKeys };
}
