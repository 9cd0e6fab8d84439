/**
 * Abuse and faults: rate limits (Miniflare's real rate limiting binding, from wrangler.toml),
 * a ban list that is slow or down, security headers on every response, and property-based tests
 * for the parts with infinite inputs (capability intersection, parameter parsing, any token).
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type Capability, intersect, parseCapability } from "../../src/ably/capability";
import { BAN_LOOKUP_TIMEOUT_MS, RATE_LIMIT_PERIOD_SECONDS } from "../../src/constants";
import { Problem } from "../../src/errors";
import { parseTokenParams } from "../../src/request/params";
import { ALLOWED_ORIGIN, call, getToken, problemCode, rateLimiters, token } from "./helpers";

/**
 * The binding counts in fixed windows aligned to the wall clock (Miniflare's, like Cloudflare's:
 * `floor(now / period)`). So the burst starts in a fresh window when little of this one is left,
 * and then exactly `limit` requests pass and the next is refused.
 */
async function requestsUntilLimited(limit: number, send: (i: number) => Promise<Response>) {
  const window = RATE_LIMIT_PERIOD_SECONDS * 1000;
  const left = window - (Date.now() % window);
  // A burst of 300 takes a few seconds here; 20 s leaves room on a loaded machine.
  if (left < 20_000) await new Promise((resolve) => setTimeout(resolve, left + 100));
  const epoch = Math.floor(Date.now() / window);
  for (let i = 1; i <= limit + 1; i++) {
    const res = await send(i);
    if (res.status === 429) return { count: i, res };
  }
  const crossed = Math.floor(Date.now() / window) !== epoch ? " (the burst outlasted its window)" : "";
  throw new Error(`never limited after ${limit + 1} requests${crossed}`);
}

describe("rate limits (IP_RATE_LIMITER 300/min, USER_RATE_LIMITER 20/min in wrangler.toml)", () => {
  it("limits one IP before any verification, garbage included: 429 with Retry-After after 300", async () => {
    const from = { "CF-Connecting-IP": "203.0.113.7" };
    const { count, res } = await requestsUntilLimited(300, () =>
      call("/auth", { headers: { ...from, Authorization: "Bearer garbage" } }, rateLimiters),
    );
    expect(count).toBe(301);
    expect(res.headers.get("retry-after")).toBe("60");
    expect(await problemCode(res)).toBe("rate-limited");
    // Another IP is not affected.
    const other = await call(
      "/auth",
      { headers: { "CF-Connecting-IP": "203.0.113.8", Authorization: `Bearer ${await token()}` } },
      rateLimiters,
    );
    expect(other.status).toBe(200);
  });

  it("limits one user after verification, from any IP: 429 after 20 tokens", async () => {
    const jwt = await token({ claims: { sub: "farmer" } });
    const { count, res } = await requestsUntilLimited(20, (i) =>
      call(
        "/auth",
        { headers: { "CF-Connecting-IP": `198.51.100.${i % 250}`, Authorization: `Bearer ${jwt}` } },
        rateLimiters,
      ),
    );
    expect(count).toBe(21);
    expect(await problemCode(res)).toBe("rate-limited");
    expect((await getToken(await token({ claims: { sub: "not-a-farmer" } }), "", {}, rateLimiters)).status).toBe(200);
  });

  it("runs without the bindings, and says once in the log that limiting is off", async () => {
    const warnings: string[] = [];
    const original = console.warn;
    console.warn = (record: unknown) => void warnings.push(JSON.stringify(record));
    try {
      const overrides = { IP_RATE_LIMITER: undefined, USER_RATE_LIMITER: undefined, JWT_CLOCK_TOLERANCE_SECONDS: "31" };
      for (let i = 0; i < 3; i++) expect((await getToken(await token(), "", {}, overrides)).status).toBe(200);
    } finally {
      console.warn = original;
    }
    expect(warnings.filter((w) => w.includes("rate limiting per IP is off"))).toHaveLength(1);
  });

  it("lets requests through when the limiter itself fails (it protects capacity, not access)", async () => {
    const broken = { limit: () => Promise.reject(new Error("limiter down")) };
    const res = await getToken(
      await token(),
      "",
      { "CF-Connecting-IP": "192.0.2.1" },
      { IP_RATE_LIMITER: broken, USER_RATE_LIMITER: broken },
    );
    expect(res.status).toBe(200);
  });
});

