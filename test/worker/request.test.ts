/**
 * Everything around the identity check: methods and paths, browser origins (CORS), sizes, and the
 * syntax of token parameters (the token parameters, the request itself).
 */
import { describe, expect, it } from "vitest";

import {
  ALLOWED_ORIGIN,
  bodyOf,
  call,
  getToken,
  postToken,
  problemCode,
  testEnv,
  token,
  verifyAsAbly,
} from "./helpers";

describe("methods and paths", () => {
  it.each(["PUT", "DELETE", "PATCH", "HEAD"])(
    "answers %s /auth with 405 and Allow, minting nothing",
    async (method) => {
      const res = await call("/auth", { method, headers: { Authorization: `Bearer ${await token()}` } });
      expect(res.status).toBe(405);
      expect(res.headers.get("allow")).toBe("GET, POST, OPTIONS");
      if (method !== "HEAD") expect(await problemCode(res)).toBe("method-not-allowed");
    },
  );

  it.each(["/", "/auth//", "/Auth", "/auth%2F..", "/auth/../admin", "/%2e%2e/auth/x"])(
    "answers %s with a 404 problem",
    async (path) => {
      const res = await call(path, { headers: { Authorization: `Bearer ${await token()}` } });
      expect(res.status).toBe(404);
      expect(await problemCode(res)).toBe("not-found");
    },
  );

  it("answers /auth/ as /auth: hono/tiny's router takes one trailing slash, and every check still runs", async () => {
    const ok = await call("/auth/", { headers: { Authorization: `Bearer ${await token()}` } });
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toBe("application/jwt");
    const refused = await call("/auth/", { headers: { Authorization: "Bearer not-a-jwt" } });
    expect(refused.status).toBe(401);
  });

  it("answers OPTIONS without Origin with 204 and Allow", async () => {
    const res = await call("/auth", { method: "OPTIONS" });
    expect(res.status).toBe(204);
    expect(res.headers.get("allow")).toBe("GET, POST, OPTIONS");
  });
});

