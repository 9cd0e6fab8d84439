/**
 * The floor the worker is measured against: its job on the happy path as a bare `fetch`
 * handler, no framework. jose's createRemoteJWKSet + jwtVerify, one KV `get`, jose's SignJWT for
 * the same HS256 Ably JWT (kid, x-ably-capability, x-ably-clientId, iat, exp). No configuration
 * validation, no CORS, no security headers, no log line, no problem documents: what the worker adds
 * on top of this is what it costs. Bench-only, never deployed; bench/run.mjs bundles it with
 * `wrangler deploy --dry-run` like the worker and serves it the same way.
 *
 * Bindings: JWT_ISSUER, JWT_AUDIENCE, JWKS_URL, ABLY_API_KEY, BANS (KV).
 */
import { createRemoteJWKSet, jwtVerify, SignJWT } from "jose";

const TOKEN_TTL_SECONDS = 3_600; // the worker's default ABLY_TOKEN_TTL_SECONDS

let isolate; // the key set and the imported HMAC key: once per isolate, on the first request

function setUp(env) {
  const [keyName, secret] = env.ABLY_API_KEY.split(":");
  return {
    keyName,
    jwks: createRemoteJWKSet(new URL(env.JWKS_URL)),
    hmacKey: crypto.subtle.importKey(
      "raw",
      new TextEncoder().encode(secret),
      { name: "HMAC", hash: "SHA-256" },
      false,
      ["sign"],
    ),
  };
}

export default {
  async fetch(request, env) {
    isolate ??= setUp(env);
    const token = /^Bearer (.+)$/.exec(request.headers.get("Authorization") ?? "")?.[1];
    if (!token) return new Response("no token", { status: 401 });
    let clientId;
    try {
      const { payload } = await jwtVerify(token, isolate.jwks, {
        issuer: env.JWT_ISSUER,
        audience: env.JWT_AUDIENCE,
        algorithms: ["RS256", "ES256"],
        requiredClaims: ["exp"],
      });
      clientId = payload.sub;
    } catch {
      return new Response("invalid token", { status: 401 });
    }
    if ((await env.BANS.get(clientId, { cacheTtl: 60 })) !== null) return new Response("banned", { status: 403 });
    const now = Math.floor(Date.now() / 1000);
    const jwt = await new SignJWT({
      "x-ably-capability": JSON.stringify({ [`private:${clientId}`]: ["history", "presence", "publish", "subscribe"] }),
      "x-ably-clientId": clientId,
    })
      .setProtectedHeader({ typ: "JWT", alg: "HS256", kid: isolate.keyName })
      .setIssuedAt(now)
      .setExpirationTime(now + TOKEN_TTL_SECONDS)
      .sign(await isolate.hmacKey);
    return new Response(jwt, { headers: { "Content-Type": "application/jwt", "Cache-Control": "no-store" } });
  },
};
