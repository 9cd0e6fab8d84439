/**
 * A local stand-in for Ably's service, since Ably's own cannot run here. It checks a token the way
 * Ably's documentation ("JWT authentication", "Token errors") says Ably checks an Ably JWT:
 *
 *   header `alg` HS256 and `typ` JWT, `kid` the key name (`<appId>.<keyId>`), an HMAC-SHA256
 *   signature by the key secret; claims `iat` and `exp` whole seconds, not expired;
 *   `x-ably-capability` a JSON string, intersected with the key's capability; `x-ably-clientId`.
 *
 * and refuses with Ably's codes: 40144 malformed JWT (bad header, missing kid/iat/exp, wrong alg),
 * 40101 invalid credentials (unknown key, bad signature), 40142 token expired, 40160 capability
 * refused; all with statusCode 401.
 *
 * It serves, on 127.0.0.1, what ably-js v2 (2.28, read in build/ably-node.js) uses:
 * - REST `POST /channels/{name}/messages`: `Authorization: Bearer <base64(jwt)>` as ably-js sends
 *   it, or the raw JWT. 201 when the token may publish there, else Ably's error body and headers.
 * - Realtime over WebSocket at `/?access_token=<jwt>&format=json&...`: CONNECTED with
 *   connectionDetails, or ERROR then close; when the token expires, DISCONNECTED 40142 then close
 *   (the SDK gets a new token and reconnects); an AUTH from the client (`auth.authorize()`)
 *   swaps the token in place and is answered with a new CONNECTED, or ERROR.
 *
 * JSON protocol only: clients must set `useBinaryProtocol: false` (Node's ably-js prefers msgpack).
 * Every token presented is recorded in `seen`, accepted or not, for assertions.
 */
import { createHmac, randomUUID, timingSafeEqual } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { type WebSocket, WebSocketServer } from "ws";

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
  iat: number;
  exp: number;
}

/** One token presented to the fake. */
export interface Seen {
  via: "rest" | "connect" | "auth";
  token: string;
  grant?: AblyGrant;
  error?: AblyError;
}

/** Protocol message actions (ably-js `actions`). */
const Action = { HEARTBEAT: 0, CONNECTED: 4, DISCONNECTED: 6, CLOSE: 7, CLOSED: 8, ERROR: 9, AUTH: 17 };

/** Ably's per-message limit, announced in connectionDetails. */
const MAX_MESSAGE_SIZE = 65_536;
/** Ably's default: how long Ably keeps a disconnected connection's state, in ms. */
const CONNECTION_STATE_TTL_MS = 120_000;
/**
 * 0 turns off ably-js's idle check: the fake sends no heartbeats (Ably announces 15 s and sends
 * one at least that often).
 */
const MAX_IDLE_INTERVAL_MS = 0;
/** An `iat`/`exp` above this is in milliseconds, not seconds (10^11 s is the year 5138). */
const LARGEST_SECONDS = 1e11;

const error = (code: number, message: string): AblyError => ({ code, statusCode: 401, message });

