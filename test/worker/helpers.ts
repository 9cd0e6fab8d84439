/**
 * Shared by the worker suite: the environment (real local KV, the bindings from vitest.config.ts),
 * identity tokens from the stand-in provider's keys, and calls into the worker.
 */
import { listDurableObjectIds, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { PROBLEM_TYPE_PREFIX } from "../../src/errors";
import worker from "../../src/index";
import { verifyAblyToken } from "../support/ably-token";
import type { SigningKeys } from "../support/identity-provider";
import { identityToken, type TokenOptions } from "../support/tokens";

const realEnv = env as unknown as Record<string, unknown> & {
  BANS: KVNamespace;
  BAN_REVOCATIONS: Env["BAN_REVOCATIONS"];
};
/** The rate limiters of wrangler.toml, as Miniflare runs them; only the rate-limit tests use them. */
export const rateLimiters = {
  IP_RATE_LIMITER: realEnv.IP_RATE_LIMITER,
  USER_RATE_LIMITER: realEnv.USER_RATE_LIMITER,
};
/**
 * The environment the other tests run in: the real one (real local KV) without rate limits, so
 * the suite's hundreds of requests for "alice" are never limited.
 */
export const testEnv: typeof realEnv = {
  ...realEnv,
  IP_RATE_LIMITER: undefined,
  USER_RATE_LIMITER: undefined,
};
export const keys = JSON.parse(testEnv.TEST_SIGNING_KEYS as string) as SigningKeys;
export const ISSUER = testEnv.JWT_ISSUER as string;
export const AUDIENCE = testEnv.JWT_AUDIENCE as string;
export const ALLOWED_ORIGIN = "https://app.example";
const ABLY_KEY = testEnv.ABLY_API_KEY as string;

/**
 * What the suite must never see leak: every identity token it made and every response body it got
 * (checked against logs and bodies by setup.ts after each file).
 */
export const seen = { identityTokens: [] as string[], secrets: [] as string[], bodies: [] as string[] };

/** An identity token from the configured provider, valid unless options say otherwise. */
export async function token(options?: TokenOptions): Promise<string> {
  const jwt = await identityToken({ issuer: ISSUER, audience: AUDIENCE, key: keys.rsa }, options);
  seen.identityTokens.push(jwt);
  return jwt;
}

const variants = new Map<string, object>();
/** The test environment with some variables changed; one object per variant, as in an isolate. */
export function envWith(overrides: Record<string, unknown>): object {
  const id = JSON.stringify(Object.entries(overrides)); // entries keep keys whose value is undefined
  let variant = variants.get(id);
  if (!variant) {
    variant = { ...testEnv, ...overrides };
    variants.set(id, variant);
  }
  return variant;
}

/** Calls the worker as a client would: `path` on its origin, optional environment overrides. */
export async function call(path: string, init: RequestInit = {}, overrides: Record<string, unknown> = {}) {
  const response = await worker.fetch(new Request(`https://auth.test${path}`, init), envWith(overrides));
  // An issued Ably token is meant to be seen; any other body must leak nothing.
  if (response.headers.get("content-type") !== "application/jwt") {
    seen.bodies.push(await response.clone().text());
  }
  return response;
}

/** GET /auth with `Authorization: Bearer <jwt>` and optional query and headers. */
export async function getToken(
  jwt: string,
  query = "",
  headers: Record<string, string> = {},
  overrides?: Record<string, unknown>,
) {
  return call(`/auth${query}`, { headers: { Authorization: `Bearer ${jwt}`, ...headers } }, overrides);
}

/** POST /auth with `body`, as ably-js sends token parameters with authMethod "POST". */
export function postToken(jwt: string, body: string, type = "application/x-www-form-urlencoded", path = "/auth") {
  return call(path, { method: "POST", headers: { Authorization: `Bearer ${jwt}`, "Content-Type": type }, body });
}

/** A response's body as text, read as bytes: workerd warns about `.text()` on an `application/jwt` body. */
export const bodyOf = async (response: Response) => new TextDecoder().decode(await response.arrayBuffer());

/** Verifies an issued token (or the response holding it) the way Ably does (test/support/ably-token.ts) and returns its claims. */
export const verifyAsAbly = async (jwt: string | Response) =>
  verifyAblyToken(typeof jwt === "string" ? jwt : await bodyOf(jwt), ABLY_KEY);

/** The problem document of a failed response, after checking it is one. */
export async function problemOf(response: Response) {
  if (response.headers.get("content-type") !== "application/problem+json") {
    throw new Error(`not a problem document: ${response.status} ${response.headers.get("content-type")}`);
  }
  return response.json<{ type: string; title: string; status: number; detail: string }>();
}

/** The problem code of a failed response (`user-banned`, ...), after checking it is a problem document. */
export const problemCode = async (response: Response) =>
  (await problemOf(response)).type.slice(PROBLEM_TYPE_PREFIX.length);

/** How often each host and path of the stand-in identity providers has been fetched (`idp.test/jwks` → 3). */
export const providerFetches = async (): Promise<Record<string, number>> => ({
  ...(await (await fetch("https://idp.test/__fetches")).json<Record<string, number>>()),
  ...(await (await fetch("https://providers.test/__fetches")).json<Record<string, number>>()),
});

/** Every ban-revocation object's alarm and storage deleted, so that no alarm outlives its test. */
export async function clearBanRevocations(): Promise<void> {
  const namespace = realEnv.BAN_REVOCATIONS;
  for (const id of await listDurableObjectIds(namespace)) {
    await runInDurableObject(namespace.get(id), async (_, state) => {
      await state.storage.deleteAlarm();
      await state.storage.deleteAll();
    });
  }
}

/**
 * Calls the admin API as a moderator with `overrides.ADMIN_TOKEN` (which turns it on): `path` under
 * /admin, `body` sent as JSON (a string is sent as it is, for malformed bodies).
 */
export function adminCall(method: string, path: string, body: unknown, overrides: Record<string, unknown>) {
  return call(
    `/admin${path}`,
    {
      method,
      headers: {
        Authorization: `Bearer ${String(overrides.ADMIN_TOKEN)}`,
        ...(body === undefined ? {} : { "Content-Type": "application/json" }),
      },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    },
    overrides,
  );
}
