/**
 * A local stand-in for Ably, REST and Realtime on one port of 127.0.0.1, since Ably's own service
 * cannot run here: `npm run dev` starts one (main.ts) when .dev.vars holds the placeholder key, and
 * the e2e suites start their own. What it checks and answers: token-check.ts, stand-in.ts, rest.ts,
 * realtime.ts. Never part of the deployed worker.
 *
 *   const ably = await startAblyStandIn(apiKey);
 *   new Ably.Realtime({ ...ably.clientOptions, authUrl });
 */
import { WebSocketServer } from "ws";
import { serve } from "../node-server.ts";
import { serveRealtime } from "./realtime.ts";
import { restHandler } from "./rest.ts";
import { createStandIn, EVERYTHING } from "./stand-in.ts";
import type { Capability } from "./token-check.ts";

/**
 * Starts the stand-in for the API key `<keyName>:<secret>`, whose capability is `keyCapability`
 * (default: everything), on `port` (default 0: a free one).
 */
export async function startAblyStandIn(apiKey: string, keyCapability: Capability = EVERYTHING, port = 0) {
  const standIn = createStandIn(apiKey, keyCapability);
  const served = await serve(() => Promise.resolve(restHandler(standIn)), port);
  const wss = new WebSocketServer({ server: served.server });
  serveRealtime(wss, standIn);
  const listening = Number(new URL(served.origin).port);
  return {
    ...standIn,
    port: listening,
    /** What ably-js v2 needs to talk to the stand-in instead of Ably (ably.js `normaliseOptions`). */
    clientOptions: {
      endpoint: "127.0.0.1",
      port: listening,
      tls: false,
      fallbackHosts: [] as string[],
      useBinaryProtocol: false,
    },
    close: async () => {
      for (const ws of wss.clients) ws.terminate();
      await new Promise((resolve) => wss.close(resolve));
      await served.close();
    },
  };
}

export type AblyStandIn = Awaited<ReturnType<typeof startAblyStandIn>>;