describe("a ban list that is slow or down", () => {
  const never = { get: () => new Promise<never>(() => {}) };
  const down = { get: () => Promise.reject(new Error("KV down")) };

  it("answers 503 within the 2 s lookup timeout when KV hangs, and issues nothing", async () => {
    const started = Date.now();
    const res = await getToken(await token(), "", {}, { BANS: never });
    expect(res.status).toBe(503);
    expect(await problemCode(res)).toBe("ban-list-unavailable");
    // The 2 s bound, not the client's 10 s: waited out, then answered at once.
    expect(Date.now() - started).toBeGreaterThanOrEqual(BAN_LOOKUP_TIMEOUT_MS);
    expect(Date.now() - started).toBeLessThan(BAN_LOOKUP_TIMEOUT_MS + 1_000);
  });

  it("issues when BAN_LIST_FAIL_OPEN=true, for operators who prefer availability", async () => {
    for (const kv of [down, never]) {
      const res = await getToken(await token(), "", {}, { BANS: kv, BAN_LIST_FAIL_OPEN: "true" });
      expect(res.status).toBe(200);
    }
  });
});

describe("security headers", () => {
  it.each([
    ["a token", async () => getToken(await token())],
    ["a refusal", async () => call("/auth")],
    ["a 404", async () => call("/nowhere")],
    ["/healthz", async () => call("/healthz")],
  ])("are on %s", async (_name, send) => {
    const res = await send();
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
    expect(res.headers.get("strict-transport-security")).toMatch(/^max-age=\d+/);
    expect(res.headers.get("referrer-policy")).toBe("no-referrer");
  });

  // Exactly what hono/secure-headers set with the worker's options, on every kind of response,
  // whoever builds it: the worker now writes them itself, once per isolate.
  const EXACT = {
    "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "origin-agent-cluster": "?1",
    "referrer-policy": "no-referrer",
    "strict-transport-security": "max-age=15552000; includeSubDomains",
    "x-content-type-options": "nosniff",
    "x-dns-prefetch-control": "off",
    "x-download-options": "noopen",
    "x-frame-options": "DENY",
    "x-permitted-cross-domain-policies": "none",
    "x-xss-protection": "0",
  };
  it.each([
    ["a token", async () => getToken(await token())],
    ["a token for an allowed origin", async () => getToken(await token(), "", { Origin: ALLOWED_ORIGIN })],
    [
      "a preflight",
      async () =>
        call("/auth", {
          method: "OPTIONS",
          headers: { Origin: ALLOWED_ORIGIN, "Access-Control-Request-Method": "GET" },
        }),
    ],
    ["a preflight without Origin", async () => call("/auth", { method: "OPTIONS" })],
    ["a refusal", async () => call("/auth")],
    ["a 405", async () => call("/auth", { method: "PUT" })],
    ["a 404", async () => call("/nowhere")],
    ["/healthz", async () => call("/healthz")],
  ])("are exactly hono/secure-headers' set, with one request id, on %s", async (_name, send) => {
    const res = await send();
    for (const [name, value] of Object.entries(EXACT)) expect(res.headers.get(name), name).toBe(value);
    expect(res.headers.get("cross-origin-embedder-policy")).toBeNull();
    expect(res.headers.get("permissions-policy")).toBeNull();
    expect(res.headers.get("x-powered-by")).toBeNull();
    expect(res.headers.get("x-request-id")).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  });

  it.each([
    ["kept when it is short and plain", "req-123_=ok", "req-123_=ok"],
    ["replaced when it holds other characters", "req 1;drop", undefined],
    ["replaced when it is over 255 characters", "r".repeat(256), undefined],
  ])("a caller's X-Request-Id is %s", async (_name, given, expected) => {
    for (const res of [
      await getToken(await token(), "", { "X-Request-Id": given }),
      await call("/nowhere", { headers: { "X-Request-Id": given } }),
    ]) {
      const id = res.headers.get("x-request-id");
      if (expected) expect(id).toBe(expected);
      else expect(id).toMatch(/^[0-9a-f-]{36}$/);
    }
  });
});

