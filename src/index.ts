/**
 * The edge auth endpoint for Ably. The whole request path, in order:
 *
 *   method → configuration → origin → sizes → identity token present → per-IP rate limit
 *   → token parameters → identity verified → per-user rate limit → not banned (role, then KV)
 *   → clientId and capability → Ably JWT signed → answer
 *
 * Each step is a call into the module named for it; the first failure answers, as a problem
 * document built in errors.ts.
 */
import type { Context } from "hono";
// hono/tiny: the PatternRouter, a regular expression per route made as it is added, so Hono builds
// no matcher on the first request; 2.5 KiB gzip smaller than the default router (docs/performance.md).
import { Hono } from "hono/tiny";
import { grantFor, signAblyToken } from "./ably/ably-token";
import { admin, adminAuth, adminOn } from "./bans/admin";
import { refuseBanned } from "./bans/bans";
import { loadConfig } from "./config";
import { CONSOLE_PATHS, serveConsole } from "./console";
import { type AppEnv, allowMethods, withConfig } from "./request/context";
import { originGuard } from "./request/cors";
import { Problem, problemResponse } from "./errors";
import { apiHeaders, respond } from "./request/response-headers";
import { identityToken, verifyIdentity } from "./identity/identity";
import { accessLog } from "./request/log";
import { readTokenParams, sizeLimits } from "./request/params";
import { enforceRateLimit } from "./request/rate-limit";

const app = new Hono<AppEnv>();

const JWT_HEADERS = { "Content-Type": "application/jwt", "Cache-Control": "no-store" };

// The request id and the security headers on every response (response-headers.ts); the log line times it all.
app.use(accessLog(), apiHeaders());

app.onError((error, c) => {
  if (error instanceof Problem) return answer(c, error);
  // Name and message only: no request data, so no token can reach the log.
  console.error({ requestId: c.get("requestId"), error: `${error.name}: ${error.message}` });
  return answer(c, new Problem("internal-error", "Something went wrong; it has been logged."));
});

// Answered, not thrown: a throw here would skip the middleware that runs after the handler.
app.notFound((c) =>
  answer(
    c,
    new Problem(
      "not-found",
      "The endpoints are /auth, /healthz and, with the admin API on, /admin/ (the console) and /admin/bans.",
    ),
  ),
);

function answer(c: Context<AppEnv>, problem: Problem): Response {
  c.set("outcome", problem.code);
  return problemResponse(c, problem, c.get("requestId"));
}

app.get("/healthz", (c) => {
  const result = loadConfig(c.env);
  return result.ok ? c.json({ status: "ok" }) : c.json({ status: "misconfigured", problems: result.problems }, 503);
});

app.use("/auth", allowMethods(["GET", "POST", "OPTIONS"]), withConfig(), originGuard(), sizeLimits());

// originGuard answers a preflight from an allowed origin with its CORS headers; what reaches this
// handler is an OPTIONS without Origin, or from the worker's own origin, which needs none.
app.options("/auth", (c) => c.body(null, 204, { Allow: "GET, POST, OPTIONS" }));

app.on(["GET", "POST"], "/auth", async (c) => {
  const config = c.get("config");
  // Before the IP limit: a request without a usable token (an <img> on any page) must not use it up.
  const token = identityToken(c, config.identityCookie, config.identityHeader);
  // On Cloudflare the edge sets CF-Connecting-IP; without it (local runs) there is no IP to limit.
  const ip = c.req.header("CF-Connecting-IP");
  if (ip) await enforceRateLimit(config.ipRateLimiter, ip, "from this IP address");
  const params = await readTokenParams(c);
  const identity = await verifyIdentity(token, config.providers, (provider) => c.set("provider", provider.name));
  c.set("clientId", identity.clientId);
  c.set("issuer", identity.provider.issuer);
  await enforceRateLimit(config.userRateLimiter, identity.clientId, "for this user");

  await refuseBanned(identity, config);
  const jwt = await signAblyToken(grantFor(identity, params, config), config.ablyKey);
  c.set("outcome", "issued");
  return respond(jwt, 200, c.get("requestId"), JWT_HEADERS);
});

app.use("/admin/*", withConfig(), adminOn());
// The moderation console's files come before the admin API's moderator check: the page holds no
// secret, and every call it makes is authenticated (console.ts).
app.on("GET", CONSOLE_PATHS, serveConsole());
app.use("/admin/*", adminAuth(), sizeLimits());
app.route("/admin", admin);

export default app;
// The Durable Object classes behind the BAN_REVOCATIONS and BAN_INDEX bindings: workerd finds them among the exports.
export { BanRevocations } from "./bans/ban-revocations";
export { BanIndex } from "./bans/ban-index";
