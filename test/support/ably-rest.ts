/**
 * A local stand-in for Ably's REST token revocation, since Ably's own service cannot run here.
 * It checks a request exactly as Ably's documentation ("Token revocation", REST API
 * `POST /keys/{keyName}/revokeTokens`) says Ably does: HTTP basic auth with the API key, a JSON
 * body with 1 to 100 `targets` of the form `type:value` and an optional `issuedBefore` (ms; the
 * time of the call when absent; refused when in the future or more than 1 h back), and answers 201
 * with one result per target, or Ably's error body (40101 bad credentials, 40000 bad request).
 *
 * Hosts: ably-rest.test answers; ably-down.test answers 500. Control paths, for the tests:
 * - GET /__revocations lists what was revoked (target, issuedBefore), in order;
 * - POST /__script `{ "target", "answers": [429, 503, "silence", ...] }` makes the next requests
 *   naming that target get those answers, one each, before it answers normally again ("silence":
 *   no answer for SILENCE_MS, longer than the worker waits).
 */
const TARGET_TYPES = new Set(["clientId", "revocationKey", "channel"]);
/** Ably refuses an `issuedBefore` older than this, in ms (1 h). */
const MAX_ISSUED_BEFORE_AGE_MS = 3_600_000;
/** How long "silence" keeps a request waiting, in ms: past the worker's 5 s upstream timeout. */
const SILENCE_MS = 8_000;

type ScriptedAnswer = number | "silence";

export function ablyRest(apiKey: string) {
  const [keyName] = apiKey.split(":") as [string];
  const revoked: { target: string; issuedBefore: number }[] = [];
  const scripts = new Map<string, ScriptedAnswer[]>();
  const error = (statusCode: number, code: number, message: string) =>
    Response.json({ error: { statusCode, code, message } }, { status: statusCode });

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.hostname === "ably-down.test") return error(500, 50000, "internal error");
    if (url.pathname === "/__revocations") return Response.json(revoked);
    if (url.pathname === "/__script") {
      const { target, answers } = await request.json<{ target: string; answers: ScriptedAnswer[] }>();
      scripts.set(target, [...answers]);
      return new Response(null, { status: 204 });
    }
    if (request.method !== "POST" || url.pathname !== `/keys/${encodeURIComponent(keyName)}/revokeTokens`) {
      return error(404, 40400, "not found");
    }
    if (request.headers.get("authorization") !== `Basic ${btoa(apiKey)}`) {
      return error(401, 40101, "invalid credentials");
    }
    if (!request.headers.get("content-type")?.startsWith("application/json")) {
      return error(400, 40000, "expected application/json");
    }
    const body = (await request.json().catch(() => null)) as { targets?: unknown; issuedBefore?: unknown } | null;
    const targets = body?.targets;
    if (
      !Array.isArray(targets) ||
      targets.length === 0 ||
      targets.length > 100 ||
      !targets.every((t) => typeof t === "string" && TARGET_TYPES.has(t.split(":")[0]!) && t.includes(":"))
    ) {
      return error(400, 40000, "targets must be 1 to 100 strings of the form type:value");
    }
    const scripted = scripts.get(targets[0] as string)?.shift();
    if (scripted === "silence") {
      await new Promise((resolve) => setTimeout(resolve, SILENCE_MS));
      return error(504, 50003, "timed out");
    }
    if (scripted !== undefined) return error(scripted, scripted * 100, "scripted failure");
    const now = Date.now();
    const issuedBefore = body?.issuedBefore ?? now;
    if (typeof issuedBefore !== "number" || issuedBefore > now || issuedBefore < now - MAX_ISSUED_BEFORE_AGE_MS) {
      return error(400, 40000, "issuedBefore must be a time in ms, not in the future nor more than 1 h back");
    }
    const results = (targets as string[]).map((target) => ({ target, issuedBefore, appliesAt: now }));
    revoked.push(...results.map(({ target }) => ({ target, issuedBefore })));
    return Response.json(results, { status: 201 });
  }
  return { handle, revoked };
}
