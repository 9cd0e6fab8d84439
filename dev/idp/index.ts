/**
 * The development identity provider, for local runs only (never deployed). It publishes OIDC
 * discovery and a JWKS from a key it generates once and keeps in its local KV, and issues identity
 * tokens for any user name you give it, so the auth endpoint's real verification path runs:
 * discovery, JWKS fetch, signature, claims. It also serves the demo page.
 *
 *   GET /.well-known/openid-configuration, GET /jwks
 *   GET /token?sub=alice[&roles=moderator,banned][&claims={"name":"Alice"}]  → identity token (10 min)
 *   GET /  → the demo page;  GET /ably.min.js → the real ably-js
 *   PUT|DELETE /demo/bans/{sub} → ban or unban through the auth endpoint's admin API
 */
import { Hono } from "hono";
import { exportJWK, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";
import ablyJs from "../../node_modules/ably/build/ably.min.js";
import { demoPage } from "./page";

interface Env {
  IDP_STATE: KVNamespace;
  /** Where the auth endpoint runs. */
  AUTH_URL: string;
  /** The Ably stand-in's port on 127.0.0.1, set by `npm run dev` when it runs; unset: the page uses Ably. */
  ABLY_STAND_IN_PORT?: string;
  /** The auth endpoint's ADMIN_TOKEN (a development-only value). */
  ADMIN_TOKEN: string;
  /** This provider's issuer; fixed, so tokens fetched via localhost:8788 still say 127.0.0.1. */
  ISSUER: string;
  /** The `aud` of issued tokens: the auth endpoint's JWT_AUDIENCE. */
  AUDIENCE: string;
}

/** Identity tokens live 10 min, like a typical provider's ID token. */
const TOKEN_TTL_SECONDS = 600;
const KEY_ID = "dev-idp-1";
/** Claims a caller cannot override through `claims=`: they make the token what it is. */
const FIXED_CLAIMS = new Set(["iss", "aud", "sub", "iat", "exp", "nbf"]);

const app = new Hono<{ Bindings: Env }>();

app.get("/.well-known/openid-configuration", (c) =>
  c.json({
    issuer: c.env.ISSUER,
    jwks_uri: `${c.env.ISSUER}/jwks`,
    token_endpoint: `${c.env.ISSUER}/token`,
    id_token_signing_alg_values_supported: ["RS256"],
    subject_types_supported: ["public"],
    response_types_supported: ["id_token"],
  }),
);

app.get("/jwks", async (c) => {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicKey } = await signingKey(c.env.IDP_STATE);
  return c.json({ keys: [{ ...publicKey, use: "sig" }] });
});

app.get("/token", async (c) => {
  const sub = c.req.query("sub")?.trim();
  if (!sub) return c.json({ error: "give a user name: /token?sub=alice" }, 400);
  let extra: Record<string, unknown>;
  try {
    extra = JSON.parse(c.req.query("claims") ?? "{}") as Record<string, unknown>;
  } catch {
    return c.json({ error: "claims must be a JSON object" }, 400);
  }
  const roles = (c.req.query("roles") ?? "")
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean);
  const claims = Object.fromEntries(Object.entries(extra).filter(([name]) => !FIXED_CLAIMS.has(name)));
  const key = await signingKey(c.env.IDP_STATE);
  const token = await new SignJWT({ name: sub, ...claims, ...(roles.length ? { roles } : {}) })
    .setProtectedHeader({ alg: "RS256", kid: KEY_ID, typ: "JWT" })
    .setIssuer(c.env.ISSUER)
    .setAudience(c.env.AUDIENCE)
    .setSubject(sub)
    .setIssuedAt()
    .setExpirationTime(`${TOKEN_TTL_SECONDS}s`)
    .sign(await importJWK(key, "RS256"));
  return c.body(token, 200, { "Content-Type": "application/jwt", "Cache-Control": "no-store" });
});

app.get("/", (c) => c.html(demoPage(c.env.AUTH_URL, c.env.ABLY_STAND_IN_PORT)));
app.get("/ably.min.js", (c) => c.body(ablyJs, 200, { "Content-Type": "text/javascript" }));
app.get("/favicon.ico", (c) => c.body(null, 204));

// Ban buttons: the page is same-origin here; this worker calls the auth endpoint's admin API.
app.on(["PUT", "DELETE"], "/demo/bans/:sub", async (c) => {
  const response = await fetch(`${c.env.AUTH_URL}/admin/bans/${encodeURIComponent(c.req.param("sub"))}`, {
    method: c.req.method,
    headers: { Authorization: `Bearer ${c.env.ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body:
      c.req.method === "PUT"
        ? JSON.stringify({ reason: "banned from the demo page", bannedBy: "demo page" })
        : undefined,
  });
  return new Response(response.body, { status: response.status, headers: response.headers });
});

/** The signing key: generated on first use, then kept in local KV so restarts keep tokens valid. */
async function signingKey(state: KVNamespace): Promise<JWK> {
  const stored = await state.get<JWK>("signing-key", "json");
  if (stored) return stored;
  const { privateKey } = await generateKeyPair("RS256", { extractable: true });
  const jwk = { ...(await exportJWK(privateKey)), kid: KEY_ID, alg: "RS256" };
  await state.put("signing-key", JSON.stringify(jwk));
  return jwk;
}

export default app;
