/**
 * How Ably checks an Ably JWT and a capability, as its documentation says ("JWT authentication",
 * "Token errors", "Capabilities"): header `alg` HS256 and `typ` JWT, `kid` the key name
 * (`<appId>.<keyId>`), an HMAC-SHA256 signature by the key secret; claims `iat` and `exp` whole
 * seconds, not expired; `x-ably-capability` a JSON string, intersected with the key's capability;
 * `x-ably-clientId` a string when present. Refusals carry Ably's codes, all with statusCode 401:
 * 40144 malformed JWT, 40101 invalid credentials (unknown key, bad signature), 40142 expired,
 * 40160 capability refused.
 */
import { createHmac, timingSafeEqual } from "node:crypto";

export type Capability = Record<string, string[]>;

/** An Ably error, as it travels in a REST error body or a protocol message. */
export interface AblyError {
  code: number;
  statusCode: number;
  message: string;
}

/** What an accepted token grants once checked. */
export interface AblyGrant {
  clientId: string | undefined;
  /** The token's capability intersected with the key's. */
  capability: Capability;
  /** Seconds since the epoch. */
  iat: number;
  /** Seconds since the epoch. */
  exp: number;
}

/** An `iat`/`exp` above this is in milliseconds, not seconds (10^11 s is the year 5138). */
const LARGEST_SECONDS = 1e11;

export const ablyError = (code: number, message: string, statusCode = 401): AblyError => ({
  code,
  statusCode,
  message,
});

export const isError = (result: AblyGrant | AblyError): result is AblyError => "code" in result;

/** Checks a JWT against the API key `<keyName>:<secret>` whose capability is `keyCapability`. */
export function checkToken(token: string, apiKey: string, keyCapability: Capability): AblyGrant | AblyError {
  const [keyName, secret] = apiKey.split(":") as [string, string];
  const [head, body, signature, extra] = token.split(".");
  if (head === undefined || body === undefined || signature === undefined || extra !== undefined) {
    return ablyError(40144, "Invalid JWT: not three dot-separated parts");
  }
  const header = decodePart(head);
  const claims = decodePart(body);
  if (!header || !claims) return ablyError(40144, "Invalid JWT: header or payload is not base64url JSON");
  if (header.alg !== "HS256") return ablyError(40144, `Invalid JWT: unsupported alg ${String(header.alg)}`);
  if (header.typ !== "JWT") return ablyError(40144, "Invalid JWT: typ must be JWT");
  if (typeof header.kid !== "string") return ablyError(40144, "Invalid JWT: no kid");
  if (header.kid !== keyName) return ablyError(40101, "Invalid credentials: no such key");
  const expected = createHmac("sha256", secret).update(`${head}.${body}`).digest();
  const actual = Buffer.from(signature, "base64url");
  if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
    return ablyError(40101, "Invalid credentials: signature verification failed");
  }
  const { iat, exp } = claims;
  if (!isSeconds(iat) || !isSeconds(exp)) return ablyError(40144, "Invalid JWT: iat and exp must be whole seconds");
  if (exp * 1000 <= Date.now()) return ablyError(40142, "Token expired");
  const requested = parseCapability(claims["x-ably-capability"]);
  if (!requested) return ablyError(40144, "Invalid JWT: x-ably-capability must be a capability as a JSON string");
  const capability = withinKey(requested, keyCapability);
  if (Object.keys(capability).length === 0) {
    return ablyError(40160, "Capability refused: nothing of it is in the key's capability");
  }
  const clientId = claims["x-ably-clientId"];
  if (clientId !== undefined && typeof clientId !== "string") {
    return ablyError(40144, "Invalid JWT: x-ably-clientId must be a string");
  }
  return { clientId, capability, iat, exp };
}

/** Whether `capability` allows `op` on the channel `name` (exact name or a wildcard resource). */
export function allows(capability: Capability, name: string, op: string): boolean {
  return Object.entries(capability).some(([resource, ops]) => covers(resource, name) && allowsOp(ops, op));
}

/** Whether `capability` allows anything at all on the channel `name`: what attaching needs. */
export const allowsAny = (capability: Capability, name: string): boolean =>
  Object.keys(capability).some((resource) => covers(resource, name));

/**
 * The token's entries the key's capability covers: Ably's intersection for a key whose resources
 * are as wide as or wider than the token's (such as `{"*":["*"]}`), all a stand-in needs.
 */
function withinKey(requested: Capability, keyCapability: Capability): Capability {
  const result: Capability = {};
  for (const [resource, ops] of Object.entries(requested)) {
    const allowed = ops.filter((op) =>
      Object.entries(keyCapability).some(
        ([keyResource, keyOps]) => covers(keyResource, resource) && allowsOp(keyOps, op),
      ),
    );
    if (allowed.length > 0) result[resource] = allowed;
  }
  return result;
}

/** Ably's resource wildcards: `[*]*` every channel, `*` every unqualified one, `ns:*` a namespace. */
function covers(resource: string, name: string): boolean {
  if (resource === name || resource === "[*]*") return true;
  if (name.startsWith("[")) return false;
  return resource === "*" || (resource.endsWith(":*") && name.startsWith(resource.slice(0, -1)));
}

const allowsOp = (ops: string[], op: string) => ops.includes("*") || ops.includes(op);

const isSeconds = (t: unknown): t is number =>
  typeof t === "number" && Number.isInteger(t) && t > 0 && t < LARGEST_SECONDS;

/** A JSON object, or null for anything else. */
export function parseObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : null;
  } catch {
    return null;
  }
}

const decodePart = (part: string) => parseObject(Buffer.from(part, "base64url").toString());

/** A capability given as a JSON string: resources mapped to non-empty lists of operations. */
function parseCapability(json: unknown): Capability | null {
  const value = typeof json === "string" ? parseObject(json) : null;
  const entries = Object.entries(value ?? {});
  const valid = entries.every(
    ([, ops]) => Array.isArray(ops) && ops.length > 0 && ops.every((op) => typeof op === "string"),
  );
  return valid && entries.length > 0 ? (value as Capability) : null;
}
