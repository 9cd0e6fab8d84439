/**
 * The stand-in's Realtime half: Ably's protocol over a WebSocket at
 * `/?access_token=<jwt>&format=json&...`, the part ably-js v2 (2.28, read in build/ably.js) uses,
 * JSON only (browsers' default; Node clients must set `useBinaryProtocol: false`):
 *
 * - Connect: CONNECTED with connectionDetails for a valid token, else ERROR then close (ably-js
 *   renews on a token error, 4014x, and fails on anything else).
 * - Renewal: an AUTH request RENEW_LEAD_MS before the token expires (half its life when shorter),
 *   as Ably does; the client's AUTH swaps the token in place (a new CONNECTED), or ERROR when it is
 *   invalid or names another clientId (40102). A token left to expire: DISCONNECTED 40142, close.
 * - Revocation: a connection whose token was revoked (stand-in.ts) gets DISCONNECTED 40141, close.
 * - ATTACH: ATTACHED when the capability names the channel at all, with the modes it allows, else
 *   the channel's ERROR 40160; the presence set follows in one SYNC when the token may subscribe.
 *   DETACH: DETACHED.
 * - MESSAGE: needs `publish` on the channel (NACK 40160) and no other clientId than the token's
 *   (NACK 40012); ACK, then delivered to every connection attached there that may `subscribe`,
 *   the publisher included (ably-js's echoMessages default).
 * - PRESENCE enter/update/leave: needs `presence` (NACK 40160) and the token's clientId (NACK 91000
 *   without one, 40012 for another); ACK, then delivered like messages. A connection that
 *   detaches or goes away leaves at once (Ably waits 15 s for a resume; this stand-in has none).
 * - HEARTBEAT answered; CLOSE answered with CLOSED.
 */
import { randomUUID } from "node:crypto";
import type { WebSocket, WebSocketServer } from "ws";
import type { StandIn } from "./stand-in.ts";
import { type AblyError, ablyError, type AblyGrant, allows, allowsAny, isError, parseObject } from "./token-check.ts";

/** Protocol message actions (ably-js `actions`). */
const Action = {
  HEARTBEAT: 0,
  ACK: 1,
  NACK: 2,
  CONNECTED: 4,
  DISCONNECTED: 6,
  CLOSE: 7,
  CLOSED: 8,
  ERROR: 9,
  ATTACH: 10,
  ATTACHED: 11,
  DETACH: 12,
  DETACHED: 13,
  PRESENCE: 14,
  MESSAGE: 15,
  SYNC: 16,
  AUTH: 17,
};
/** Presence actions (ably-js `PresenceMessage` actions, in wire order). */
const Presence = { PRESENT: 1, ENTER: 2, LEAVE: 3 };
/** ATTACHED flag: a presence SYNC follows. */
const HAS_PRESENCE = 1;
/**
 * ATTACHED's channel-mode flags (ably-js `flags`), each with the capability operation that grants
 * it: Ably grants a client that asks for no particular modes every mode its capability allows.
 */
const MODES: [flag: number, op: string][] = [
  [1 << 16, "presence"], // PRESENCE
  [1 << 17, "publish"], // PUBLISH
  [1 << 18, "subscribe"], // SUBSCRIBE
  [1 << 19, "subscribe"], // PRESENCE_SUBSCRIBE
];

/** Ably's per-message limit, announced in connectionDetails. */
const MAX_MESSAGE_SIZE = 65_536;
/** Ably's default: how long Ably keeps a disconnected connection's state, in ms. */
const CONNECTION_STATE_TTL_MS = 120_000;
/**
 * 0 turns off ably-js's idle check: the stand-in sends no heartbeats (Ably announces 15 s and sends
 * one at least that often).
 */
const MAX_IDLE_INTERVAL_MS = 0;
/** How long before a token expires Ably asks the client to renew it (an AUTH message), in ms. */
const RENEW_LEAD_MS = 30_000;

interface Wire {
  action?: number;
  id?: string;
  channel?: string;
  msgSerial?: number;
  auth?: { accessToken?: string };
  messages?: Record<string, unknown>[];
  presence?: Record<string, unknown>[];
}

