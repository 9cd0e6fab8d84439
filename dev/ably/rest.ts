/**
 * The stand-in's REST half, as a fetch-style handler (served by server.ts in Node, and handed
 * straight to Miniflare's outbound service by the worker suite):
 *
 * - `POST /keys/{keyName}/revokeTokens`: token revocation (stand-in.ts).
 * - `POST /channels/{name}/messages`: `Authorization: Bearer <base64(jwt)>` as ably-js sends it,
 *   or the raw JWT; 201 when the token may publish there, else Ably's error body and headers.
 *   (Accepted and answered only: Realtime subscribers do not receive REST publishes here.)
 *
 * Controls for the tests, under `/__`:
 * - `GET /__revocations` lists what was revoked (target, issuedBefore), in order;
 * - `POST /__script` `{ "target", "answers": [429, 503, "silence", ...] }` makes the next revocation
 *   requests naming that target first get those answers, one each ("silence": no answer for
 *   SILENCE_MS, longer than the worker waits).
 */
import type { StandIn } from "./stand-in.ts";
import { type AblyError, ablyError, allows, isError, parseObject } from "./token-check.ts";

/** How long "silence" keeps a request waiting, in ms: past the worker's 5 s upstream timeout. */
const SILENCE_MS = 8_000;

type ScriptedAnswer = number | "silence";

export function restHandler(standIn: StandIn): (request: Request) => Promise<Response> {
  const scripts = new Map<string, ScriptedAnswer[]>();
  // Exactly application/json: ably-js parses an error body only for that type.
  const refuse = (e: AblyError) =>
    Response.json(
      { error: e },
      { status: e.statusCode, headers: { "X-Ably-Errorcode": String(e.code), "X-Ably-Errormessage": e.message } },
    );

  return async (request) => {
    const url = new URL(request.url);
    const body = await request.text();
    if (url.pathname === "/__revocations") return Response.json(standIn.revoked);
    if (url.pathname === "/__script") {
      const { target, answers } = JSON.parse(body) as { target: string; answers: ScriptedAnswer[] };
      scripts.set(target, [...answers]);
      return new Response(null, { status: 204 });
    }
    if (request.method === "POST" && url.pathname === `/keys/${encodeURIComponent(standIn.keyName)}/revokeTokens`) {
      const targets = parseObject(body)?.targets;
      const scripted = Array.isArray(targets) ? scripts.get(String(targets[0]))?.shift() : undefined;
      if (scripted === "silence") await new Promise((resolve) => setTimeout(resolve, SILENCE_MS));
      if (scripted !== undefined) {
        const status = scripted === "silence" ? 504 : scripted;
        return refuse(ablyError(status * 100, "scripted failure", status));
      }
      const [status, answer] = standIn.revokeTokens(
        request.headers.get("authorization"),
        request.headers.get("content-type"),
        body,
      );
      return Response.json(answer, { status });
    }
    const channel = /^\/channels\/([^/]+)\/messages$/.exec(url.pathname)?.[1];
    if (request.method !== "POST" || channel === undefined) return refuse(ablyError(40400, "Not found", 404));
    const credential = /^Bearer (\S+)$/.exec(request.headers.get("authorization") ?? "")?.[1];
    if (credential === undefined) return refuse(ablyError(40101, "Invalid credentials: no token"));
    // ably-js base64-encodes the token; a raw JWT has dots, which base64 never does.
    const token = credential.includes(".") ? credential : Buffer.from(credential, "base64").toString();
    const result = standIn.present("rest", token);
    if (isError(result)) return refuse(result);
    const name = decodeURIComponent(channel);
    if (!allows(result.capability, name, "publish")) {
      return refuse(ablyError(40160, `Capability refused: publish on channel ${name}`));
    }
    return Response.json({ channel: name, messageId: crypto.randomUUID() }, { status: 201 });
  };
}