describe("properties", () => {
  const operation = fc.constantFrom(
    "*",
    "publish",
    "subscribe",
    "presence",
    "history",
    "channel-metadata",
    "push-admin",
  );
  const resource = fc.oneof(
    fc.constantFrom("*", "[*]*", "chat:*", "chat:a:*", "chat:lobby", "chat:a:b", "news", "[meta]log", "private:alice"),
    fc.string({ minLength: 1, maxLength: 12 }),
  );
  const capability = fc
    .dictionary(resource, fc.uniqueArray(operation, { minLength: 1, maxLength: 4 }), { minKeys: 1, maxKeys: 5 })
    .map((c) => parseCapability(JSON.stringify(c)));
  const channel = fc.oneof(
    fc.constantFrom("chat:lobby", "chat:a:b", "news", "[meta]log", "private:alice", "chat:"),
    fc.string({ maxLength: 12 }),
  );

  /** Whether `cap` lets `op` be done on `name`, by Ably's wildcard rules (a reference, written plainly). */
  function allows(cap: Capability, name: string, op: string): boolean {
    return Object.entries(cap).some(([pattern, ops]) => {
      const matches =
        pattern === name ||
        pattern === "[*]*" ||
        (pattern === "*" && !name.startsWith("[")) ||
        (pattern.endsWith(":*") && !name.startsWith("[") && name.startsWith(pattern.slice(0, -1)));
      return matches && (ops.includes("*") || ops.includes(op));
    });
  }

  it("the intersection never allows anything the grant does not, on any channel", () => {
    fc.assert(
      fc.property(capability, capability, channel, operation, (requested, granted, name, op) => {
        const result = intersect(requested, granted);
        if (allows(result, name, op)) {
          expect(allows(granted, name, op)).toBe(true);
          expect(allows(requested, name, op)).toBe(true);
        }
      }),
      { numRuns: 2000 },
    );
  });

  it("parsing token parameters never throws anything but a 400 problem", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.constantFrom("ttl", "capability", "clientId", "rnd"), fc.string({ maxLength: 40 })), {
          maxLength: 6,
        }),
        (pairs) => {
          try {
            parseTokenParams(new URLSearchParams(pairs));
          } catch (error) {
            expect(error).toBeInstanceOf(Problem);
            expect((error as Problem).status).toBe(400);
          }
        },
      ),
      { numRuns: 1000 },
    );
  });

  it("any byte string as a token is refused cleanly: a 4xx problem, never a 500 or a token", async () => {
    const garbage = fc.oneof(
      fc.string({ maxLength: 200 }),
      fc.uint8Array({ maxLength: 150 }).map((bytes) => btoa(String.fromCharCode(...bytes))),
      fc
        .tuple(fc.string(), fc.string(), fc.string())
        .map((parts) => parts.map((p) => btoa(unescape(encodeURIComponent(p)))).join(".")),
    );
    await fc.assert(
      fc.asyncProperty(garbage, async (value) => {
        const headers = new Headers();
        try {
          headers.set("Authorization", `Bearer ${value}`);
        } catch {
          return; // not a valid header value: no client can send it
        }
        const res = await call("/auth", { headers });
        expect(res.status).toBeGreaterThanOrEqual(400);
        expect(res.status).toBeLessThan(500);
        expect(res.headers.get("content-type")).toBe("application/problem+json");
      }),
      { numRuns: 300 },
    );
  });
});