export async function startFakeAbly(apiKey: string, keyCapability: Capability) {
  const [keyName, secret] = apiKey.split(":") as [string, string];
  const seen: Seen[] = [];

  /** The check of a JWT: form and header, key, signature, times, capability, clientId. */
  function check(token: string): AblyGrant | AblyError {
    const [head, body, signature, extra] = token.split(".");
    if (head === undefined || body === undefined || signature === undefined || extra !== undefined) {
      return error(40144, "Invalid JWT: not three dot-separated parts");
    }
    const header = decodePart(head);
    const claims = decodePart(body);
    if (!header || !claims) return error(40144, "Invalid JWT: header or payload is not base64url JSON");
    if (header.alg !== "HS256") return error(40144, `Invalid JWT: unsupported alg ${String(header.alg)}`);
    if (header.typ !== "JWT") return error(40144, "Invalid JWT: typ must be JWT");
    if (typeof header.kid !== "string") return error(40144, "Invalid JWT: no kid");
    if (header.kid !== keyName) return error(40101, "Invalid credentials: no such key");
    const expected = createHmac("sha256", secret).update(`${head}.${body}`).digest();
    const actual = Buffer.from(signature, "base64url");
    if (actual.length !== expected.length || !timingSafeEqual(actual, expected)) {
      return error(40101, "Invalid credentials: signature verification failed");
    }
    const { iat, exp } = claims;
    if (!isSeconds(iat) || !isSeconds(exp)) {
      return error(40144, "Invalid JWT: iat and exp must be whole seconds");
    }
    if (exp * 1000 <= Date.now()) return error(40142, "Token expired");
    const requested = parseCapability(claims["x-ably-capability"]);
    if (!requested) return error(40144, "Invalid JWT: x-ably-capability must be a capability as a JSON string");
    const capability = withinKey(requested);
    if (Object.keys(capability).length === 0) {
      return error(40160, "Capability refused: nothing of it is in the key's capability");
    }
    const clientId = claims["x-ably-clientId"];
    if (clientId !== undefined && typeof clientId !== "string") {
      return error(40144, "Invalid JWT: x-ably-clientId must be a string");
    }
    return { clientId, capability, iat, exp };
  }

  /** Checks and records one presented token. */
  function present(via: Seen["via"], token: string): AblyGrant | AblyError {
    const result = check(token);
    seen.push("code" in result ? { via, token, error: result } : { via, token, grant: result });
    return result;
  }

  /**
   * The token's entries the key's capability covers: Ably's intersection for a key whose
   * resources are as wide as or wider than the token's (such as `{"*":["*"]}`), all this fake needs.
   */
  function withinKey(requested: Capability): Capability {
    const result: Capability = {};
    for (const [resource, ops] of Object.entries(requested)) {
      const allowed = ops.filter((op) =>
        Object.entries(keyCapability).some(([keyResource, keyOps]) => covers(keyResource, resource) && allowsOp(keyOps, op)),
      );
      if (allowed.length > 0) result[resource] = allowed;
    }
    return result;
  }

  const server = createServer((req, res) => void rest(req, res));

  async function rest(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", "http://fake");
    const channel = /^\/channels\/([^/]+)\/messages$/.exec(url.pathname)?.[1];
    for await (const _ of req); // drain the body; its messages are not checked
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      // Exactly application/json: ably-js parses an error body only for that type.
      res.writeHead(status, { "Content-Type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
    const refuse = (e: AblyError) =>
      answer(e.statusCode, { error: e }, { "X-Ably-Errorcode": String(e.code), "X-Ably-Errormessage": e.message });
    if (req.method !== "POST" || channel === undefined) {
      return answer(404, { error: { code: 40400, statusCode: 404, message: "Not found" } });
    }
    const credential = /^Bearer (\S+)$/.exec(req.headers.authorization ?? "")?.[1];
    if (credential === undefined) return refuse(error(40101, "Invalid credentials: no token"));
    // ably-js base64-encodes the token; a raw JWT has dots, which base64 never does.
    const token = credential.includes(".") ? credential : Buffer.from(credential, "base64").toString();
    const result = present("rest", token);
    if ("code" in result) return refuse(result);
    const name = decodeURIComponent(channel);
    if (!allows(result.capability, name, "publish")) {
      return refuse(error(40160, `Capability refused: publish on channel ${name}`));
    }
    answer(201, { channel: name, messageId: randomUUID() });
  }

  const wss = new WebSocketServer({ server });
  wss.on("connection", (ws, req) => realtime(ws, new URL(req.url ?? "/", "ws://fake").searchParams));

  function realtime(ws: WebSocket, params: URLSearchParams) {
    const send = (message: object) => ws.send(JSON.stringify(message));
    const fail = (action: number, e: AblyError) => {
      send({ action, error: e });
      ws.close();
    };
    if (params.get("format") !== "json") {
      return ws.close(1003, "JSON protocol only: set useBinaryProtocol: false");
    }
    const connectionId = randomUUID();
    let expiry: NodeJS.Timeout | undefined;
    ws.on("close", () => clearTimeout(expiry));

    /** CONNECTED for a valid token, with a timer that disconnects the client when it expires. */
    const accept = (via: "connect" | "auth", token: string) => {
      const result = present(via, token);
      // Ably answers a bad token with ERROR; ably-js then renews on a token error (4014x), else fails.
      if ("code" in result) return fail(Action.ERROR, result);
      clearTimeout(expiry);
      expiry = setTimeout(
        () => fail(Action.DISCONNECTED, error(40142, "Token expired")),
        result.exp * 1000 - Date.now(),
      );
      send({
        action: Action.CONNECTED,
        connectionId,
        connectionDetails: {
          clientId: result.clientId,
          connectionKey: `${connectionId}!key`,
          maxMessageSize: MAX_MESSAGE_SIZE,
          connectionStateTtl: CONNECTION_STATE_TTL_MS,
          maxIdleInterval: MAX_IDLE_INTERVAL_MS,
          serverId: "fake-ably",
        },
      });
    };

    ws.on("message", (data: Buffer) => {
      const message = parseObject(data.toString()) as { action?: number; id?: string; auth?: { accessToken?: string } } | null;
      if (message?.action === Action.HEARTBEAT) send({ action: Action.HEARTBEAT, id: message.id });
      if (message?.action === Action.AUTH) accept("auth", message.auth?.accessToken ?? "");
      if (message?.action === Action.CLOSE) {
        send({ action: Action.CLOSED });
        ws.close();
      }
    });
    accept("connect", params.get("access_token") ?? "");
  }

  server.listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as AddressInfo;

  return {
    port,
    /** What ably-js needs to talk to this fake instead of Ably (read in ably-node.js `normaliseOptions`). */
    clientOptions: { endpoint: "127.0.0.1", port, tls: false, fallbackHosts: [] as string[], useBinaryProtocol: false },
    /** Every token presented, in order. */
    seen,
    /** The grants of the tokens accepted for `clientId`, in order. */
    accepted: (clientId: string) =>
      seen.filter((s) => s.grant?.clientId === clientId).map((s) => ({ via: s.via, token: s.token, ...s.grant! })),
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(resolve));
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export type FakeAbly = Awaited<ReturnType<typeof startFakeAbly>>;

/** Whether `capability` allows `op` on the channel `name` (exact name or a wildcard resource). */
function allows(capability: Capability, name: string, op: string): boolean {
  return Object.entries(capability).some(([resource, ops]) => covers(resource, name) && allowsOp(ops, op));
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
function parseObject(text: string): Record<string, unknown> | null {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

const decodePart = (part: string) => parseObject(Buffer.from(part, "base64url").toString());

/** A capability given as a JSON string: resources mapped to non-empty lists of operations. */
function parseCapability(json: unknown): Capability | null {
  const value = typeof json === "string" ? parseObject(json) : null;
  const entries = Object.entries(value ?? {});
  const valid = entries.every(([, ops]) => Array.isArray(ops) && ops.length > 0 && ops.every((op) => typeof op === "string"));
  return valid && entries.length > 0 ? (value as Capability) : null;
}
