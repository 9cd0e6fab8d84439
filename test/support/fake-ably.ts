/**
 * A local stand-in for Ably's service, since Ably's own cannot run here. It checks a token the way
 * Ably's documentation ("JWT authentication", "Token errors") says Ably checks an Ably JWT:
 *
 *   header `alg` HS256 and `typ` JWT, `kid` the key name (`<appId>.<keyId>`), an HMAC-SHA256
 *   signature by the key secret; claims `iat` and `exp` whole seconds, not expired;
 *   `x-ably-capability` a JSON string, intersected with the key's capability; `x-ably-clientId`.
 *
 * and refuses with Ably's codes: 40144 malformed JWT (bad header, missing kid/iat/exp, wrong alg),
 * 40101 invalid credentials (unknown key, bad signature), 40142 token expired, 40141 token revoked,
 * 40160 capability refused; all with statusCode 401.
 *
 * Token revocation as Ably documents it ("Token revocation"; REST `POST /keys/{keyName}/revokeTokens`):
 * HTTP basic auth with the key, `{ "targets": ["clientId:<id>"], "issuedBefore"?: <ms> }`;
 * `issuedBefore` defaults to the time of the call and is refused in the future or more than 1 h
 * back. It revokes the tokens of that clientId issued before it (`iat` × 1000 < `issuedBefore`): a
 * live connection holding one gets DISCONNECTED 40141 (ably-js then fetches a new token and
 * reconnects), and such a token is refused with 40141 from then on. A token issued later is untouched.
 * Only `clientId:` targets are acted on (the others are answered, as Ably would, and recorded).
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
 * Every token presented is recorded in `seen`, accepted or not, for assertions; `log` holds those,
 * the revocations, the connections cut and the tests' own marks in the order they happened.
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

/** One happening at the fake, for assertions on the order of things. */
export type Event =
  | ({ kind: "token" } & Seen)
  | { kind: "revocation"; target: string; issuedBefore: number }
  | { kind: "cut"; clientId: string | undefined; token: string; code: number }
  | { kind: "mark"; label: string };

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
/** Ably refuses a revocation's `issuedBefore` further back than this, in ms (1 h). */
const MAX_ISSUED_BEFORE_AGE_MS = 3_600_000;

const error = (code: number, message: string): AblyError => ({ code, statusCode: 401, message });

export async function startFakeAbly(apiKey: string, keyCapability: Capability) {
  const [keyName, secret] = apiKey.split(":") as [string, string];
  const seen: Seen[] = [];
  const log: Event[] = [];
  /** clientId → the latest `issuedBefore` it was revoked with: tokens issued before it are refused. */
  const revokedBefore = new Map<string, number>();
  /** The live Realtime connections: their current token's grant, and how to cut them. */
  const live = new Set<{ grant: () => AblyGrant | undefined; cut: (e: AblyError) => void; token: () => string }>();

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
    const grant = { clientId, capability, iat, exp };
    return isRevoked(grant) ? error(40141, "Token revoked") : grant;
  }

  const isRevoked = (grant: AblyGrant) =>
    grant.clientId !== undefined && grant.iat * 1000 < (revokedBefore.get(grant.clientId) ?? -Infinity);

  /** Checks and records one presented token. */
  function present(via: Seen["via"], token: string): AblyGrant | AblyError {
    const result = check(token);
    const entry: Seen = "code" in result ? { via, token, error: result } : { via, token, grant: result };
    seen.push(entry);
    log.push({ kind: "token", ...entry });
    return result;
  }

  /** `POST /keys/{keyName}/revokeTokens`, checked as Ably documents it; answers [status, body]. */
  function revokeTokens(authorization: string | undefined, body: string): [number, unknown] {
    const refuse = (statusCode: number, code: number, message: string): [number, unknown] => [
      statusCode,
      { error: { code, statusCode, message } },
    ];
    if (authorization !== `Basic ${Buffer.from(apiKey).toString("base64")}`) {
      return refuse(401, 40101, "Invalid credentials");
    }
    const request = parseObject(body);
    const targets = request?.targets;
    const now = Date.now();
    const issuedBefore = request?.issuedBefore ?? now;
    if (
      !Array.isArray(targets) ||
      targets.length === 0 ||
      targets.length > 100 ||
      !targets.every((t) => typeof t === "string" && /^[a-zA-Z]+:./.test(t))
    ) {
      return refuse(400, 40000, "targets must be 1 to 100 strings of the form type:value");
    }
    if (typeof issuedBefore !== "number" || issuedBefore > now || issuedBefore < now - MAX_ISSUED_BEFORE_AGE_MS) {
      return refuse(400, 40000, "issuedBefore must be a time in ms, not in the future nor more than 1 h back");
    }
    for (const target of targets as string[]) {
      log.push({ kind: "revocation", target, issuedBefore });
      const clientId = /^clientId:(.+)$/.exec(target)?.[1];
      if (clientId === undefined) continue;
      revokedBefore.set(clientId, Math.max(issuedBefore, revokedBefore.get(clientId) ?? -Infinity));
      for (const connection of live) {
        const grant = connection.grant();
        if (grant && isRevoked(grant)) {
          log.push({ kind: "cut", clientId: grant.clientId, token: connection.token(), code: 40141 });
          connection.cut(error(40141, "Token revoked"));
        }
      }
    }
    return [201, (targets as string[]).map((target) => ({ target, issuedBefore, appliesAt: now }))];
  }

  /**
   * The token's entries the key's capability covers: Ably's intersection for a key whose
   * resources are as wide as or wider than the token's (such as `{"*":["*"]}`), all this fake needs.
   */
  function withinKey(requested: Capability): Capability {
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

  const server = createServer((req, res) => void rest(req, res));

  async function rest(req: IncomingMessage, res: ServerResponse) {
    const url = new URL(req.url ?? "/", "http://fake");
    const channel = /^\/channels\/([^/]+)\/messages$/.exec(url.pathname)?.[1];
    let body = "";
    for await (const chunk of req) body += String(chunk);
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      // Exactly application/json: ably-js parses an error body only for that type.
      res.writeHead(status, { "Content-Type": "application/json", ...headers });
      res.end(JSON.stringify(body));
    };
    if (req.method === "POST" && url.pathname === `/keys/${encodeURIComponent(keyName)}/revokeTokens`) {
      return answer(...revokeTokens(req.headers.authorization, body));
    }
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
    let current: { token: string; grant: AblyGrant } | undefined;
    const connection = {
      grant: () => current?.grant,
      token: () => current?.token ?? "",
      cut: (e: AblyError) => fail(Action.DISCONNECTED, e),
    };
    live.add(connection);
    ws.on("close", () => {
      clearTimeout(expiry);
      live.delete(connection);
    });

    /** CONNECTED for a valid token, with a timer that disconnects the client when it expires. */
    const accept = (via: "connect" | "auth", token: string) => {
      const result = present(via, token);
      // Ably answers a bad token with ERROR; ably-js then renews on a token error (4014x), else fails.
      if ("code" in result) return fail(Action.ERROR, result);
      current = { token, grant: result };
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
      const message = parseObject(data.toString()) as {
        action?: number;
        id?: string;
        auth?: { accessToken?: string };
      } | null;
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
    /** Tokens, revocations, cut connections and marks, in the order they happened. */
    log,
    /** Adds a test's own event to `log`, to place it among the fake's. */
    mark: (label: string) => void log.push({ kind: "mark", label }),
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