interface Connection {
  id: string;
  token: string;
  grant: AblyGrant;
  send(message: object): void;
  /** Ends the connection with `action` (ERROR or DISCONNECTED) carrying `error`. */
  end(action: number, error: AblyError): void;
}

/** One member of a channel's presence set, as it travels. */
interface Member {
  clientId: string;
  connectionId: string;
  id: string;
  timestamp: number;
  data?: unknown;
  encoding?: unknown;
}

export function serveRealtime(wss: WebSocketServer, standIn: StandIn): void {
  /** Channel name → the connections attached to it. */
  const attached = new Map<string, Set<Connection>>();
  /** Channel name → its presence set, keyed by `connectionId clientId`. */
  const members = new Map<string, Map<string, Member>>();
  const connections = new Set<Connection>();

  standIn.onRevocation(() => {
    for (const connection of connections) {
      if (!standIn.isRevoked(connection.grant)) continue;
      standIn.log.push({ kind: "cut", clientId: connection.grant.clientId, token: connection.token, code: 40141 });
      connection.end(Action.DISCONNECTED, ablyError(40141, "Token revoked"));
    }
  });

  /** Sends `message` to every connection attached to `channel` that may subscribe there. */
  function deliver(channel: string, message: object) {
    for (const connection of attached.get(channel) ?? []) {
      if (allows(connection.grant.capability, channel, "subscribe")) connection.send(message);
    }
  }

  /** Takes the connection's members out of `channel`'s presence set, telling the others. */
  function leave(connection: Connection, channel: string) {
    const set = members.get(channel);
    const gone = [...(set?.values() ?? [])].filter((m) => m.connectionId === connection.id);
    if (gone.length === 0) return;
    for (const member of gone) set!.delete(`${member.connectionId} ${member.clientId}`);
    // A leave Ably synthesizes carries an id that is not the connection's: ably-js orders it by timestamp.
    const timestamp = Date.now();
    const presence = gone.map((m) => ({ ...m, action: Presence.LEAVE, id: `${randomUUID()}:0:0`, timestamp }));
    deliver(channel, { action: Action.PRESENCE, channel, presence });
  }

  function attach(connection: Connection, channel: string) {
    if (!allowsAny(connection.grant.capability, channel)) {
      return connection.send({
        action: Action.ERROR,
        channel,
        error: ablyError(40160, `Channel denied access based on given capability: ${channel}`),
      });
    }
    attached.set(channel, (attached.get(channel) ?? new Set()).add(connection));
    const present = allows(connection.grant.capability, channel, "subscribe")
      ? [...(members.get(channel)?.values() ?? [])]
      : [];
    const modes = MODES.filter(([, op]) => allows(connection.grant.capability, channel, op));
    const flags = modes.reduce((all, [flag]) => all | flag, present.length > 0 ? HAS_PRESENCE : 0);
    connection.send({ action: Action.ATTACHED, channel, flags });
    if (present.length > 0) {
      // One SYNC: a channelSerial with an empty cursor after the colon ends the sync.
      connection.send({
        action: Action.SYNC,
        channel,
        channelSerial: `${randomUUID()}:`,
        presence: present.map((m) => ({ ...m, action: Presence.PRESENT })),
      });
    }
  }

  function detach(connection: Connection, channel: string) {
    attached.get(channel)?.delete(connection);
    leave(connection, channel);
    connection.send({ action: Action.DETACHED, channel });
  }

  /** MESSAGE or PRESENCE from a client: checked, acknowledged (or not), delivered. */
  function publish(connection: Connection, wire: Wire, channel: string) {
    const isPresence = wire.action === Action.PRESENCE;
    const items = (isPresence ? wire.presence : wire.messages) ?? [];
    const own = connection.grant.clientId;
    const refuse = (error: AblyError) =>
      connection.send({ action: Action.NACK, msgSerial: wire.msgSerial, count: 1, error });
    if (!allows(connection.grant.capability, channel, isPresence ? "presence" : "publish")) {
      return refuse(
        ablyError(40160, `Capability refused: ${isPresence ? "presence" : "publish"} on channel ${channel}`),
      );
    }
    if (isPresence && own === undefined) {
      return refuse(ablyError(91000, "Unable to enter presence channel (no clientId)", 400));
    }
    if (own !== "*" && items.some((item) => item.clientId !== undefined && item.clientId !== own)) {
      return refuse(ablyError(40012, "Mismatched clientId", 400));
    }
    connection.send({ action: Action.ACK, msgSerial: wire.msgSerial, count: 1 });
    const timestamp = Date.now();
    const stamped = items.map((item, index) => ({
      ...item,
      clientId: item.clientId ?? own,
      connectionId: connection.id,
      id: `${connection.id}:${wire.msgSerial}:${index}`,
      timestamp,
    }));
    if (!isPresence) return deliver(channel, { action: Action.MESSAGE, channel, messages: stamped });
    const set = members.get(channel) ?? new Map<string, Member>();
    members.set(channel, set);
    for (const { action, ...member } of stamped as (Member & { action?: number })[]) {
      const key = `${member.connectionId} ${member.clientId}`;
      if (action === Presence.LEAVE) set.delete(key);
      else set.set(key, member);
    }
    deliver(channel, { action: Action.PRESENCE, channel, presence: stamped });
  }

  wss.on("connection", (ws: WebSocket, req) => {
    const params = new URL(req.url ?? "/", "ws://stand-in").searchParams;
    if (params.get("format") !== "json") return ws.close(1003, "JSON protocol only: set useBinaryProtocol: false");
    const send = (message: object) => ws.send(JSON.stringify(message));
    let renewal: NodeJS.Timeout | undefined;
    let expiry: NodeJS.Timeout | undefined;
    let connection: Connection | undefined;
    const end = (action: number, error: AblyError) => {
      send({ action, error });
      ws.close();
    };

    /** A token presented on connect or in an AUTH: CONNECTED, with timers for renewal and expiry. */
    const accept = (via: "connect" | "auth", token: string) => {
      const grant = standIn.present(via, token);
      if (isError(grant)) return end(Action.ERROR, grant);
      if (connection && grant.clientId !== connection.grant.clientId) {
        return end(Action.ERROR, ablyError(40102, "Mismatched clientId for existing connection"));
      }
      connection ??= { id: randomUUID(), token, grant, send, end };
      Object.assign(connection, { token, grant });
      connections.add(connection);
      clearTimeout(renewal);
      clearTimeout(expiry);
      const left = grant.exp * 1000 - Date.now();
      renewal = setTimeout(() => send({ action: Action.AUTH }), left - Math.min(RENEW_LEAD_MS, left / 2));
      expiry = setTimeout(() => end(Action.DISCONNECTED, ablyError(40142, "Token expired")), left);
      send({
        action: Action.CONNECTED,
        connectionId: connection.id,
        connectionDetails: {
          clientId: grant.clientId,
          connectionKey: `${connection.id}!key`,
          maxMessageSize: MAX_MESSAGE_SIZE,
          connectionStateTtl: CONNECTION_STATE_TTL_MS,
          maxIdleInterval: MAX_IDLE_INTERVAL_MS,
          serverId: "ably-stand-in",
        },
      });
    };

    ws.on("close", () => {
      clearTimeout(renewal);
      clearTimeout(expiry);
      if (!connection) return;
      connections.delete(connection);
      for (const [channel, set] of attached) {
        if (set.delete(connection)) leave(connection, channel);
      }
    });

    ws.on("message", (data: Buffer) => {
      const wire = parseObject(data.toString()) as Wire | null;
      const channel = wire?.channel ?? "";
      switch (wire?.action) {
        case Action.HEARTBEAT:
          return send({ action: Action.HEARTBEAT, id: wire.id });
        case Action.AUTH:
          return accept("auth", wire.auth?.accessToken ?? "");
        case Action.CLOSE:
          send({ action: Action.CLOSED });
          return ws.close();
      }
      if (!connection) return;
      switch (wire?.action) {
        case Action.ATTACH:
          return attach(connection, channel);
        case Action.DETACH:
          return detach(connection, channel);
        case Action.MESSAGE:
        case Action.PRESENCE:
          return publish(connection, wire, channel);
      }
    });
    accept("connect", params.get("access_token") ?? "");
  });
}
