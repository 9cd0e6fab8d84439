/**
 * The per-request log record (src/request/log.ts): what it holds, what it never holds, and that the
 * dashboard queries documented in docs/operations.md use fields and values the worker really writes.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import operations from "../../docs/operations.md?raw";
import { ACCESS_AUD, ACCESS_TEAM, accessToken } from "./access";
import { adminCall, bodyOf, call, getToken, testEnv, token } from "./helpers";

const ADMIN = { ADMIN_TOKEN: "log-test-admin-token-0123456789abcdef0123" };
const ACCESS = { ACCESS_TEAM_DOMAIN: ACCESS_TEAM, ACCESS_AUD, MODERATORS: "@mods.example.org" };

/** Records the worker logs while `act` runs. */
async function recordsDuring(act: () => Promise<unknown>): Promise<Record<string, unknown>[]> {
  // Spied, not silenced: the lines still reach setup.ts's check that no log line holds a secret.
  const log = vi.spyOn(console, "log");
  try {
    await act();
    return log.mock.calls.map((args) => args[0] as Record<string, unknown>);
  } finally {
    log.mockRestore();
  }
}

/** The dashboard query table of docs/operations.md: each row's filter and group-by cells. */
function documentedQueries(): { what: string; filters: string[]; groupBy: string[]; visualization: string }[] {
  const start = operations.indexOf("### Dashboard queries");
  const section = operations.slice(start, operations.indexOf("\n## ", start));
  const rows = section
    .split("\n")
    .filter((line) => line.startsWith("| ") && !line.startsWith("| what") && !line.startsWith("|---"));
  const codes = (cell: string) => [...cell.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
  return rows.map((row) => {
    const [what, visualization, filter, groupBy] = row.split("|").slice(1, -1);
    return { what: what!.trim(), visualization: visualization!, filters: codes(filter!), groupBy: codes(groupBy!) };
  });
}

describe("the log", () => {
  afterEach(() => vi.restoreAllMocks());

  it("has one record per request: outcome, status, clientId, provider, issuer, location, duration, request id", async () => {
    const jwt = await token({ claims: { sub: "logged" } });
    const [line, ...more] = await recordsDuring(() =>
      call("/auth", {
        headers: { Authorization: `Bearer ${jwt}`, "X-Request-Id": "req-123" },
        cf: { colo: "AMS", country: "NL" },
      }),
    );
    expect(more).toEqual([]);
    expect(line).toMatchObject({
      requestId: "req-123",
      method: "GET",
      path: "/auth",
      status: 200,
      outcome: "issued",
      clientId: "logged",
      provider: testEnv.JWT_ISSUER,
      issuer: testEnv.JWT_ISSUER,
      colo: "AMS",
      country: "NL",
    });
    expect(line!.durationMs).toBeTypeOf("number");
  });

  it("names the problem code of a refusal, and the provider an unverified token named, but no clientId", async () => {
    const [line] = await recordsDuring(async () => getToken(await token({ claims: { sub: "someone", exp: 1 } })));
    expect(line).toMatchObject({ status: 401, outcome: "identity-token-expired", provider: testEnv.JWT_ISSUER });
    expect(line!.clientId).toBeUndefined();
    expect(line!.issuer).toBeUndefined();
  });

  it("names who made an admin call, what it did and to whom: a ban by token, its unban by an Access moderator", async () => {
    const records = await recordsDuring(async () => {
      await adminCall("PUT", "/bans/log-subject", { reason: "r" }, ADMIN);
      await call(
        "/admin/bans/log-subject",
        {
          method: "DELETE",
          headers: { "Cf-Access-Jwt-Assertion": await accessToken({ email: "anna@mods.example.org" }) },
        },
        ACCESS,
      );
      await adminCall("GET", "/bans/log-subject", undefined, ADMIN);
    });
    expect(records).toMatchObject([
      { method: "PUT", status: 200, outcome: "banned", clientId: "log-subject", moderator: "token" },
      {
        method: "DELETE",
        status: 204,
        outcome: "unbanned",
        clientId: "log-subject",
        moderator: "anna@mods.example.org",
      },
      { method: "GET", status: 404, outcome: "ban-not-found", clientId: "log-subject", moderator: "token" },
    ]);
  });

  it("never holds the identity token, the issued token, the Ably key or the Authorization header", async () => {
    const lines: string[] = [];
    const capture = (...args: unknown[]) => void lines.push(JSON.stringify(args));
    vi.spyOn(console, "log").mockImplementation(capture);
    vi.spyOn(console, "error").mockImplementation(capture);
    vi.spyOn(console, "warn").mockImplementation(capture);
    const identity = await token();
    const issued = await bodyOf(await getToken(identity));
    await getToken(identity, "?capability=%7B", {}, {});
    await getToken(identity, "", {}, { ABLY_API_KEY: "app.key:" });
    await call("/auth", { headers: { Authorization: `Basic ${btoa("user:pass")}` } });
    const all = lines.join("\n");
    expect(lines.length).toBeGreaterThanOrEqual(4);
    for (const secret of [
      identity,
      ...identity.split("."),
      issued,
      ...issued.split("."),
      String(testEnv.ABLY_API_KEY).split(":")[1]!,
      btoa("user:pass"),
    ]) {
      expect(all).not.toContain(secret);
    }
    expect(all).not.toMatch(/authorization|bearer/i);
  });

  it("has every field and value the documented dashboard queries use", async () => {
    const queries = documentedQueries();
    expect(queries.length).toBeGreaterThanOrEqual(6);
    // Requests that together write every field and every value the queries name: an issued token,
    // a refusal after verification (capability), a refusal of an expired token, the provider's
    // discovery down, the ban list down, a ban and an unban.
    const jwt = await token({ claims: { sub: "dashboard" } });
    const kvDown = { get: () => Promise.reject(new Error("KV down")) };
    const records = await recordsDuring(async () => {
      // As Cloudflare's edge delivers it: request.cf says where.
      await call("/auth", { headers: { Authorization: `Bearer ${jwt}` }, cf: { colo: "AMS", country: "NL" } });
      await getToken(jwt, `?capability=${encodeURIComponent('{"elsewhere":["publish"]}')}`);
      await getToken(await token({ claims: { exp: 1 } }));
      await getToken(
        await token({ claims: { iss: "https://down.test/" } }),
        "",
        {},
        { JWT_ISSUER: "https://down.test/" },
      );
      await getToken(jwt, "", {}, { BANS: kvDown });
      // The admin API: a ban and its unban.
      await adminCall("PUT", "/bans/dashboard-subject", {}, ADMIN);
      await adminCall("DELETE", "/bans/dashboard-subject", undefined, ADMIN);
    });
    const written = (field: string) => records.some((r) => r[field] !== undefined);
    for (const query of queries) {
      for (const field of query.groupBy) expect(written(field), `${query.what}: group by ${field}`).toBe(true);
      for (const filter of query.filters) {
        const m = /^(\w+) (=|!=) "([^"]*)"$/.exec(filter);
        expect(m, `${query.what}: filter ${filter} is field = "value"`).not.toBeNull();
        const [, field, , value] = m!;
        expect(written(field!), `${query.what}: filter on ${field}`).toBe(true);
        expect(
          records.map((r) => r[field!]),
          `${query.what}: ${field} ${value}`,
        ).toContain(value);
      }
      for (const field of query.visualization.match(/`(\w+)`/g) ?? []) {
        expect(written(field.slice(1, -1)), `${query.what}: ${field}`).toBe(true);
      }
    }
  });
});
