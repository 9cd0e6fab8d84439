/**
 * The Ably TokenParams a client sends with its request (ably-js: the query string on GET, a
 * form-encoded body on POST). Untrusted: they may only narrow what is granted, and only their
 * syntax is checked here. Unknown parameters (`rnd`, `timestamp`, `nonce`, authParams) are ignored.
 */
import type { Context, MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { type Capability, CapabilityError, parseCapability } from "../ably/capability";
import { MAX_BODY_BYTES, MAX_CAPABILITY_BYTES, MAX_QUERY_BYTES } from "../constants";
import { Problem } from "../errors";
import { mediaType } from "./request-headers";
import { fromUtf8, utf8 } from "../validate";

export interface TokenParams {
  /** Requested lifetime, in milliseconds, as Ably's TokenParams.ttl. */
  readonly ttlMs: number | undefined;
  readonly capability: Capability | undefined;
  readonly clientId: string | undefined;
}

const FORM = "application/x-www-form-urlencoded";

/** Reads and checks the syntax of the token parameters. Body size is bounded before this runs. */
export async function readTokenParams(c: Context): Promise<TokenParams> {
  return parseTokenParams(await rawParams(c));
}

/** Bounds the query string and the body before anything parses them (413). */
export function sizeLimits(): MiddlewareHandler {
  const limitBody = bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () => {
      throw new Problem("request-too-large", `The body is larger than ${MAX_BODY_BYTES} bytes.`);
    },
  });
  return async function sizeLimits(c, next) {
    // A URL's search is percent-encoded ASCII: its length is its size in bytes.
    if (searchOf(c.req.url).length > MAX_QUERY_BYTES) {
      throw new Problem("request-too-large", `The query string is longer than ${MAX_QUERY_BYTES} bytes.`);
    }
    return limitBody(c, next);
  };
}

/**
 * The query string of a request's URL, from its `?` up to any `#`: what `new URL(url).search` gives
 * but for a lone `?`, without parsing the whole URL again (a request's url is already serialized,
 * percent-encoded), which cost two URL parses a request (the profile in docs/performance.md).
 */
function searchOf(url: string): string {
  const hash = url.indexOf("#");
  const end = hash === -1 ? url.length : hash;
  const at = url.indexOf("?");
  return at === -1 || at > end ? "" : url.slice(at, end);
}

async function rawParams(c: Context): Promise<URLSearchParams> {
  if (c.req.method !== "POST") return new URLSearchParams(searchOf(c.req.url));
  const type = c.req.header("Content-Type");
  // Bytes, decoded here: workerd warns on .text() of a form body, which it does not count as text.
  const body = fromUtf8(await c.req.arrayBuffer());
  if (type === undefined && body === "") return new URLSearchParams();
  if (mediaType(type) !== FORM) {
    throw new Problem("unsupported-media-type", `POST token parameters must be sent as ${FORM}.`);
  }
  return new URLSearchParams(body);
}

/** Checks the syntax of ttl, capability and clientId. Exported for property tests. */
export function parseTokenParams(params: URLSearchParams): TokenParams {
  const one = (name: string): string | undefined => {
    const values = params.getAll(name);
    if (values.length > 1) throw invalid(`${name} is given more than once.`);
    return values[0];
  };
  const ttl = one("ttl");
  const capability = one("capability");
  const clientId = one("clientId");
  return {
    ttlMs: ttl === undefined ? undefined : parseTtl(ttl),
    capability: capability === undefined ? undefined : parseRequestedCapability(capability),
    clientId,
  };
}

function parseTtl(raw: string): number {
  const ms = /^\d+$/.test(raw) ? Number(raw) : NaN;
  if (!(ms >= 1000)) throw invalid("ttl must be a whole number of milliseconds, at least 1000.");
  return ms;
}

function parseRequestedCapability(raw: string): Capability {
  if (utf8(raw).length > MAX_CAPABILITY_BYTES) {
    throw invalid(`capability is longer than ${MAX_CAPABILITY_BYTES} bytes (UTF-8).`);
  }
  try {
    return parseCapability(raw);
  } catch (error) {
    if (error instanceof CapabilityError) throw invalid(`capability ${error.message}.`);
    throw error;
  }
}

const invalid = (detail: string) => new Problem("parameter-invalid", detail);