describe("browser origins (ALLOWED_ORIGINS)", () => {
  const preflight = (origin: string, headers = "authorization") =>
    call("/auth", {
      method: "OPTIONS",
      headers: { Origin: origin, "Access-Control-Request-Method": "GET", "Access-Control-Request-Headers": headers },
    });
  const expectCors = (res: Response) => {
    expect(res.headers.get("access-control-allow-origin")).toBe(ALLOWED_ORIGIN);
    expect(res.headers.get("access-control-allow-credentials")).toBe("true");
    expect(res.headers.get("vary")).toMatch(/Origin/);
  };

  it("answers an allowed origin's preflight for Authorization with its own origin and credentials", async () => {
    const res = await preflight(ALLOWED_ORIGIN, "authorization,content-type");
    expect(res.status).toBe(204);
    expectCors(res);
    expect(res.headers.get("access-control-allow-headers")).toBe("Authorization,Content-Type");
    expect(res.headers.get("access-control-allow-methods")).toBe("GET,POST,OPTIONS");
    expect(res.headers.get("access-control-max-age")).toBe("600");
  });

  it("gives an allowed origin its token with the CORS headers", async () => {
    const res = await getToken(await token(), "", { Origin: ALLOWED_ORIGIN });
    expect(res.status).toBe(200);
    expectCors(res);
  });

  it("keeps the CORS headers on errors, so the browser shows ably-js the 403 and it stops retrying", async () => {
    await testEnv.BANS.put("banned-in-browser", "");
    const banned = await getToken(await token({ claims: { sub: "banned-in-browser" } }), "", {
      Origin: ALLOWED_ORIGIN,
    });
    expect(banned.status).toBe(403);
    expectCors(banned);
    expect(banned.headers.get("access-control-expose-headers")).toContain("Retry-After");
    const noToken = await call("/auth", { headers: { Origin: ALLOWED_ORIGIN } });
    expect(noToken.status).toBe(401);
    expectCors(noToken);
  });

  it.each([
    ["a GET", () => getToken("x", "", { Origin: "https://evil.example" })],
    ["a preflight", () => preflight("https://evil.example")],
    ["a look-alike origin", () => preflight("https://app.example.evil.example")],
    ["the null origin", () => preflight("null")],
  ])("refuses %s from an origin not on the list with 403 and no CORS headers", async (_name, send) => {
    const res = await send();
    expect(res.status).toBe(403);
    expect(await problemCode(res)).toBe("origin-not-allowed");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
    expect(res.headers.get("access-control-allow-credentials")).toBeNull();
  });

  it("mints nothing for a valid token sent from an origin not on the list", async () => {
    const res = await getToken(await token(), "", { Origin: "https://evil.example" });
    expect(res.status).toBe(403);
    expect(await bodyOf(res)).not.toMatch(/^ey/);
  });

  it("refuses a preflight asking for headers it does not allow", async () => {
    const res = await preflight(ALLOWED_ORIGIN, "authorization,x-api-key");
    expect(res.status).toBe(403);
    expect(await problemCode(res)).toBe("preflight-header-not-allowed");
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("lets requests from the worker's own origin through without CORS headers", async () => {
    const res = await getToken(await token(), "", { Origin: "https://auth.test" });
    expect(res.status).toBe(200);
    expect(res.headers.get("access-control-allow-origin")).toBeNull();
  });
});

describe("token parameter syntax (400), checked before the identity token is verified", () => {
  it.each([
    ["capability that is not JSON", "capability=%7B"],
    ["capability that is a JSON array", `capability=${encodeURIComponent('["*"]')}`],
    ["capability with a non-array value", `capability=${encodeURIComponent('{"a":"subscribe"}')}`],
    ["capability megabytes long", `capability=${encodeURIComponent(`{"a":["${"x".repeat(7000)}"]}`)}`],
    ["ttl negative", "ttl=-1000"],
    ["ttl zero", "ttl=0"],
    ["ttl under 1000", "ttl=999"],
    ["ttl fractional", "ttl=1500.5"],
    ["ttl not a number", "ttl=soon"],
    ["ttl 1e309", "ttl=1e309"],
    ["ttl empty", "ttl="],
    ["duplicate ttl", "ttl=1000&ttl=2000"],
    ["duplicate capability", "capability=%7B%7D&capability=%7B%7D"],
    ["duplicate clientId", "clientId=alice&clientId=alice"],
  ])("refuses %s", async (_name, query) => {
    // An expired identity token: a 400 proves the parameters were checked first.
    const res = await getToken(await token({ claims: { exp: Math.floor(Date.now() / 1000) - 3600 } }), `?${query}`);
    expect(res.status).toBe(400);
    expect(await problemCode(res)).toBe("parameter-invalid");
  });

  it("refuses the same in a POST body", async () => {
    const res = await postToken(await token(), "ttl=abc");
    expect(res.status).toBe(400);
  });

  it("caps a ttl above the configured maximum, or above 24 h, at the configured maximum", async () => {
    for (const ttl of [3_601_000, 86_400_001, 10 ** 30]) {
      const res = await getToken(await token(), `?ttl=${BigInt(ttl)}`);
      expect((await verifyAsAbly(res)).ttl).toBe(3600);
    }
  });
});

describe("sizes are bounded before anything is parsed", () => {
  it("refuses a body over 16 KiB with 413", async () => {
    const res = await postToken(await token(), `rnd=${"x".repeat(3 * 1024 * 1024)}`);
    expect(res.status).toBe(413);
    expect(await problemCode(res)).toBe("request-too-large");
  });

  it("refuses a query string over 16 KiB with 413", async () => {
    const res = await getToken(await token(), `?rnd=${"x".repeat(17_000)}`);
    expect(res.status).toBe(413);
  });

  it("refuses an Ably token that would not fit in Ably's header limit with 400", async () => {
    const resources = Object.fromEntries(Array.from({ length: 300 }, (_, i) => [`channel-number-${i}`, ["subscribe"]]));
    const res = await getToken(await token(), "", {}, { ABLY_CAPABILITY: JSON.stringify(resources) });
    expect(res.status).toBe(400);
    expect(await problemCode(res)).toBe("ably-token-too-large");
  });
});
