/**
 * Shared by the worker suite: the environment (real local KV, the bindings from vitest.config.ts),
 * identity tokens from the stand-in provider's keys, and calls into the worker.
 */
import { env } from "cloudflare:workers";
import worker from "../../src/index";
import { verifyAblyToken } from "../support/ably-token";
import type { SigningKeys } from "../support/identity-provider";
import { identityToken, type TokenOptions } from "../support/tokens";

export const testEnv = env as unknown as Record<string, unknown> & { BANS: KVNamespace };
export const keys = JSON.parse(testEnv.TEST_SIGNING_KEYS as string) as SigningKeys;
export const ISSUER = testEnv.JWT_ISSUER as string;
export const AUDIENCE = testEnv.JWT_AUDIENCE as string;
export const ALLOWED_ORIGIN = "https://app.example";
const ABLY_KEY = testEnv.ABLY_API_KEY as string;

/** An identity token from the configured provider, valid unless options say otherwise. */
export const token = (options?: TokenOptions) =>
  identityToken({ issuer: ISSUER, audience: AUDIENCE, key: keys.rsa }, options);

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
export function call(path: string, init: RequestInit = {}, overrides?: Record<string, unknown>) {
  return worker.fetch(new Request(`https://auth.test${path}`, init), overrides ? envWith(overrides) : env);
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

/** Verifies an issued token the way Ably does (test/support/ably-token.ts) and returns its claims. */
export const verifyAsAbly = (jwt: string) => verifyAblyToken(jwt, ABLY_KEY);

/** The problem document of a failed response, after checking it is one. */
export async function problemOf(response: Response) {
  if (response.headers.get("content-type") !== "application/problem+json") {
    throw new Error(`not a problem document: ${response.status} ${response.headers.get("content-type")}`);
  }
  return response.json<{ type: string; title: string; status: number; detail: string }>();
}
