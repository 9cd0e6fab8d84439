/**
 * The edge auth endpoint for Ably. The whole request path, in order:
 *
 *   method → configuration → origin → sizes → identity token present → token parameters
 *   → identity verified → not banned → clientId and capability → Ably JWT signed → answer
 *
 * Each step is a call into the module named for it; the first failure answers, as a problem
 * document built in errors.ts.
 */
import { Hono } from "hono";
import { requestId } from "hono/request-id";
import { grantFor, signAblyToken } from "./ably-token";
import { admin, adminAuth } from "./admin";
import { banFor, bannedRole } from "./bans";
import { loadConfig } from "./config";
import { type AppEnv, allowMethods, withConfig } from "./context";
import { originGuard } from "./cors";
import { Problem, problemResponse } from "./errors";
import { identityToken, verifyIdentity } from "./identity";
import { accessLog } from "./log";
import { readTokenParams, sizeLimits } from "./params";

const app = new Hono<AppEnv>();

app.use(accessLog(), requestId());

app.onError((error, c) => {
  const problem =
    error instanceof Problem
      ? error
      : new Problem("internal-error", "Something went wrong; it has been logged.");
  if (!(error instanceof Problem)) {
    // Name and message only: no request data, so no token can reach the log.
    console.error(JSON.stringify({ requestId: c.get("requestId"), error: `${error.name}: ${error.message}` }));
  }
  c.set("outcome", problem.code);
  return problemResponse(c, problem, c.get("requestId"));
});

app.notFound(() => {
  throw new Problem("not-found", "The endpoints are /auth, /healthz and, when enabled, /admin/bans.");
});

app.get("/healthz", (c) => {
  const result = loadConfig(c.env);
  return result.ok
    ? c.json({ status: "ok" })
    : c.json({ status: "misconfigured", problems: result.problems }, 503);
});

app.use("/auth", allowMethods(["GET", "POST", "OPTIONS"]), withConfig(), originGuard(), sizeLimits());

// A preflight from an allowed origin is answered by originGuard; this is one without Origin.
app.options("/auth", (c) => c.body(null, 204, { Allow: "GET, POST, OPTIONS" }));

app.on(["GET", "POST"], "/auth", async (c) => {
  const config = c.get("config");
  const token = identityToken(c, config.identityCookie);
  const params = await readTokenParams(c);
  const identity = await verifyIdentity(token, config.providers[0]!);
  c.set("clientId", identity.clientId);
  c.set("issuer", identity.issuer);

  const role = bannedRole(identity.roles, config.bannedRolePattern);
  if (role !== undefined) throw new Problem("user-banned", `You are banned (role ${role}).`);
  const ban = await banFor(config.bans, identity.clientId, config.banCacheTtlSeconds);
  if (ban) {
    throw new Problem(
      "user-banned",
      ban.reason ? `You are banned: ${ban.reason}` : "You are banned from this app.",
    );
  }

  const jwt = await signAblyToken(grantFor(identity, params, config), config.ablyKey);
  c.set("outcome", "issued");
  return c.body(jwt, 200, { "Content-Type": "application/jwt", "Cache-Control": "no-store" });
});

app.use("/admin/*", withConfig(), adminAuth(), sizeLimits());
app.route("/admin", admin);

export default app;
