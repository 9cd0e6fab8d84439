/**
 * What every route's context holds, and the middleware that fills it (the configuration) or gates
 * it (allowed methods). Shared by the auth route and the admin API.
 */
import type { MiddlewareHandler } from "hono";
import { type Config, loadConfig } from "../config";
import { Problem } from "../errors";
import type { LogFields } from "./log";
import type { Moderator } from "../bans/moderator";

/** `moderator` is set on admin routes only, by adminAuth. */
export type AppEnv = { Bindings: Env; Variables: LogFields & { config: Config; moderator: Moderator } };

/** 405 for any other method. HEAD too: Hono would otherwise run the GET handler and mint a token. */
export function allowMethods(methods: readonly string[]): MiddlewareHandler<AppEnv> {
  const allow = methods.join(", ");
  return async function allowMethods(c, next) {
    if (!methods.includes(c.req.method)) {
      throw new Problem("method-not-allowed", `Use ${allow}.`, { Allow: allow });
    }
    await next();
  };
}

/** The environments whose configuration was logged: shared by every withConfig(), one line an isolate. */
const logged = new WeakSet<object>();

/**
 * Puts the parsed configuration on the context, or answers 500. Every problem (and warning, such
 * as rate limiting being off) is logged once per isolate.
 */
export function withConfig(): MiddlewareHandler<AppEnv> {
  return async function withConfig(c, next) {
    const result = loadConfig(c.env);
    if (!logged.has(c.env)) {
      logged.add(c.env);
      if (!result.ok) console.error({ misconfigured: result.problems });
      else if (result.warnings.length > 0) console.warn({ warnings: result.warnings });
    }
    if (!result.ok) {
      throw new Problem("misconfigured", "The auth endpoint is misconfigured; its operator has been told why.");
    }
    c.set("config", result.config);
    await next();
  };
}
