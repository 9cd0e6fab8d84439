/**
 * A local stand-in for Ably's REST token revocation, since Ably's own service cannot run here.
 * It checks a request exactly as Ably's documentation ("Token revocation", REST API
 * `POST /keys/{keyName}/revokeTokens`) says Ably does: HTTP basic auth with the API key, a JSON
 * body with 1 to 100 `targets` of the form `type:value`, and answers 201 with one result per
 * target, or Ably's error body (40101 bad credentials, 40000 bad request).
 *
 * Hosts: ably-rest.test answers; ably-down.test answers 500. GET /__revocations lists what was
 * revoked, for assertions.
 */
const TARGET_TYPES = new Set(["clientId", "revocationKey", "channel"]);

export function ablyRest(apiKey: string) {
  const [keyName] = apiKey.split(":") as [string];
  const revoked: { target: string; issuedBefore: number }[] = [];
  const error = (statusCode: number, code: number, message: string) =>
    Response.json({ error: { statusCode, code, message } }, { status: statusCode });

  async function handle(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.hostname === "ably-down.test") return error(500, 50000, "internal error");
    if (url.pathname === "/__revocations") return Response.json(revoked);
    if (request.method !== "POST" || url.pathname !== `/keys/${encodeURIComponent(keyName)}/revokeTokens`) {
      return error(404, 40400, "not found");
    }
    if (request.headers.get("authorization") !== `Basic ${btoa(apiKey)}`) {
      return error(401, 40101, "invalid credentials");
    }
    if (!request.headers.get("content-type")?.startsWith("application/json")) {
      return error(400, 40000, "expected application/json");
    }
    const body = (await request.json().catch(() => null)) as { targets?: unknown } | null;
    const targets = body?.targets;
    if (
      !Array.isArray(targets) ||
      targets.length === 0 ||
      targets.length > 100 ||
      !targets.every((t) => typeof t === "string" && TARGET_TYPES.has(t.split(":")[0]!) && t.includes(":"))
    ) {
      return error(400, 40000, "targets must be 1 to 100 strings of the form type:value");
    }
    const issuedBefore = Date.now();
    const results = (targets as string[]).map((target) => ({ target, issuedBefore, appliesAt: issuedBefore }));
    revoked.push(...results);
    return Response.json(results, { status: 201 });
  }
  return { handle, revoked };
}
