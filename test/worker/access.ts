/**
 * Cloudflare Access application tokens for the worker suite, as Access issues them (Cloudflare's
 * "Application token" page), signed with the key the stand-in team publishes at
 * https://yourteam.cloudflareaccess.com/cdn-cgi/access/certs (test/support/provider-hosts.ts).
 */
import { importJWK, type JWTPayload, SignJWT } from "jose";
import { FACTS, type ProviderKeys } from "../support/provider-hosts";
import { seen, testEnv } from "./helpers";

const { keys } = JSON.parse(testEnv.TEST_PROVIDER_KEYS as string) as ProviderKeys;

/** The team domain (Access's `iss`) and an application's AUD tag. */
export const ACCESS_TEAM = `https://${FACTS.cloudflareTeam}.cloudflareaccess.com`;
export const ACCESS_AUD = "4714c1358e65fe4b408ad6d432a5f878f08194bdb4752441fd56faefa9b2b6f2";

/**
 * An application token for the stand-in team, valid for 10 min; `claims` override Access's (a
 * claim set to undefined is left out). `signing.alg: "HS256"` signs with a made-up secret,
 * `signing.key: "other"` with another provider's key under the team's kid.
 */
export async function accessToken(
  claims: Record<string, unknown>,
  signing: { alg?: "HS256"; key?: "other" } = {},
): Promise<string> {
  const now = Math.floor(Date.now() / 1000);
  const payload: JWTPayload = {
    aud: [ACCESS_AUD],
    exp: now + 600,
    iat: now,
    nbf: now,
    iss: ACCESS_TEAM,
    type: "app",
    identity_nonce: "6ei69kawdKzMIAPF",
    sub: "7335d417-61da-459d-899c-0a01c76a2f94",
    country: "US",
    ...claims,
  };
  for (const name of Object.keys(payload)) if (payload[name] === undefined) delete payload[name];
  const team = keys.cloudflare;
  const signer =
    signing.alg === "HS256"
      ? new TextEncoder().encode("made-up-secret-made-up-secret-made-up-secret")
      : await importJWK(signing.key === "other" ? keys.auth0 : team, "RS256");
  const jwt = await new SignJWT(payload)
    .setProtectedHeader({ alg: signing.alg ?? "RS256", kid: team.kid, typ: "JWT" })
    .sign(signer);
  seen.identityTokens.push(jwt);
  return jwt;
}
