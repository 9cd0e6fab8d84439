/**
 * Serving a fetch-style handler from Node on 127.0.0.1: the Ably stand-in (dev/ably), and for the
 * e2e suites the stand-in identity provider and demo pages.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export interface Served {
  /** `http://127.0.0.1:<port>` */
  readonly origin: string;
  /** The Node server, for what else listens on it (a WebSocket server). */
  readonly server: Server;
  close(): Promise<void>;
}

/**
 * Listens on `port` (default 0: a free one) first and only then asks `makeHandler` for the
 * handler, so a handler that must know its own origin (an OIDC issuer) can be built with it.
 */
export async function serve(
  makeHandler: (origin: string) => Promise<(request: Request) => Response | Promise<Response>>,
  port = 0,
): Promise<Served> {
  const server: Server = createServer();
  server.listen(port, "127.0.0.1");
  await new Promise((resolve, reject) => server.once("listening", resolve).once("error", reject));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const handle = await makeHandler(origin);
  server.on("request", (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
      const headers = new Headers();
      for (const [name, value] of Object.entries(req.headers)) {
        if (typeof value === "string") headers.set(name, value);
      }
      void Promise.resolve(handle(new Request(`${origin}${req.url}`, { method: req.method, headers, body })))
        .then(async (response) => {
          const payload = Buffer.from(await response.arrayBuffer());
          res.writeHead(response.status, Object.fromEntries(response.headers));
          res.end(payload);
        })
        .catch(() => {
          res.writeHead(500);
          res.end();
        });
    });
  });
  return {
    origin,
    server,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A port nothing listens on right now (the OS picks it; the caller binds it a moment later). */
export async function freePort(): Promise<number> {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}
