/**
 * Moderation: the admin API (on only with ADMIN_TOKEN), role bans from the identity token, and
 * revocation of live Ably tokens (against a local endpoint that checks requests as Ably documents).
 */
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";

import { adminCall, call, getToken, problemCode, problemOf, seen, testEnv, token } from "./helpers";

const ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123456789";
seen.secrets.push(ADMIN_TOKEN);
const ADMIN = { ADMIN_TOKEN };
const REVOCABLE = { ...ADMIN, ABLY_REVOCABLE_TOKENS: "true", ABLY_REST_URL: "https://ably-rest.test" };

const admin = (method: string, path: string, body?: unknown, overrides: Record<string, unknown> = ADMIN) =>
  adminCall(method, path, body, overrides);
const issuedTo = async (sub: string, overrides: Record<string, unknown> = ADMIN) =>
  (await getToken(await token({ claims: { sub } }), "", {}, overrides)).status;
/** When `clientId`'s next revocation attempt is due; null when none is planned. */
const plannedAlarm = (clientId: string) => {
  const namespace = testEnv.BAN_REVOCATIONS;
  return runInDurableObject(namespace.get(namespace.idFromName(clientId)), (_, state) => state.storage.getAlarm());
};

describe("the admin API is off without ADMIN_TOKEN and closed without it", () => {
  it("answers 404 when ADMIN_TOKEN is not set", async () => {
    const res = await call("/admin/bans", { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(404);
  });

  it.each([
    ["no Authorization header", {}],
    ["a wrong token", { Authorization: "Bearer wrong-token" }],
    ["the token with a prefix", { Authorization: `Bearer x${ADMIN_TOKEN}` }],
    ["the token as Basic", { Authorization: `Basic ${ADMIN_TOKEN}` }],
    ["an identity token", { Authorization: "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln" }],
  ])("answers 401 for %s", async (_name, headers) => {
    const res = await call("/admin/bans", { headers }, ADMIN);
    expect(res.status).toBe(401);
    expect(await problemCode(res)).toBe("admin-unauthorized");
    expect(res.headers.get("www-authenticate")).toMatch(/^Bearer/);
  });

  it("refuses an ADMIN_TOKEN too short to be a secret", async () => {
    const res = await call("/healthz", {}, { ADMIN_TOKEN: "short" });
    expect(res.status).toBe(503);
    expect((await res.json<{ problems: string[] }>()).problems).toEqual([
      "ADMIN_TOKEN must be at least 32 characters (openssl rand -hex 32)",
    ]);
  });
});

describe("PUT, GET, DELETE /admin/bans/{clientId}", () => {
  it("bans, and the next token request is refused with the reason", async () => {
    expect(await issuedTo("troll")).toBe(200);
    const put = await admin("PUT", "/bans/troll", { reason: "Spamming #general", bannedBy: "mod-anna" });
    expect(put.status).toBe(200);
    const stored = await put.json<Record<string, unknown>>();
    expect(stored).toMatchObject({
      clientId: "troll",
      reason: "Spamming #general",
      bannedBy: "mod-anna",
      revocation: { status: "not-enabled" },
    });
    // Without revocation a ban holds once tokens issued before it reached every location expire.
    const airtight =
      Date.parse((stored.revocation as { airtightAt: string }).airtightAt) - Date.parse(stored.bannedAt as string);
    expect(airtight).toBe((180 + 3600) * 1000);
    expect(Math.abs(Date.parse(stored.bannedAt as string) - Date.now())).toBeLessThan(5000);
    expect(stored.until).toBeUndefined();

    const refused = await getToken(await token({ claims: { sub: "troll" } }), "", {}, ADMIN);
    expect(refused.status).toBe(403);
    expect((await problemOf(refused)).detail).toContain("Spamming #general");
  });

  it("reads one ban with who, when, why and until when, and 404 when there is none", async () => {
    await admin("PUT", "/bans/reader", { reason: "r", ttlSeconds: 3600 });
    const res = await admin("GET", "/bans/reader");
    expect(res.status).toBe(200);
    const ban = await res.json<Record<string, unknown>>();
    expect(ban).toMatchObject({ clientId: "reader", reason: "r", bannedBy: "admin-api", active: true });
    expect(Date.parse(ban.until as string) - Date.parse(ban.bannedAt as string)).toBe(3_600_000);
    const none = await admin("GET", "/bans/nobody");
    expect(none.status).toBe(404);
    expect(await problemCode(none)).toBe("ban-not-found");
  });

  it.each(["/bans/%ED%A0%80", "/bans/ev%ED%A0%80il", "/bans/%41%ED%A0%80", "/bans/%E2%82", "/bans/%ED%A0%80/revoke"])(
    "refuses %s, an escape that is not UTF-8, with 400 and bans nothing",
    async (path) => {
      const method = path.endsWith("/revoke") ? "POST" : "PUT";
      const res = await admin(method, path, method === "PUT" ? { reason: "x" } : undefined);
      expect(res.status).toBe(400);
      expect(await problemCode(res)).toBe("request-invalid");
      expect((await testEnv.BANS.list()).keys.map((k) => k.name)).not.toContainEqual(expect.stringContaining("%"));
    },
  );

  it("decodes the path's escapes once: %41 is A, %2541 is %41", async () => {
    expect((await (await admin("PUT", "/bans/%41", {})).json<{ clientId: string }>()).clientId).toBe("A");
    expect((await (await admin("PUT", "/bans/%2541", {})).json<{ clientId: string }>()).clientId).toBe("%41");
  });

  it("lifts a ban with DELETE", async () => {
    await admin("PUT", "/bans/forgiven", { reason: "oops" });
    expect(await issuedTo("forgiven")).toBe(403);
    expect((await admin("DELETE", "/bans/forgiven")).status).toBe(204);
    expect(await issuedTo("forgiven")).toBe(200);
    expect((await admin("GET", "/bans/forgiven")).status).toBe(404);
  });

  it("writes temporary bans with a KV expiration of at least KV's 60 s minimum", async () => {
    await admin("PUT", "/bans/short", { ttlSeconds: 5 });
    await admin("PUT", "/bans/long", { ttlSeconds: 7200 });
    const { keys } = await testEnv.BANS.list();
    const expiration = (name: string) => keys.find((k) => k.name === name)!.expiration! - Date.now() / 1000;
    expect(expiration("short")).toBeGreaterThan(55);
    expect(expiration("short")).toBeLessThanOrEqual(61);
    expect(expiration("long")).toBeGreaterThan(7190);
  });

  it("ends a temporary ban at its until even while KV still holds the key", async () => {
    const until = new Date(Date.now() - 1000).toISOString();
    await testEnv.BANS.put("expired-ban", JSON.stringify({ reason: "x", until }), { expirationTtl: 60 });
    expect(await issuedTo("expired-ban")).toBe(200);
    expect(await (await admin("GET", "/bans/expired-ban")).json()).toMatchObject({ active: false });
  });

  it.each([
    ["a body that is not JSON", "{", "request-invalid"],
    ["a JSON array", "[]", "request-invalid"],
    ["an unknown field", { reason: "x", ttl: 60 }, "request-invalid"],
    ["a numeric reason", { reason: 42 }, "request-invalid"],
    ["a reason over 500 bytes", { reason: "x".repeat(501) }, "request-invalid"],
    ["ttlSeconds 0", { ttlSeconds: 0 }, "request-invalid"],
    ["ttlSeconds fractional", { ttlSeconds: 1.5 }, "request-invalid"],
    ["ttlSeconds as a string", { ttlSeconds: "60" }, "request-invalid"],
    ["ttlSeconds over a year", { ttlSeconds: 31_536_001 }, "request-invalid"],
  ])("refuses %s with 400 and stores nothing", async (_name, body, code) => {
    const res = await admin("PUT", "/bans/validated", body);
    expect(res.status).toBe(400);
    expect(await problemCode(res)).toBe(code);
    expect(await testEnv.BANS.get("validated")).toBeNull();
  });

  it("refuses a body that is not JSON by type with 415", async () => {
    const res = await call(
      "/admin/bans/typed",
      {
        method: "PUT",
        headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "text/plain" },
        body: '{"reason":"x"}',
      },
      ADMIN,
    );
    expect(res.status).toBe(415);
  });

  it.each([
    ["%2A", 400],
    ["a%5Bb%5D", 400],
    ["a%00b", 400],
    ["%2E%2E", 404], // the URL parser resolves it before routing: /admin/bans/.. is /admin
  ])("refuses the clientId %s with %i", async (clientId, status) => {
    const res = await admin("PUT", `/bans/${clientId}`, { reason: "x" });
    expect(res.status).toBe(status);
    expect((await testEnv.BANS.list()).keys.map((k) => k.name)).not.toContain(decodeURIComponent(clientId));
  });

  it.each([
    ["POST", "/bans/someone", "GET, PUT, DELETE"],
    ["DELETE", "/bans/someone/revoke", "POST"],
    ["PUT", "/bans/someone/revoke", "POST"],
  ])("answers %s %s with 405 and the allowed methods", async (method, path, allowed) => {
    const res = await admin(method, path, { reason: "x" });
    expect(res.status).toBe(405);
    expect(res.headers.get("allow")).toBe(allowed);
  });

  it("answers 503 when KV fails, never 500", async () => {
    const broken = {
      get: () => Promise.reject(new Error("down")),
      put: () => Promise.reject(new Error("down")),
      list: () => Promise.reject(new Error("down")),
      delete: () => Promise.reject(new Error("down")),
    };
    for (const [method, path] of [
      ["PUT", "/bans/x"],
      ["GET", "/bans/x"],
      ["DELETE", "/bans/x"],
      ["GET", "/bans?order=key"],
    ] as const) {
      const res = await admin(method, path, method === "PUT" ? { reason: "x" } : undefined, { ...ADMIN, BANS: broken });
      expect(res.status).toBe(503);
      expect(await problemCode(res)).toBe("ban-list-unavailable");
    }
  });

  it("answers 503 when the index fails, never 500", async () => {
    const stub = { put: () => Promise.reject(new Error("down")), remove: () => Promise.reject(new Error("down")) };
    const broken = { idFromName: () => "id", get: () => ({ ...stub, page: stub.put }) };
    for (const [method, path] of [
      ["PUT", "/bans/x"],
      ["DELETE", "/bans/x"],
      ["GET", "/bans"],
    ] as const) {
      const res = await admin(method, path, method === "PUT" ? { reason: "x" } : undefined, {
        ...ADMIN,
        BAN_INDEX: broken,
      });
      expect(res.status).toBe(503);
      expect(await problemCode(res)).toBe("ban-list-unavailable");
    }
  });

  it("still revokes a ban, and cancels a lifted ban's revocations, when the index fails", async () => {
    const stub = { put: () => Promise.reject(new Error("down")), remove: () => Promise.reject(new Error("down")) };
    const broken = { idFromName: () => "id", get: () => ({ ...stub, page: stub.put }) };
    const put = await admin("PUT", "/bans/index-down", { reason: "x" }, { ...REVOCABLE, BAN_INDEX: broken });
    expect(put.status).toBe(503);
    const banned = await admin("GET", "/bans/index-down", undefined, REVOCABLE);
    expect((await banned.json<{ revocation: { status: string } }>()).revocation.status).toBe("pending");
    expect(await plannedAlarm("index-down")).not.toBeNull();

    const lifted = await admin("DELETE", "/bans/index-down", undefined, { ...REVOCABLE, BAN_INDEX: broken });
    expect(lifted.status).toBe(503);
    expect((await admin("GET", "/bans/index-down", undefined, REVOCABLE)).status).toBe(404);
    expect(await plannedAlarm("index-down")).toBeNull();
  });
});

describe("a ban and its unban made at the same time", () => {
  it("an unban made while the ban's PUT waits on Ably wins: not listed, nothing planned, tokens issued", async () => {
    // Ably stays silent past the worker's 5 s timeout, so the PUT is still on its way when the DELETE runs.
    await fetch("https://ably-rest.test/__script", {
      method: "POST",
      body: JSON.stringify({ target: "clientId:racer", answers: ["silence"] }),
    });
    const put = admin("PUT", "/bans/racer", { reason: "x" }, REVOCABLE);
    while ((await testEnv.BANS.get("racer")) === null) await new Promise((resolve) => setTimeout(resolve, 20));
    expect((await admin("DELETE", "/bans/racer", undefined, REVOCABLE)).status).toBe(204);
    expect((await put).status).toBe(200);

    expect((await admin("GET", "/bans/racer", undefined, REVOCABLE)).status).toBe(404);
    expect(
      ids(
        (await allPages()).flatMap((page) => page.bans),
        "racer",
      ),
    ).toEqual([]);
    expect(await plannedAlarm("racer")).toBeNull();
    expect(await issuedTo("racer", REVOCABLE)).toBe(200);
  }, 15_000);

  it("a ban made after an unban is listed and planned as usual", async () => {
    await admin("PUT", "/bans/reban-after-unban", { reason: "x" }, REVOCABLE);
    expect((await admin("DELETE", "/bans/reban-after-unban", undefined, REVOCABLE)).status).toBe(204);
    await new Promise((resolve) => setTimeout(resolve, 5));
    const rebanned = await admin("PUT", "/bans/reban-after-unban", { reason: "y" }, REVOCABLE);
    expect((await rebanned.json<{ revocation: { status: string } }>()).revocation.status).toBe("pending");
    expect(
      ids(
        (await allPages()).flatMap((page) => page.bans),
        "reban-after-unban",
      ),
    ).toEqual(["reban-after-unban"]);
    expect(await plannedAlarm("reban-after-unban")).not.toBeNull();
  });
});

/** Every page of GET /admin/bans`query` (cursor added), in order, after checking each answers 200. */
async function allPages(query = "") {
  const pages: { bans: Record<string, unknown>[]; cursor: string | null }[] = [];
  let cursor: string | null = "";
  while (cursor !== null) {
    const res = await admin("GET", `/bans?${query}cursor=${encodeURIComponent(cursor)}`);
    expect(res.status).toBe(200);
    const page: { bans: Record<string, unknown>[]; cursor: string | null } = await res.json();
    pages.push(page);
    cursor = page.cursor;
  }
  return pages;
}
const ids = (bans: Record<string, unknown>[], prefix: string) =>
  bans.map((b) => String(b.clientId)).filter((id) => id.startsWith(prefix));

describe("GET /admin/bans lists newest first, with cursor pagination", () => {
  it("pages through every ban, 100 at a time, newest first across pages, with the stored records", async () => {
    const names = Array.from({ length: 230 }, (_, i) => `listed-${String(i).padStart(3, "0")}`);
    // One after the other: each is newer than the one before (equal times fall back to the clientId, also descending).
    for (const name of names) await admin("PUT", `/bans/${name}`, { reason: `r-${name}` });
    const pages = await allPages();
    expect(pages.length).toBeGreaterThanOrEqual(3);
    for (const page of pages) expect(page.bans.length).toBeLessThanOrEqual(100);
    const listed = pages.flatMap((page) => page.bans);
    expect(ids(listed, "listed-")).toEqual(names.toReversed());
    const { bannedAt, ...rest } = listed.find((b) => b.clientId === "listed-007")!;
    expect(rest).toEqual({ clientId: "listed-007", reason: "r-listed-007", bannedBy: "admin-api", active: true });
    expect(Date.now() - Date.parse(String(bannedAt))).toBeLessThan(60_000);
  });

  it("drops a lifted ban, moves a re-ban to the front, and drops a temporary ban once it has ended", async () => {
    for (const name of ["order-a", "order-b", "order-c", "order-d"]) await admin("PUT", `/bans/${name}`, {});
    await admin("PUT", "/bans/order-e", { ttlSeconds: 1 });
    expect(
      ids(
        (await allPages()).flatMap((p) => p.bans),
        "order-",
      ),
    ).toEqual(["order-e", "order-d", "order-c", "order-b", "order-a"]);
    expect((await admin("DELETE", "/bans/order-c")).status).toBe(204);
    await admin("PUT", "/bans/order-a", { reason: "again" });
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const listed = (await allPages()).flatMap((p) => p.bans);
    expect(ids(listed, "order-")).toEqual(["order-a", "order-d", "order-b"]);
    expect(listed.find((b) => b.clientId === "order-a")).toMatchObject({ reason: "again", active: true });
  });

  it("refuses a cursor it did not give, and an unknown order", async () => {
    for (const query of ["cursor=nonsense", "cursor=12:", "order=newest"]) {
      const res = await admin("GET", `/bans?${query}`);
      expect(res.status).toBe(400);
      expect(await problemCode(res)).toBe("request-invalid");
    }
  });

  it("lists KV itself with order=key: bans written straight into KV too, in key order, each read from its value", async () => {
    await admin("PUT", "/bans/keyed-b", { reason: "through the API" });
    await testEnv.BANS.put("keyed-a", JSON.stringify({ reason: "wrangler kv key put" }));
    await testEnv.BANS.put("keyed-c", "");
    // Ended, but its key not yet expired: listed as such, not as a ban in force.
    await testEnv.BANS.put("keyed-d", JSON.stringify({ until: "2020-01-01T00:00:00Z" }));
    expect(
      ids(
        (await allPages()).flatMap((p) => p.bans),
        "keyed-",
      ),
    ).toEqual(["keyed-b"]);
    const byKey = (await allPages("order=key&")).flatMap((p) => p.bans);
    expect(byKey.filter((b) => String(b.clientId).startsWith("keyed-"))).toEqual([
      { clientId: "keyed-a", reason: "wrangler kv key put", active: true },
      expect.objectContaining({ clientId: "keyed-b", reason: "through the API", active: true }),
      { clientId: "keyed-c", active: true },
      { clientId: "keyed-d", until: "2020-01-01T00:00:00Z", active: false },
    ]);
  });
});

describe("role bans (ROLES_CLAIM, BANNED_ROLE_PATTERN)", () => {
  const roles = { ROLES_CLAIM: "app_metadata.roles" };

  it.each([
    ["the banned role of the Netlify function this project grew from", ["member", "banned"], 403],
    ["any case", ["BANNED-for-spam"], 403],
    ["no banned role", ["member", "unbanned"], 200],
    ["no roles at all", undefined, 200],
  ])("with %s answers %i", async (_name, userRoles, status) => {
    const claims = userRoles ? { app_metadata: { roles: userRoles } } : {};
    const res = await getToken(await token({ claims }), "", {}, roles);
    expect(res.status).toBe(status);
  });

  it("refuses without reading KV", async () => {
    const kvThatMustNotBeRead = { get: () => Promise.reject(new Error("read")) };
    const jwt = await token({ claims: { app_metadata: { roles: ["banned"] } } });
    const res = await getToken(jwt, "", {}, { ...roles, BANS: kvThatMustNotBeRead });
    expect(res.status).toBe(403);
    expect(await problemCode(res)).toBe("user-banned");
  });

  it("reads a top-level roles claim, a single string, and a custom pattern", async () => {
    const jwt = await token({ claims: { roles: "suspended" } });
    expect(
      (await getToken(jwt, "", {}, { ROLES_CLAIM: "roles", BANNED_ROLE_PATTERN: "^(banned|suspended)$" })).status,
    ).toBe(403);
    expect((await getToken(jwt, "", {}, { ROLES_CLAIM: "roles" })).status).toBe(200);
  });
});

describe("immediate cut-off: revocation through Ably (ABLY_REVOCABLE_TOKENS)", () => {
  const revocations = async () => (await fetch("https://ably-rest.test/__revocations")).json<{ target: string }[]>();

  it("revokes the clientId's tokens at Ably when banning, as Ably documents the request, and plans the second round", async () => {
    const res = await admin("PUT", "/bans/cut-off", { reason: "abuse" }, REVOCABLE);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      revocation: {
        status: "pending",
        rounds: [
          { name: "at-ban", state: "revoked" },
          { name: "after-propagation", state: "pending" },
        ],
      },
    });
    expect((await revocations()).map((r) => r.target)).toContain("clientId:cut-off");
  });

  it("stores the ban and says so when Ably cannot be reached", async () => {
    const res = await admin(
      "PUT",
      "/bans/stored-anyway",
      { reason: "abuse" },
      { ...REVOCABLE, ABLY_REST_URL: "https://ably-down.test" },
    );
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      revocation: {
        status: "pending",
        rounds: [{ state: "pending", attempts: [{ outcome: "failed", reason: "Ably answered HTTP 500" }] }, {}],
      },
    });
    expect(await issuedTo("stored-anyway", REVOCABLE)).toBe(403);
  });

  it("caps issued tokens at 1 h, as Ably requires for revocable keys", async () => {
    const res = await call("/healthz", {}, { ...REVOCABLE, ABLY_TOKEN_TTL_SECONDS: "7200" });
    expect(res.status).toBe(503);
    expect(JSON.stringify(await res.json())).toContain("ABLY_TOKEN_TTL_SECONDS must be a whole number from 1 to 3600");
  });
});
