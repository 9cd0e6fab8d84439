/**
 * Identity providers: several at once (IDENTITY_PROVIDERS), chosen by `iss` before any key is used,
 * and each preset proven with tokens shaped like that provider's real ones (the example claims of
 * each provider's own documentation), signed by keys published at the provider's own JWKS URL by
 * test/support/provider-hosts.ts. Then capability by role, and the key's own capability.
 */
import { type JWK, type JWTPayload, importJWK, SignJWT } from "jose";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { PROBLEM_TYPE_PREFIX } from "../../src/errors";
import { forgetNetlifyAnswers, netlifyCacheBytes } from "../../src/identity/netlify";
import { FACTS, type Keyed, type ProviderKeys } from "../support/provider-hosts";
import {
  bodyOf,
  call,
  getToken,
  problemOf,
  providerFetches,
  seen,
  testEnv,
  token as idpToken,
  verifyAsAbly,
} from "./helpers";

const { keys, netlifySecret } = JSON.parse(testEnv.TEST_PROVIDER_KEYS as string) as ProviderKeys;
const SUPABASE_SECRET = `supabase-legacy-jwt-secret-${crypto.randomUUID()}`;
const GOTRUE_SECRET = `self-hosted-gotrue-secret-${crypto.randomUUID()}`;
seen.secrets.push(SUPABASE_SECRET, GOTRUE_SECRET, netlifySecret);

const now = () => Math.floor(Date.now() / 1000);

/**
 * A token with `claims` (fresh iat and exp unless given; `undefined` removes a claim), signed by a
 * provider's key (its alg and kid in the header) or, for HS256, by `secret`.
 */
async function mint(
  signer: Keyed | { secret: string },
  claims: Record<string, unknown>,
  header: Record<string, unknown> = {},
): Promise<string> {
  const payload: JWTPayload = { iat: now(), exp: now() + 600, ...claims };
  for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
  let jwt: string;
  if (typeof signer === "string") {
    const key: JWK = keys[signer];
    jwt = await new SignJWT(payload)
      .setProtectedHeader({ alg: key.alg!, kid: key.kid, ...header })
      .sign(await importJWK(key, key.alg));
  } else {
    jwt = await new SignJWT(payload)
      .setProtectedHeader({ alg: "HS256", typ: "JWT", ...header })
      .sign(new TextEncoder().encode(signer.secret));
  }
  seen.identityTokens.push(jwt);
  return jwt;
}

/** The environment with the single-provider variables removed and IDENTITY_PROVIDERS set. */
const withProviders = (providers: object[], more: Record<string, unknown> = {}) => ({
  JWT_ISSUER: undefined,
  JWT_AUDIENCE: undefined,
  IDENTITY_PROVIDERS: JSON.stringify(providers),
  ...more,
});

// Each preset as docs/providers.md's copy-paste configuration has it.
const PRESET = {
  auth0: {
    preset: "auth0",
    domain: FACTS.auth0Domain,
    audience: "https://example.com/health-api",
    clientIdPrefix: "auth0:",
    rolesClaim: ["https://example.com/roles"],
  },
  clerk: {
    preset: "clerk",
    frontendApi: FACTS.clerkFrontendApi,
    authorizedParties: ["https://app.example.com"],
    clientIdPrefix: "clerk:",
    rolesClaim: "o.rol",
  },
  firebase: { preset: "firebase", projectId: FACTS.firebaseProject, clientIdPrefix: "firebase:" },
  supabase: {
    preset: "supabase",
    projectRef: FACTS.supabaseRef,
    secretBinding: "SUPABASE_JWT_SECRET",
    clientIdPrefix: "supabase:",
  },
  cognito: {
    preset: "cognito",
    region: FACTS.cognitoRegion,
    userPoolId: FACTS.cognitoPool,
    clientId: FACTS.cognitoClient,
    clientIdPrefix: "cognito:",
  },
  entra: {
    preset: "entra",
    tenantId: FACTS.entraTenant,
    audience: ["6e74172b-be56-4843-9ff4-e66a39bb12e3", "api://my-api"],
    clientIdPrefix: "entra:",
  },
  keycloak: {
    preset: "keycloak",
    url: FACTS.keycloakUrl,
    realm: FACTS.keycloakRealm,
    audience: "my-api",
    clientIdPrefix: "kc:",
  },
  google: {
    preset: "google",
    audience: "1234987819200-okfr8abc.apps.googleusercontent.com",
    clientIdPrefix: "google:",
  },
  cloudflare: {
    preset: "cloudflare-access",
    team: FACTS.cloudflareTeam,
    audience: "32eafc7626e974616deaf0dc3ce63d7bcbed58a2731e84d06bc3cdf1b53c4228",
    clientIdPrefix: "cf:",
  },
  netlify: { preset: "netlify", site: FACTS.netlifySite, clientIdPrefix: "netlify:" },
  gotrue: { preset: "netlify", secretBinding: "GOTRUE_JWT_SECRET", clientIdPrefix: "gotrue:" },
} as const;

/** One worker with every preset at once (the self-hosted GoTrue aside: one provider per missing iss). */
const ALL = withProviders(
  [
    PRESET.auth0,
    PRESET.clerk,
    PRESET.firebase,
    PRESET.supabase,
    PRESET.cognito,
    PRESET.entra,
    PRESET.keycloak,
    PRESET.google,
    PRESET.cloudflare,
    PRESET.netlify,
  ],
  { SUPABASE_JWT_SECRET: SUPABASE_SECRET },
);
const only = (preset: object, more: Record<string, unknown> = {}) => withProviders([preset], more);

