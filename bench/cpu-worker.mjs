/**
 * A bench-only worker, never deployed: it runs the worker's own module functions in a loop inside
 * workerd, so that bench/run.mjs can read their CPU cost from outside (the workerd process's CPU
 * time around one call that runs `n` iterations). bench/run.mjs bundles it with esbuild.
 *
 * GET /run?part=<part>&n=<n> runs one part n times and answers { ms } (the isolate's own clock):
 *   noop     nothing: what the call itself costs
 *   setup    nothing, but sets the bench up (its own key imports, a parsed configuration)
 *   floor    the bare crypto: one RS256 verify and one HS256 sign with WebCrypto, keys imported
 *   verify   verifyIdentity (src/identity/identity.ts): the provider's keys in memory after the first call
 *   ban      banFor (src/bans/bans.ts) against an in-memory KV stand-in: our lookup code, not KV's
 *   sign     grantFor + signAblyToken (src/ably/ably-token.ts)
 *   request  the whole worker: app.fetch of GET /auth, with the same KV stand-in
 *   log      the access log line (src/request/log.ts's middleware around an empty handler): its price
 *   plain    a Response with the JWT's two headers, as a bare worker makes it
 *   secured  the same through respond (src/request/response-headers.ts): + the security headers and request id
 * noop and request need no set-up, so that a fresh isolate's first request is as cold as a real one.
 * The answer also counts the key imports and fetches the parts made (0 expected once warm).
 * GET /kv?ttl=<seconds|none>&n=<n> reads an absent key n times from the real (local) KV binding.
 *
 * Bindings: JWT_ISSUER, JWT_AUDIENCE, JWKS_URL, ABLY_API_KEY, BENCH_TOKEN (an identity token for
 * `sub` BENCH_CLIENT_ID), BENCH_PUBLIC_JWK (the key that signed it), BANS (KV).
 */
import { grantFor, signAblyToken } from "../src/ably/ably-token.ts";
import { banFor } from "../src/bans/bans.ts";
import { loadConfig } from "../src/config.ts";
import { respond } from "../src/request/response-headers.ts";
import { verifyIdentity } from "../src/identity/identity.ts";
import { accessLog } from "../src/request/log.ts";
import app from "../src/index.ts";

/** What KV answers for a user with no ban, without I/O. */
const memoryKv = { get: async () => null };
const NO_PARAMS = { ttlMs: undefined, capability: undefined, clientId: undefined };
const bytes = (text) => new TextEncoder().encode(text);
const fromBase64url = (text) =>
  Uint8Array.from(atob(text.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

const JWT_HEADERS = { "Content-Type": "application/jwt", "Cache-Control": "no-store" };
const REQUEST_ID = "00000000-0000-4000-8000-000000000000";
/** What accessLog reads from a Hono context, for a request that was issued a token. */
const logged = {
  req: { method: "GET", path: "/auth", raw: { cf: { colo: "AMS", country: "NL" } } },
  res: { status: 200, ok: true },
  get: (name) =>
    ({
      requestId: REQUEST_ID,
      outcome: "issued",
      clientId: "bench-user",
      provider: "https://issuer.test/",
      issuer: "https://issuer.test/",
    })[name],
};
const logLine = accessLog();
const done = async () => {};

let bench; // per isolate, made by the first call that needs it
let requestEnv; // the environment of the `request` part

// Counted, to show which calls import a key or fetch: bench-only wrappers, made at global scope.
const made = { importKey: 0, fetch: 0 };
const { importKey } = crypto.subtle;
crypto.subtle.importKey = (...args) => (made.importKey++, importKey.apply(crypto.subtle, args));
const realFetch = globalThis.fetch;
globalThis.fetch = (...args) => (made.fetch++, realFetch(...args));

async function setUp(env) {
  const result = loadConfig({ ...env, BANS: memoryKv });
  if (!result.ok) throw new Error(`bench configuration: ${result.problems.join("; ")}`);
  const { config } = result;
  const [signingInput, signature] = [env.BENCH_TOKEN.split(".").slice(0, 2).join("."), env.BENCH_TOKEN.split(".")[2]];
  const rs256 = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" };
  const hs256 = { name: "HMAC", hash: "SHA-256" };
  return {
    config,
    floor: {
      rsaKey: await crypto.subtle.importKey("jwk", JSON.parse(env.BENCH_PUBLIC_JWK), rs256, false, ["verify"]),
      hmacKey: await crypto.subtle.importKey("raw", bytes(config.ablyKey.secret), hs256, false, ["sign"]),
      signed: bytes(signingInput),
      signature: fromBase64url(signature),
    },
  };
}

const parts = {
  noop: async () => {},
  setup: async () => {},
  floor: async ({ floor }) => {
    if (!(await crypto.subtle.verify("RSASSA-PKCS1-v1_5", floor.rsaKey, floor.signature, floor.signed)))
      throw new Error("floor: bad signature");
    await crypto.subtle.sign("HMAC", floor.hmacKey, floor.signed);
  },
  // ban and sign use the identity the last verify proved (the bench runs verify first).
  verify: async (b, env) => {
    b.identity = await verifyIdentity(env.BENCH_TOKEN, b.config.providers);
  },
  ban: async (b) => {
    const { config, identity } = b;
    if (await banFor(config.bans, identity.clientId, config.banCacheTtlSeconds, config.banListFailOpen))
      throw new Error("ban: banned");
  },
  sign: async (b) => {
    await signAblyToken(grantFor(b.identity, NO_PARAMS, b.config), b.config.ablyKey);
  },
  log: async () => {
    await logLine(logged, done);
  },
  plain: async () => {
    new Response("jwt", { status: 200, headers: JWT_HEADERS });
  },
  secured: async () => {
    respond("jwt", 200, REQUEST_ID, JWT_HEADERS);
  },
  request: async (b, env, ctx) => {
    const request = new Request("https://bench.test/auth", { headers: { Authorization: `Bearer ${env.BENCH_TOKEN}` } });
    const response = await app.fetch(request, (requestEnv ??= { ...env, BANS: memoryKv }), ctx);
    if (response.status !== 200) throw new Error(`request: ${response.status} ${await response.text()}`);
    await response.arrayBuffer();
  },
};

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get("n") ?? 1);
    const name = url.searchParams.get("part");
    if (!["noop", "request", "log", "plain", "secured"].includes(name)) bench ??= await setUp(env);
    const before = { ...made };
    const started = performance.now();
    if (url.pathname === "/kv") {
      const ttl = url.searchParams.get("ttl");
      const options = ttl === "none" ? undefined : { cacheTtl: Number(ttl) };
      for (let i = 0; i < n; i++) await env.BANS.get(env.BENCH_CLIENT_ID, options);
    } else {
      const part = parts[name];
      if (!part) return new Response("unknown part", { status: 404 });
      for (let i = 0; i < n; i++) await part(bench, env, ctx);
    }
    const ms = performance.now() - started;
    return Response.json({ ms, importKey: made.importKey - before.importKey, fetch: made.fetch - before.fetch });
  },
};
