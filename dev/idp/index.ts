/**
 * The development identity provider, for local runs only (never deployed). It publishes OIDC
 * discovery and a JWKS from a key it generates once and keeps in its local KV, and issues identity
 * tokens for any user name you give it, so the auth endpoint's real verification path runs:
 * discovery, JWKS fetch, signature, claims. It also serves the demo page.
 *
 *   GET /.well-known/openid-configuration, GET /jwks
 *   GET /token?sub=alice[&roles=moderator,banned][&claims={"name":"Alice"}]  → identity token (10 min)
 *   GET /cdn-cgi/access/certs, GET /access/token?email=, GET /access/login?email=&redirect=
 *     → it also plays Cloudflare Access for the admin API (below)
 *   GET /  → the demo page;  GET /ably.min.js → the real ably-js
 *   PUT|DELETE /demo/bans/{sub} → ban or unban through the auth endpoint's admin API
 */
import { Hono } from "hono";
import { exportJWK, exportSPKI, generateKeyPair, importJWK, type JWK, SignJWT } from "jose";
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
  /** The AUD tag of the Access application it plays: the auth endpoint's ACCESS_AUD. */
  ACCESS_AUD: string;
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

// Cloudflare Access, as the admin API sees it: the team domain is ISSUER, its certs are served where
// Access serves them, and its application tokens are shaped as Access issues them (Cloudflare's
// "Application token"): RS256, aud [AUD tag], email, type "app", sub the user's id. The same
// signing key as the identity tokens; the audience tells the two kinds apart.

/** Access's default session duration: its application tokens live 24 h. */
const ACCESS_TOKEN_TTL_SECONDS = 86_400;

// Access's format: `keys` (JWKS, what the worker reads) and the current and every key in PEM. Real
// Access puts X.509 certificates there; this key has none, so the PEM is its bare public key.
app.get("/cdn-cgi/access/certs", async (c) => {
  const { d: _d, p: _p, q: _q, dp: _dp, dq: _dq, qi: _qi, ...publicKey } = await signingKey(c.env.IDP_STATE);
  const cert = { kid: KEY_ID, cert: await exportSPKI((await importJWK(publicKey, "RS256")) as CryptoKey) };
  return c.json({ keys: [{ ...publicKey, use: "sig" }], public_cert: cert, public_certs: [cert] });
});

app.get("/access/token", async (c) => {
  const email = c.req.query("email")?.trim();
  if (!email) return c.json({ error: "give an email: /access/token?email=alice@example.com" }, 400);
  return c.body(await accessToken(c.env, email), 200, {
    "Content-Type": "application/jwt",
    "Cache-Control": "no-store",
  });
});

// Signs in as Access does: the CF_Authorization cookie on this host (cookies ignore the port, so
// the auth endpoint on 127.0.0.1:8787 gets it too), then back to a page on this machine only.
app.get("/access/login", async (c) => {
  const email = c.req.query("email")?.trim();
  const redirect = URL.parse(c.req.query("redirect") ?? "");
  const local =
    redirect && /^https?:$/.test(redirect.protocol) && ["127.0.0.1", "localhost"].includes(redirect.hostname);
  if (!email || !local) {
    return c.json({ error: "give an email and a redirect on this machine: /access/login?email=…&redirect=…" }, 400);
  }
  const cookie = `CF_Authorization=${await accessToken(c.env, email)}; Path=/; SameSite=Lax; HttpOnly; Max-Age=${ACCESS_TOKEN_TTL_SECONDS}`;
  return c.body(null, 302, { "Set-Cookie": cookie, Location: redirect.href, "Cache-Control": "no-store" });
});

/** An Access application token for `email`; its `sub` is a stable id made from the email. */
async function accessToken(env: Env, email: string): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(email)));
  const hex = [...hash.slice(0, 16)].map((b) => b.toString(16).padStart(2, "0")).join("");
  const sub = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
  const key = await signingKey(env.IDP_STATE);
  return new SignJWT({ email, type: "app", identity_nonce: crypto.randomUUID(), country: "XX" })
    .setProtectedHeader({ alg: "RS256", kid: KEY_ID, typ: "JWT" })
    .setIssuer(env.ISSUER)
    .setAudience([env.ACCESS_AUD])
    .setSubject(sub)
    .setIssuedAt()
    .setNotBefore("0s")
    .setExpirationTime(`${ACCESS_TOKEN_TTL_SECONDS}s`)
    .sign(await importJWK(key, "RS256"));
}

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
    // No bannedBy: with the development Access settings on, a token caller's ban is "admin-api".
    body: c.req.method === "PUT" ? JSON.stringify({ reason: "banned from the demo page" }) : undefined,
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