// Example tokens, shaped as each provider's documentation shows them.
const AUTH0 = {
  iss: `https://${FACTS.auth0Domain}/`,
  sub: "auth0|123456",
  aud: ["https://example.com/health-api", `https://${FACTS.auth0Domain}/userinfo`],
  azp: "my_client_id",
  scope: "openid profile read:patients",
  permissions: ["read:patients"],
  "https://example.com/roles": ["doctor"],
};
const CLERK = {
  azp: "https://app.example.com",
  fva: [7, -1],
  iss: `https://${FACTS.clerkFrontendApi}`,
  jti: "a1b2c3d4e5",
  nbf: now() - 10,
  o: { id: "org_123", rol: "admin", slg: "acme", per: "read,manage", fpm: "3" },
  sid: "sess_123",
  sts: "active",
  sub: "user_123",
  v: 2,
};
const CLERK_HEADER = { cat: "cl_B7d4PD111AAA", typ: "JWT" };
const FIREBASE = {
  iss: `https://securetoken.google.com/${FACTS.firebaseProject}`,
  aud: FACTS.firebaseProject,
  auth_time: now() - 300,
  user_id: "kP3xQ9vR2sT8uW1yZ4aB6cD7eF5g",
  sub: "kP3xQ9vR2sT8uW1yZ4aB6cD7eF5g",
  email: "jane@example.com",
  email_verified: true,
  firebase: { identities: { email: ["jane@example.com"] }, sign_in_provider: "password" },
  admin: true,
};
const SUPABASE = {
  aal: "aal1",
  amr: [{ method: "password", timestamp: 1640991600 }],
  app_metadata: { provider: "email", providers: ["email"], roles: ["admin"] },
  aud: "authenticated",
  email: "user@example.com",
  iss: `https://${FACTS.supabaseRef}.supabase.co/auth/v1`,
  phone: "",
  role: "authenticated",
  session_id: "123e4567-e89b-12d3-a456-426614174000",
  sub: "123e4567-e89b-12d3-a456-426614174000",
  user_metadata: { name: "John Doe" },
  is_anonymous: false,
};
const COGNITO_ISS = `https://cognito-idp.${FACTS.cognitoRegion}.amazonaws.com/${FACTS.cognitoPool}`;
const COGNITO_ACCESS = {
  sub: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
  device_key: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
  "cognito:groups": ["admin"],
  token_use: "access",
  scope: "aws.cognito.signin.user.admin",
  auth_time: now() - 60,
  iss: COGNITO_ISS,
  origin_jti: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
  jti: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
  client_id: FACTS.cognitoClient,
  username: "janedoe@example.com",
};
const COGNITO_ID = {
  sub: "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
  aud: FACTS.cognitoClient,
  "cognito:groups": ["admin"],
  token_use: "id",
  auth_time: now() - 60,
  iss: COGNITO_ISS,
  "cognito:username": "janedoe",
  email: "janedoe@example.com",
};
const ENTRA_V2 = {
  aud: "6e74172b-be56-4843-9ff4-e66a39bb12e3",
  iss: `https://login.microsoftonline.com/${FACTS.entraTenant}/v2.0`,
  nbf: now() - 10,
  aio: "AXQAi/8IAAAA",
  azp: "6e74172b-be56-4843-9ff4-e66a39bb12e3",
  azpacr: "0",
  name: "Abe Lincoln",
  oid: "690222be-ff1a-4d56-abd1-7e4f7d38e474",
  preferred_username: "abeli@microsoft.com",
  rh: "I",
  roles: ["Reader"],
  scp: "access_as_user",
  sub: "HKZpfaHyWadeOouYlitjrI-KffTm222X5rrV3xDqfKQ",
  tid: FACTS.entraTenant,
  uti: "fqiBqXLPj0eQa82S-IYFAA",
  ver: "2.0",
};
/** An ID token of the same tenant and app: what the SPA holds, with the API's aud when they share a registration. */
const ENTRA_V2_ID = {
  ...ENTRA_V2,
  scp: undefined,
  azp: undefined,
  azpacr: undefined,
  nonce: "123523",
  email: "abeli@microsoft.com",
};
const ENTRA_V1 = { ...ENTRA_V2, iss: `https://sts.windows.net/${FACTS.entraTenant}/`, aud: "api://my-api", ver: "1.0" };
const KEYCLOAK = {
  jti: "d58f5dc8-fd8f-462b-8a19-716f8f83985b",
  iss: `${FACTS.keycloakUrl}/realms/${FACTS.keycloakRealm}`,
  // With an Audience mapper for the API, as docs/providers.md says to add: Keycloak's default is "account" alone.
  aud: ["my-api", "account"],
  sub: "36fa0f91-f94d-4a0c-afed-6b7d952e47da",
  typ: "Bearer",
  azp: "my-spa",
  sid: "2a88c258-f73a-4103-b862-e1fbd8f4e04e",
  acr: "1",
  "allowed-origins": ["https://app.example.com"],
  realm_access: { roles: ["offline_access", "default-roles-myrealm", "uma_authorization", "admin"] },
  resource_access: { account: { roles: ["manage-account", "view-profile"] }, "my-api": { roles: ["editor"] } },
  scope: "openid email profile",
  email_verified: true,
  name: "Jane Doe",
  preferred_username: "jane",
  email: "jane@example.com",
};
const GOOGLE = {
  iss: "https://accounts.google.com",
  azp: "1234987819200-okfr8abc.apps.googleusercontent.com",
  aud: "1234987819200-okfr8abc.apps.googleusercontent.com",
  sub: "110169484474386276334",
  hd: "example.com",
  email: "jsmith@example.com",
  email_verified: true,
  nbf: now() - 300,
  name: "Jane Smith",
  given_name: "Jane",
  family_name: "Smith",
  jti: "f3b1c2d4e5a6978869aabbccddeeff0011223344",
};
const CLOUDFLARE = {
  aud: ["32eafc7626e974616deaf0dc3ce63d7bcbed58a2731e84d06bc3cdf1b53c4228"],
  email: "user@example.com",
  nbf: now() - 10,
  iss: `https://${FACTS.cloudflareTeam}.cloudflareaccess.com`,
  type: "app",
  identity_nonce: "6ei69kawdKzMIAPF",
  sub: "7335d417-61da-459d-899c-0a01c76a2f94",
  country: "US",
};
const NETLIFY = {
  sub: "5c1e6a9e-1c1f-4b59-8d65-7e6c7a6a0f11",
  email: "jane@example.com",
  app_metadata: { provider: "email", roles: ["admin"] },
  user_metadata: { full_name: "Jane Doe" },
};

/** The issued token's clientId, after checking the answer is 200. */
async function issuedClientId(response: Response): Promise<string> {
  const body = await bodyOf(response);
  expect(response.status, body).toBe(200);
  return (await verifyAsAbly(body)).clientId!;
}

async function expectProblem(response: Response, status: number, code: string) {
  expect(response.status).toBe(status);
  expect((await problemOf(response)).type).toBe(PROBLEM_TYPE_PREFIX + code);
}

beforeEach(() => forgetNetlifyAnswers());

describe("every preset's real-shaped token is accepted, every provider in one worker", () => {
  it.each<[string, () => Promise<string>, string, Record<string, string>?]>([
    [
      "Auth0 access token (aud an array with the API and /userinfo)",
      () => mint("auth0", AUTH0, { typ: "JWT" }),
      "auth0:auth0|123456",
    ],
    ["Auth0 RFC 9068 profile (typ at+jwt)", () => mint("auth0", AUTH0, { typ: "at+jwt" }), "auth0:auth0|123456"],
    ["Clerk session token (no aud, azp, cat header)", () => mint("clerk", CLERK, CLERK_HEADER), "clerk:user_123"],
    [
      "Clerk session token without azp (a native app)",
      () => mint("clerk", { ...CLERK, azp: undefined }, CLERK_HEADER),
      "clerk:user_123",
    ],
    ["Firebase ID token", () => mint("firebase", FIREBASE, { typ: "JWT" }), "firebase:kP3xQ9vR2sT8uW1yZ4aB6cD7eF5g"],
    [
      "Supabase access token (ES256 signing key)",
      () => mint("supabase", SUPABASE, { typ: "JWT" }),
      "supabase:123e4567-e89b-12d3-a456-426614174000",
    ],
    [
      "Supabase access token (legacy HS256 secret, no kid)",
      () => mint({ secret: SUPABASE_SECRET }, SUPABASE),
      "supabase:123e4567-e89b-12d3-a456-426614174000",
    ],
    [
      "Cognito access token (no aud, no typ)",
      () => mint("cognito", COGNITO_ACCESS),
      "cognito:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    ],
    [
      "Cognito access token, updated issuer format",
      () => mint("cognito", { ...COGNITO_ACCESS, iss: COGNITO_ISS.replace("cognito-idp", "issuer-cognito-idp") }),
      "cognito:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    ],
    [
      "Entra ID v2 access token (clientId = oid)",
      () => mint("entra", ENTRA_V2, { typ: "JWT" }),
      "entra:690222be-ff1a-4d56-abd1-7e4f7d38e474",
    ],
    [
      "Entra ID v1 access token (sts.windows.net)",
      () => mint("entra", ENTRA_V1, { typ: "JWT", x5t: "i6lGk3FZzxRcUb2C3nEQ7syHJlY" }),
      "entra:690222be-ff1a-4d56-abd1-7e4f7d38e474",
    ],
    [
      "Keycloak access token (typ Bearer)",
      () => mint("keycloak", KEYCLOAK, { typ: "JWT" }),
      "kc:36fa0f91-f94d-4a0c-afed-6b7d952e47da",
    ],
    [
      "Google ID token, issuer https://accounts.google.com",
      () => mint("google", GOOGLE, { typ: "JWT" }),
      "google:110169484474386276334",
    ],
    [
      "Google ID token, issuer accounts.google.com",
      () => mint("google", { ...GOOGLE, iss: "accounts.google.com" }, { typ: "JWT" }),
      "google:110169484474386276334",
    ],
    [
      "Netlify Identity (hosted) access token, no iss",
      () => mint({ secret: netlifySecret }, NETLIFY),
      "netlify:5c1e6a9e-1c1f-4b59-8d65-7e6c7a6a0f11",
    ],
  ])("%s", async (_name, make, clientId) => {
    expect(await issuedClientId(await getToken(await make(), "", {}, ALL))).toBe(clientId);
  });

  it("Cloudflare Access application token, in the Cf-Access-Jwt-Assertion header", async () => {
    const jwt = await mint("cloudflare", CLOUDFLARE, { typ: "JWT" });
    const res = await call(
      "/auth",
      { headers: { "Cf-Access-Jwt-Assertion": jwt, "Sec-Fetch-Site": "same-origin" } },
      ALL,
    );
    expect(await issuedClientId(res)).toBe("cf:7335d417-61da-459d-899c-0a01c76a2f94");
    // Access adds the header from its own cookie to any request, an <img> from another site too.
    const fromImage = await call(
      "/auth",
      { headers: { "Cf-Access-Jwt-Assertion": jwt, "Sec-Fetch-Site": "cross-site" } },
      ALL,
    );
    await expectProblem(fromImage, 403, "origin-not-allowed");
  });

  it("takes IDENTITY_PROVIDERS as wrangler passes a JSON var: an array, not text", async () => {
    const env = { JWT_ISSUER: undefined, JWT_AUDIENCE: undefined, IDENTITY_PROVIDERS: [PRESET.auth0, PRESET.google] };
    expect(await issuedClientId(await getToken(await mint("google", GOOGLE), "", {}, env))).toBe(
      "google:110169484474386276334",
    );
  });

  it("self-hosted GoTrue: HS256 with its configured secret", async () => {
    const env = only(PRESET.gotrue, { GOTRUE_JWT_SECRET: GOTRUE_SECRET });
    expect(await issuedClientId(await getToken(await mint({ secret: GOTRUE_SECRET }, NETLIFY), "", {}, env))).toBe(
      "gotrue:5c1e6a9e-1c1f-4b59-8d65-7e6c7a6a0f11",
    );
    await expectProblem(
      await getToken(await mint({ secret: netlifySecret }, NETLIFY), "", {}, env),
      401,
      "identity-token-signature-invalid",
    );
  });

  it("imports an HS* provider's secret once per isolate, not on every token it verifies", async () => {
    const env = only(PRESET.gotrue, { GOTRUE_JWT_SECRET: GOTRUE_SECRET });
    const jwt = await mint({ secret: GOTRUE_SECRET }, NETLIFY);
    expect((await getToken(jwt, "", {}, env)).status).toBe(200);
    const imports = vi.spyOn(crypto.subtle, "importKey");
    try {
      for (let i = 0; i < 3; i++) expect((await getToken(jwt, "", {}, env)).status).toBe(200);
      expect(imports).not.toHaveBeenCalled();
    } finally {
      imports.mockRestore();
    }
  });
});

describe("each provider's other tokens, signed by the same keys, are refused", () => {
  it.each<[string, () => Promise<string>, string]>([
    [
      "Auth0: the SPA's ID token (aud = client id)",
      () => mint("auth0", { ...AUTH0, aud: "my_client_id" }),
      "identity-token-audience-mismatch",
    ],
    [
      "Auth0: an access token for another API",
      () => mint("auth0", { ...AUTH0, aud: ["https://other.example/api", `https://${FACTS.auth0Domain}/userinfo`] }),
      "identity-token-audience-mismatch",
    ],
    [
      "Auth0: the issuer without its trailing slash",
      () => mint("auth0", { ...AUTH0, iss: `https://${FACTS.auth0Domain}` }),
      "identity-token-issuer-mismatch",
    ],
    [
      "Clerk: a JWT-template token (cat header)",
      () => mint("clerk", CLERK, { cat: "cl_B7d4PD222AAA" }),
      "identity-token-claim-invalid",
    ],
    [
      "Clerk: a JWT-template token without the cat header",
      () => mint("clerk", CLERK, { typ: "JWT" }),
      "identity-token-claim-missing",
    ],
    [
      "Clerk: azp of another origin",
      () => mint("clerk", { ...CLERK, azp: "https://evil.example" }, CLERK_HEADER),
      "identity-token-claim-invalid",
    ],
    [
      "Firebase: a token for another project",
      () => mint("firebase", { ...FIREBASE, aud: "other-project" }),
      "identity-token-audience-mismatch",
    ],
    [
      "Firebase: a session cookie (another issuer)",
      () => mint("firebase", { ...FIREBASE, iss: `https://session.firebase.google.com/${FACTS.firebaseProject}` }),
      "identity-token-issuer-mismatch",
    ],
    [
      "Supabase: the anon API key (iss supabase)",
      () => mint({ secret: SUPABASE_SECRET }, { iss: "supabase", role: "anon", ref: FACTS.supabaseRef }),
      "identity-token-issuer-mismatch",
    ],
    ["Supabase: aud anon", () => mint("supabase", { ...SUPABASE, aud: "anon" }), "identity-token-audience-mismatch"],
    [
      "Supabase: HS256 signed with another secret",
      () => mint({ secret: `${SUPABASE_SECRET}-not` }, SUPABASE),
      "identity-token-signature-invalid",
    ],
    [
      "Cognito: an ID token where an access token is expected",
      () => mint("cognitoId", COGNITO_ID),
      "identity-token-claim-invalid",
    ],
    [
      "Cognito: an ID token stripped of token_use",
      () => mint("cognitoId", { ...COGNITO_ID, token_use: undefined }),
      "identity-token-claim-missing",
    ],
    [
      "Cognito: an access token of another app client",
      () => mint("cognito", { ...COGNITO_ACCESS, client_id: "another-client" }),
      "identity-token-claim-invalid",
    ],
    [
      "Entra: the SPA's v2 ID token, SPA and API in one registration (same aud, no scp)",
      () => mint("entra", ENTRA_V2_ID),
      "identity-token-claim-missing",
    ],
    [
      "Entra: a v1 ID token (no scp)",
      () => mint("entra", { ...ENTRA_V2_ID, iss: `https://sts.windows.net/${FACTS.entraTenant}/`, ver: "1.0" }),
      "identity-token-claim-missing",
    ],
    [
      "Entra: a v1 issuer with a v2 token's ver",
      () => mint("entra", { ...ENTRA_V1, ver: "2.0" }),
      "identity-token-claim-invalid",
    ],
    [
      "Entra: another tenant's tid",
      () => mint("entra", { ...ENTRA_V2, tid: "00000000-0000-0000-0000-000000000001" }),
      "identity-token-claim-invalid",
    ],
    [
      "Entra: a Microsoft Graph token",
      () => mint("entra", { ...ENTRA_V2, aud: "00000003-0000-0000-c000-000000000000" }),
      "identity-token-audience-mismatch",
    ],
    [
      "Keycloak: an ID token (typ ID)",
      () => mint("keycloak", { ...KEYCLOAK, typ: "ID" }),
      "identity-token-claim-invalid",
    ],
    [
      "Keycloak: a refresh token (typ Refresh)",
      () => mint("keycloak", { ...KEYCLOAK, typ: "Refresh" }),
      "identity-token-claim-invalid",
    ],
    [
      "Keycloak: the default aud account, no Audience mapper",
      () => mint("keycloak", { ...KEYCLOAK, aud: "account" }),
      "identity-token-audience-mismatch",
    ],
    [
      "Keycloak: the legacy /auth issuer",
      () => mint("keycloak", { ...KEYCLOAK, iss: `${FACTS.keycloakUrl}/auth/realms/${FACTS.keycloakRealm}` }),
      "identity-token-issuer-mismatch",
    ],
    [
      "Google: an ID token for another app",
      () => mint("google", { ...GOOGLE, aud: "999-other.apps.googleusercontent.com" }),
      "identity-token-audience-mismatch",
    ],
    [
      "Google: an issuer spelling Google does not use",
      () => mint("google", { ...GOOGLE, iss: "https://accounts.google.com/" }),
      "identity-token-issuer-mismatch",
    ],
    [
      "Cloudflare Access: the global session token (type org)",
      () => mint("cloudflare", { ...CLOUDFLARE, type: "org" }),
      "identity-token-claim-invalid",
    ],
    [
      "Cloudflare Access: another application's AUD tag",
      () => mint("cloudflare", { ...CLOUDFLARE, aud: ["a".repeat(64)] }),
      "identity-token-audience-mismatch",
    ],
    [
      "Netlify: an expired token, refused before asking Netlify",
      () => mint({ secret: netlifySecret }, { ...NETLIFY, exp: now() - 120 }),
      "identity-token-expired",
    ],
    [
      "Netlify: a token the site's Identity endpoint rejects",
      () => mint({ secret: `${netlifySecret}-forged` }, NETLIFY),
      "identity-token-rejected",
    ],
  ])("%s", async (_name, make, code) => {
    await expectProblem(await getToken(await make(), "", {}, ALL), 401, code);
  });

  it("Cognito with tokenUse id: accepts the ID token, refuses the access token (no aud)", async () => {
    const env = only({ ...PRESET.cognito, tokenUse: "id" });
    expect(await issuedClientId(await getToken(await mint("cognitoId", COGNITO_ID), "", {}, env))).toBe(
      "cognito:aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    );
    await expectProblem(
      await getToken(await mint("cognito", COGNITO_ACCESS), "", {}, env),
      401,
      "identity-token-claim-missing",
    );
  });

  it("Google with hostedDomain: refuses a consumer account (no hd) and another domain", async () => {
    const env = only({ ...PRESET.google, hostedDomain: "example.com" });
    expect((await getToken(await mint("google", GOOGLE), "", {}, env)).status).toBe(200);
    await expectProblem(
      await getToken(await mint("google", { ...GOOGLE, hd: undefined }), "", {}, env),
      401,
      "identity-token-claim-missing",
    );
    await expectProblem(
      await getToken(await mint("google", { ...GOOGLE, hd: "evil.example" }), "", {}, env),
      401,
      "identity-token-claim-invalid",
    );
  });

  it("Clerk with an audience configured requires it (custom JWT template tokens)", async () => {
    const env = only({ ...PRESET.clerk, audience: "ably" });
    await expectProblem(
      await getToken(await mint("clerk", CLERK, CLERK_HEADER), "", {}, env),
      401,
      "identity-token-claim-missing",
    );
    expect((await getToken(await mint("clerk", { ...CLERK, aud: "ably" }, CLERK_HEADER), "", {}, env)).status).toBe(
      200,
    );
  });

  it("reads Cf-Access-Jwt-Assertion only when a provider names it", async () => {
    const jwt = await mint("cloudflare", CLOUDFLARE);
    await expectProblem(
      await call("/auth", { headers: { "Cf-Access-Jwt-Assertion": jwt } }, only(PRESET.auth0)),
      401,
      "identity-token-missing",
    );
  });
});

describe("choosing the provider by iss, before any key is used", () => {
  it("refuses a token whose iss is not configured without fetching anything", async () => {
    const before = await providerFetches();
    for (const iss of ["https://unknown.example/", `https://${FACTS.auth0Domain}/evil`, "", 42]) {
      await expectProblem(
        await getToken(await mint("auth0", { ...AUTH0, iss }), "", {}, ALL),
        401,
        "identity-token-issuer-mismatch",
      );
    }
    expect(await providerFetches()).toEqual(before);
  });

  it("refuses a token without iss when no provider is configured for such tokens, without fetching", async () => {
    const before = await providerFetches();
    await expectProblem(
      await getToken(await mint("auth0", { ...AUTH0, iss: undefined }), "", {}, only(PRESET.auth0)),
      401,
      "identity-token-issuer-mismatch",
    );
    await expectProblem(
      await getToken(await mint({ secret: netlifySecret }, NETLIFY), "", {}, only(PRESET.auth0)),
      401,
      "identity-token-issuer-mismatch",
    );
    expect(await providerFetches()).toEqual(before);
  });

  it("refuses issuer A's token signed with issuer B's key under a kid both JWKS hold", async () => {
    // Auth0's and Clerk's JWKS both have kid "shared-kid", with different keys.
    await expectProblem(
      await getToken(await mint("clerk", AUTH0), "", {}, ALL),
      401,
      "identity-token-signature-invalid",
    );
    await expectProblem(
      await getToken(await mint("auth0", CLERK, CLERK_HEADER), "", {}, ALL),
      401,
      "identity-token-signature-invalid",
    );
  });

  it("refuses a token of the single-provider issuer when only the list is configured", async () => {
    await expectProblem(await getToken(await idpToken(), "", {}, ALL), 401, "identity-token-issuer-mismatch");
  });

  it("keeps each provider's JWKS apart: one fetch of each, whatever the others do", async () => {
    const env = only({ ...PRESET.keycloak, name: "keycloak-once" });
    const before = await providerFetches();
    for (let i = 0; i < 3; i++)
      expect((await getToken(await mint("keycloak", KEYCLOAK), "", {}, env)).status).toBe(200);
    const after = await providerFetches();
    const path = `kc.example.com/realms/${FACTS.keycloakRealm}/protocol/openid-connect/certs`;
    expect((after[path] ?? 0) - (before[path] ?? 0)).toBeLessThanOrEqual(1);
  });
});

describe("symmetric secrets: only for the provider they are configured for", () => {
  const publicJwkBytes = (name: Keyed) => {
    const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...pub } = keys[name];
    return JSON.stringify(pub);
  };

  it.each<[string, () => Promise<string>, Record<string, unknown>]>([
    [
      "HS256 keyed with Auth0's public JWK",
      () => mint({ secret: publicJwkBytes("auth0") }, AUTH0, { kid: "shared-kid" }),
      ALL,
    ],
    ["HS256 with Supabase's secret but Auth0's iss", () => mint({ secret: SUPABASE_SECRET }, AUTH0), ALL],
    [
      "HS256 with Supabase's secret, Supabase's iss, no secret configured",
      () => mint({ secret: SUPABASE_SECRET }, SUPABASE),
      only({ ...PRESET.supabase, secretBinding: undefined }),
    ],
    [
      "HS256 keyed with Supabase's public JWK, no secret configured",
      () => mint({ secret: publicJwkBytes("supabase") }, SUPABASE, { kid: keys.supabase.kid }),
      only({ ...PRESET.supabase, secretBinding: undefined }),
    ],
    [
      "HS384 with Supabase's secret (only HS256 is configured)",
      async () => {
        const jwt = await new SignJWT({ ...SUPABASE, iat: now(), exp: now() + 600 })
          .setProtectedHeader({ alg: "HS384" })
          .sign(new TextEncoder().encode(SUPABASE_SECRET));
        seen.identityTokens.push(jwt);
        return jwt;
      },
      ALL,
    ],
    ["RS256 claiming to be Netlify (no iss)", () => mint("auth0", { ...NETLIFY }), ALL],
  ])("%s → 401 algorithm-not-allowed, nothing fetched", async (_name, make, env) => {
    const jwt = await make();
    const before = await providerFetches();
    await expectProblem(await getToken(jwt, "", {}, env), 401, "identity-token-algorithm-not-allowed");
    expect(await providerFetches()).toEqual(before);
  });

  it("the Netlify secret never verifies anything locally: only the site's endpoint vouches", async () => {
    // A token signed with the Supabase secret but without iss goes to Netlify, which refuses it.
    await expectProblem(
      await getToken(await mint({ secret: SUPABASE_SECRET }, NETLIFY), "", {}, ALL),
      401,
      "identity-token-rejected",
    );
  });
});

describe("Netlify Identity (hosted)", () => {
  const userPath = "example.netlify.app/.netlify/identity/user";
  const env = only(PRESET.netlify);

  it("asks the site once per token within a minute, keyed by the token's hash", async () => {
    const jwt = await mint({ secret: netlifySecret }, { ...NETLIFY, sub: "cached-user" });
    const before = (await providerFetches())[userPath] ?? 0;
    for (let i = 0; i < 3; i++) expect((await getToken(jwt, "", {}, env)).status).toBe(200);
    expect(((await providerFetches())[userPath] ?? 0) - before).toBe(1);
  });

  it("shares one ask among concurrent requests with a new token", async () => {
    const jwt = await mint({ secret: netlifySecret }, { ...NETLIFY, sub: "burst-user" });
    const before = (await providerFetches())[userPath] ?? 0;
    const responses = await Promise.all(Array.from({ length: 20 }, () => getToken(jwt, "", {}, env)));
    expect(new Set(responses.map((r) => r.status))).toEqual(new Set([200]));
    expect(((await providerFetches())[userPath] ?? 0) - before).toBe(1);
  });

  it("remembers only the roles: 40 users with 256 KiB of user_metadata each take under 8 KiB", async () => {
    for (let i = 0; i < 40; i++) {
      const jwt = await mint({ secret: netlifySecret }, { ...NETLIFY, sub: `big-user-${i}`, pad_kib: 256 });
      expect((await getToken(jwt, "", {}, env)).status).toBe(200);
    }
    expect(netlifyCacheBytes()).toBeGreaterThan(0);
    expect(netlifyCacheBytes()).toBeLessThan(8 * 1024);
  });

  it("bans by app_metadata.roles", async () => {
    const jwt = await mint({ secret: netlifySecret }, { ...NETLIFY, app_metadata: { roles: ["banned-spammer"] } });
    await expectProblem(await getToken(jwt, "", {}, env), 403, "user-banned");
  });

  it("answers 503 when the site's Identity endpoint fails, and caches nothing", async () => {
    const down = only({ ...PRESET.netlify, site: FACTS.netlifyDownSite });
    const jwt = await mint({ secret: netlifySecret }, NETLIFY);
    const res = await getToken(jwt, "", {}, down);
    await expectProblem(res, 503, "identity-provider-unavailable");
    const before = (await providerFetches())["down-site.netlify.app/.netlify/identity/user"] ?? 0;
    expect((await getToken(jwt, "", {}, down)).status).toBe(503);
    expect((await providerFetches())["down-site.netlify.app/.netlify/identity/user"]).toBe(before + 1);
  });
});

describe("role bans per provider", () => {
  it.each<[string, () => Promise<string>]>([
    ["Supabase app_metadata.roles", () => mint("supabase", { ...SUPABASE, app_metadata: { roles: ["banned"] } })],
    ["Keycloak realm_access.roles", () => mint("keycloak", { ...KEYCLOAK, realm_access: { roles: ["banned-user"] } })],
    ["Cognito cognito:groups", () => mint("cognito", { ...COGNITO_ACCESS, "cognito:groups": ["banned"] })],
    ["Entra roles", () => mint("entra", { ...ENTRA_V2, roles: ["Banned"] })],
    ["Auth0 namespaced roles claim", () => mint("auth0", { ...AUTH0, "https://example.com/roles": ["banned"] })],
  ])("%s", async (_name, make) => {
    await expectProblem(await getToken(await make(), "", {}, ALL), 403, "user-banned");
  });

  it("uses a provider's own bannedRolePattern", async () => {
    const env = only({ ...PRESET.keycloak, bannedRolePattern: "^suspended$" });
    await expectProblem(
      await getToken(await mint("keycloak", { ...KEYCLOAK, realm_access: { roles: ["suspended"] } }), "", {}, env),
      403,
      "user-banned",
    );
  });
});

describe("capability by role", () => {
  const capabilityOf = async (res: Response) => {
    const body = await bodyOf(res);
    expect(res.status, body).toBe(200);
    return (await verifyAsAbly(body)).capability;
  };
  const moderators = {
    ROLE_CAPABILITIES: JSON.stringify({ admin: { "chat:*": ["history", "presence"], "mod:{clientId}": ["publish"] } }),
  };

  it("adds a role's capability to the base one, {clientId} filled in", async () => {
    const env = { ...only(PRESET.keycloak), ...moderators };
    expect(await capabilityOf(await getToken(await mint("keycloak", KEYCLOAK), "", {}, env))).toEqual({
      "chat:*": ["history", "presence"],
      "mod:kc:36fa0f91-f94d-4a0c-afed-6b7d952e47da": ["publish"],
      "private:kc:36fa0f91-f94d-4a0c-afed-6b7d952e47da": ["history", "presence", "publish", "subscribe"],
    });
  });

  it("gives users without the role the base capability only", async () => {
    const env = { ...only(PRESET.keycloak), ...moderators };
    const user = await mint("keycloak", { ...KEYCLOAK, realm_access: { roles: ["offline_access"] } });
    expect(Object.keys(await capabilityOf(await getToken(user, "", {}, env)))).toEqual([
      "private:kc:36fa0f91-f94d-4a0c-afed-6b7d952e47da",
    ]);
  });

  it("never grants more than ABLY_KEY_CAPABILITY", async () => {
    const env = {
      ...only(PRESET.keycloak),
      ...moderators,
      ABLY_KEY_CAPABILITY: '{"chat:*":["presence","subscribe"],"private:*":["subscribe"]}',
    };
    expect(await capabilityOf(await getToken(await mint("keycloak", KEYCLOAK), "", {}, env))).toEqual({
      "chat:*": ["presence"],
      "private:kc:36fa0f91-f94d-4a0c-afed-6b7d952e47da": ["subscribe"],
    });
  });

  it("uses a provider's capability and roleCapabilities over the global ones", async () => {
    const env = {
      ...only({
        ...PRESET.entra,
        capability: { "staff:{clientId}": ["*"] },
        roleCapabilities: { Reader: { news: ["subscribe"] } },
      }),
      ...moderators,
    };
    expect(await capabilityOf(await getToken(await mint("entra", ENTRA_V2), "", {}, env))).toEqual({
      news: ["subscribe"],
      "staff:entra:690222be-ff1a-4d56-abd1-7e4f7d38e474": ["*"],
    });
  });

  it("takes ROLE_CAPABILITIES and ABLY_KEY_CAPABILITY as wrangler passes TOML tables: objects", async () => {
    const env = {
      ...only(PRESET.keycloak),
      ROLE_CAPABILITIES: { admin: { "chat:*": ["presence"] } },
      ABLY_KEY_CAPABILITY: { "*": ["presence", "subscribe"] },
    };
    expect(await capabilityOf(await getToken(await mint("keycloak", KEYCLOAK), "", {}, env))).toEqual({
      "chat:*": ["presence"],
      "private:kc:36fa0f91-f94d-4a0c-afed-6b7d952e47da": ["presence", "subscribe"],
    });
  });

  it("with the single-provider variables too", async () => {
    const env = { ROLES_CLAIM: "roles", ...moderators };
    const res = await getToken(await idpToken({ claims: { roles: ["admin"] } }), "", {}, env);
    expect((await capabilityOf(res))["chat:*"]).toEqual(["history", "presence"]);
  });
});

describe("from one provider to several, nothing deleted", () => {
  it("keeps the single-provider variables as the first entry, its users' clientIds unchanged", async () => {
    const env = { IDENTITY_PROVIDERS: JSON.stringify([PRESET.google]) }; // JWT_ISSUER and JWT_AUDIENCE stay set
    expect(await issuedClientId(await getToken(await idpToken({ claims: { sub: "alice" } }), "", {}, env))).toBe(
      "alice",
    );
    expect(await issuedClientId(await getToken(await mint("google", GOOGLE), "", {}, env))).toBe(
      "google:110169484474386276334",
    );
  });
});

describe("clientId prefixes", () => {
  it("keep two providers' identical user ids apart", async () => {
    const env = withProviders([PRESET.gotrue, { ...PRESET.supabase, secretBinding: undefined }], {
      GOTRUE_JWT_SECRET: GOTRUE_SECRET,
    });
    const a = await issuedClientId(
      await getToken(await mint({ secret: GOTRUE_SECRET }, { sub: "same-id" }), "", {}, env),
    );
    const b = await issuedClientId(
      await getToken(await mint("supabase", { ...SUPABASE, sub: "same-id" }), "", {}, env),
    );
    expect([a, b]).toEqual(["gotrue:same-id", "supabase:same-id"]);
  });

  it("refuse a user id that the prefix makes too long", async () => {
    const res = await getToken(await mint("google", { ...GOOGLE, sub: "1".repeat(250) }), "", {}, ALL);
    await expectProblem(res, 401, "client-id-invalid");
  });
});

describe("a misconfigured provider list answers 500 and says why at /healthz", () => {
  it.each<[string, Record<string, unknown>, RegExp]>([
    [
      "both styles, the list's entry without a prefix of its own",
      { IDENTITY_PROVIDERS: JSON.stringify([{ ...PRESET.google, clientIdPrefix: undefined }]) },
      /JWT_ISSUER and IDENTITY_PROVIDERS\[0\] have the same clientIdPrefix ""/,
    ],
    ["not an array", withProviders([]), /non-empty array/],
    ["an unknown preset", withProviders([{ preset: "okta", domain: "x.okta.com" }]), /preset must be one of/],
    ["a preset without its facts", withProviders([{ preset: "auth0", audience: "x" }]), /auth0 preset needs domain/],
    [
      "a domain with a scheme",
      withProviders([{ preset: "auth0", domain: "https://x.auth0.com", audience: "x" }]),
      /needs domain \(a host name/,
    ],
    [
      "Clerk without authorizedParties",
      withProviders([{ preset: "clerk", frontendApi: "clerk.example.com" }]),
      /the clerk preset needs authorizedParties \(your app's origins, a list\)/,
    ],
    [
      "Clerk with an authorized party that is no origin",
      withProviders([{ ...PRESET.clerk, authorizedParties: ["app.example.com"] }]),
      /the clerk preset needs authorizedParties/,
    ],
    [
      "Netlify with both a site and a secret",
      withProviders([{ ...PRESET.netlify, secretBinding: "GOTRUE_JWT_SECRET" }], { GOTRUE_JWT_SECRET: GOTRUE_SECRET }),
      /the netlify preset needs exactly one of site, secretBinding/,
    ],
    [
      "Netlify with neither",
      withProviders([{ preset: "netlify" }]),
      /the netlify preset needs exactly one of site, secretBinding/,
    ],
    ["an unknown field", withProviders([{ ...PRESET.google, audiance: "typo" }]), /unknown field audiance/],
    ["no audience and no switch", withProviders([{ issuer: "https://a.example/" }]), /audience is required/],
    ["the same issuer twice", withProviders([PRESET.google, PRESET.google]), /an issuer is configured twice/],
    [
      "two providers for tokens without iss",
      withProviders([PRESET.netlify, PRESET.gotrue], { GOTRUE_JWT_SECRET: GOTRUE_SECRET }),
      /an issuer is configured twice/,
    ],
    [
      "HS256 without a secret",
      withProviders([{ issuer: "https://a.example/", audience: "x", algorithms: ["HS256"] }]),
      /HS256 needs the provider's own secret/,
    ],
    ["a secretBinding naming nothing", withProviders([PRESET.supabase]), /secretBinding names SUPABASE_JWT_SECRET/],
    [
      "the Ably key as a provider's secret",
      withProviders([{ ...PRESET.supabase, secretBinding: "ABLY_API_KEY" }]),
      /secretBinding may not name ABLY_API_KEY/,
    ],
    ["a short secret", withProviders([PRESET.supabase], { SUPABASE_JWT_SECRET: "short" }), /at least 32 bytes/],
    [
      "issuer null with a JWKS",
      withProviders([{ issuer: null, noAudience: true }]),
      /needs secretBinding or netlifySite/,
    ],
    [
      "a clientIdPrefix with a wildcard",
      withProviders([{ ...PRESET.google, clientIdPrefix: "g*" }]),
      /clientIdPrefix contains characters/,
    ],
    [
      "a role capability that is not one",
      withProviders([PRESET.google], { ROLE_CAPABILITIES: '{"mod":["x"]}' }),
      /ROLE_CAPABILITIES \(role mod\)/,
    ],
    [
      "a key capability that is not JSON",
      withProviders([PRESET.google], { ABLY_KEY_CAPABILITY: "{" }),
      /ABLY_KEY_CAPABILITY is not valid JSON/,
    ],
    [
      "a token requirement that is not text",
      withProviders([{ ...PRESET.google, requireClaims: { hd: 1 } }]),
      /requireClaims.hd must be/,
    ],
  ])("%s", async (_name, overrides, why) => {
    const health = await call("/healthz", {}, overrides);
    expect(health.status).toBe(503);
    expect((await health.json<{ problems: string[] }>()).problems.join("\n")).toMatch(why);
    const res = await getToken(await mint("google", GOOGLE), "", {}, overrides);
    await expectProblem(res, 500, "misconfigured");
  });

  it("never shows a secret's value in a problem", async () => {
    const res = await call(
      "/healthz",
      {},
      withProviders([PRESET.supabase], { SUPABASE_JWT_SECRET: "short-SECRETVALUE" }),
    );
    expect(await bodyOf(res)).not.toContain("SECRETVALUE");
  });
});
