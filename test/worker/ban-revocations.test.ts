/**
 * The two revocation rounds of a ban (src/bans/ban-revocations.ts), through the admin API, with the
 * Durable Object's alarms run explicitly (`runDurableObjectAlarm`) instead of waited for; setup.ts
 * deletes every alarm after each test. Ably is the stand-in's REST API (dev/ably/rest.ts, served by
 * vitest.config.ts), or a host scripted to answer 429, 5xx or nothing where a test says so.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { retryDelay } from "../../src/bans/ban-revocations";
import {
  ABLY_MAX_ISSUED_BEFORE_AGE_MS,
  ISSUED_BEFORE_SKEW_MS,
  REVOCATION_MAX_ATTEMPTS,
  UPSTREAM_TIMEOUT_MS,
} from "../../src/constants";
import { PROBLEM_TYPE_PREFIX } from "../../src/errors";
import { adminCall, getToken, problemOf, seen, testEnv, token } from "./helpers";

const ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123456789";
seen.secrets.push(ADMIN_TOKEN);
const REVOCABLE = { ADMIN_TOKEN, ABLY_REVOCABLE_TOKENS: "true", ABLY_REST_URL: "https://ably-rest.test" };
/** The default BAN_PROPAGATION_SECONDS, in ms: alarms this far out never fire by themselves within a test. */
const PROPAGATION_MS = 180_000;

interface Attempt {
  at: string;
  issuedBefore: string;
  outcome: string;
  reason?: string;
}
interface Round {
  name: string;
  due: string;
  state: string;
  attempts: Attempt[];
}
interface Status {
  status: string;
  airtightAt: string | null;
  nextAttemptAt?: string | null;
  rounds?: Round[];
}

const admin = (method: string, path: string, body?: unknown, overrides: Record<string, unknown> = REVOCABLE) =>
  adminCall(method, path, body, overrides);
/** Bans through the admin API and returns the answer's `revocation`. */
async function ban(
  clientId: string,
  body: unknown = { reason: "abuse" },
  overrides?: Record<string, unknown>,
): Promise<Status> {
  const res = await admin("PUT", `/bans/${clientId}`, body, overrides);
  expect(res.status).toBe(200);
  return (await res.json<{ revocation: Status }>()).revocation;
}
/** GET /admin/bans/{clientId}'s `revocation`. */
async function revocationOf(clientId: string): Promise<Status> {
  const res = await admin("GET", `/bans/${clientId}`);
  expect(res.status).toBe(200);
  return (await res.json<{ revocation: Status }>()).revocation;
}

const namespace = testEnv.BAN_REVOCATIONS;
const objectOf = (clientId: string) => namespace.get(namespace.idFromName(clientId));
/** Runs the object's alarm now, as if its time had come; true when one was set. */
const runAlarm = (clientId: string) => runDurableObjectAlarm(objectOf(clientId));
const alarmOf = (clientId: string) => runInDurableObject(objectOf(clientId), (_, state) => state.storage.getAlarm());

/** What the Ably stand-in revoked for `clientId`, in order. */
async function revokedAtAbly(clientId: string): Promise<number[]> {
  const all = await (
    await fetch("https://ably-rest.test/__revocations")
  ).json<{ target: string; issuedBefore: number }[]>();
  return all.filter((r) => r.target === `clientId:${clientId}`).map((r) => r.issuedBefore);
}
/** Makes the stand-in answer the next revocations for `clientId` with these, in order. */
async function scriptAbly(clientId: string, answers: (number | "silence")[]) {
  await fetch("https://ably-rest.test/__script", {
    method: "POST",
    body: JSON.stringify({ target: `clientId:${clientId}`, answers }),
  });
}
const ms = (iso: string | null | undefined) => Date.parse(iso!);

describe("a ban with revocable tokens revokes at once and again after BAN_PROPAGATION_SECONDS", () => {
  it("revokes at the ban, says when the ban is airtight, and sets the alarm for the second round", async () => {
    const before = Date.now();
    const revocation = await ban("twice");
    const [atBan, afterPropagation] = revocation.rounds!;

    expect(revocation.status).toBe("pending");
    expect(atBan).toMatchObject({ name: "at-ban", state: "revoked", attempts: [{ outcome: "revoked" }] });
    expect(afterPropagation).toMatchObject({ name: "after-propagation", state: "pending", attempts: [] });
    expect(ms(afterPropagation!.due) - ms(atBan!.due)).toBe(PROPAGATION_MS);
    expect(revocation.airtightAt).toBe(afterPropagation!.due);
    expect(revocation.nextAttemptAt).toBe(afterPropagation!.due);
    expect(await alarmOf("twice")).toBe(ms(afterPropagation!.due));
    const [first] = await revokedAtAbly("twice");
    expect(first).toBe(ms(atBan!.attempts[0]!.issuedBefore));
    expect(first).toBeGreaterThanOrEqual(before);
  });

  it("makes the second revocation on the alarm, with issuedBefore at that moment, and is then done", async () => {
    await ban("second-round");
    const alarmRanAt = Date.now();
    expect(await runAlarm("second-round")).toBe(true);

    const revocation = await revocationOf("second-round");
    expect(revocation).toMatchObject({ status: "revoked", nextAttemptAt: null });
    const [, second] = await revokedAtAbly("second-round");
    const attempt = revocation.rounds![1]!.attempts[0]!;
    expect(ms(attempt.issuedBefore)).toBe(second);
    // Its own clock's moment, a second back for Ably's (constants.ts).
    expect(second! + ISSUED_BEFORE_SKEW_MS).toBeGreaterThanOrEqual(alarmRanAt);
    expect(second! + ISSUED_BEFORE_SKEW_MS).toBeLessThanOrEqual(Date.now());
    expect(revocation.airtightAt).toBe(attempt.at);
    expect(await alarmOf("second-round")).toBeNull();
    expect(await runAlarm("second-round")).toBe(false);
  });

  it("still makes the second revocation for a temporary ban that ended before it", async () => {
    await ban("brief", { ttlSeconds: 1 });
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    expect(await getToken(await token({ claims: { sub: "brief" } }), "", {}, REVOCABLE).then((r) => r.status)).toBe(
      200,
    );

    expect(await runAlarm("brief")).toBe(true);
    expect(await revokedAtAbly("brief")).toHaveLength(2);
    expect((await revocationOf("brief")).status).toBe("revoked");
  });

  it("answers the time of the second revocation: BAN_PROPAGATION_SECONDS after the ban", async () => {
    const revocation = await ban("configured", undefined, { ...REVOCABLE, BAN_PROPAGATION_SECONDS: "42" });
    expect(ms(revocation.airtightAt) - ms(revocation.rounds![0]!.due)).toBe(42_000);
  });
});

describe("Ably answering 429, 5xx or nothing", () => {
  it("retries with doubling delays until Ably revokes, each time up to the moment Ably gets the call", async () => {
    await scriptAbly("flaky", [429, 503, "silence"]);
    const revocation = await ban("flaky");
    expect(revocation.rounds![0]).toMatchObject({
      state: "pending",
      attempts: [{ outcome: "failed", reason: "Ably answered HTTP 429" }],
    });

    const expectAlarmAfterLastFailure = async (failures: number) => {
      const attempts = (await revocationOf("flaky")).rounds![0]!.attempts;
      expect(attempts).toHaveLength(failures);
      expect(await alarmOf("flaky")).toBe(ms(attempts.at(-1)!.at) + 5_000 * 2 ** (failures - 1));
    };
    await expectAlarmAfterLastFailure(1);
    expect(await runAlarm("flaky")).toBe(true);
    await expectAlarmAfterLastFailure(2);
    expect(await runAlarm("flaky")).toBe(true); // no answer: given up after UPSTREAM_TIMEOUT_MS
    await expectAlarmAfterLastFailure(3);
    expect(await runAlarm("flaky")).toBe(true);

    const [atBan, afterPropagation] = (await revocationOf("flaky")).rounds!;
    expect(atBan!.state).toBe("revoked");
    expect(atBan!.attempts.map((a) => [a.outcome, a.reason])).toEqual([
      ["failed", "Ably answered HTTP 429"],
      ["failed", "Ably answered HTTP 503"],
      ["failed", "Ably did not answer in time"],
      ["revoked", undefined],
    ]);
    // Left to Ably: unknown while it failed, then what Ably applied.
    expect(atBan!.attempts.map((a) => a.issuedBefore)).toEqual([null, null, null, expect.any(String)]);
    expect(await revokedAtAbly("flaky")).toEqual([ms(atBan!.attempts[3]!.issuedBefore)]);
    // The second round is untouched by the first one's retries.
    expect(await alarmOf("flaky")).toBe(ms(afterPropagation!.due));
  }, 20_000);

  it("retries the second round with the issuedBefore of its first attempt", async () => {
    await ban("steady");
    await scriptAbly("steady", [503, 429]);
    for (let i = 0; i < 3; i++) expect(await runAlarm("steady")).toBe(true);

    const attempts = (await revocationOf("steady")).rounds![1]!.attempts;
    expect(attempts.map((a) => a.outcome)).toEqual(["failed", "failed", "revoked"]);
    expect(new Set(attempts.map((a) => a.issuedBefore)).size).toBe(1);
    expect((await revokedAtAbly("steady"))[1]).toBe(ms(attempts[0]!.issuedBefore));
  });

  it(`gives a round up after ${REVOCATION_MAX_ATTEMPTS} attempts and says so; the second round still makes the ban airtight`, async () => {
    await scriptAbly("unlucky", Array<number>(REVOCATION_MAX_ATTEMPTS).fill(503));
    // The second round an hour out, after every retry of the first: each alarm below is the first's.
    await ban("unlucky", undefined, { ...REVOCABLE, BAN_PROPAGATION_SECONDS: "3600" });
    for (let i = 1; i < REVOCATION_MAX_ATTEMPTS; i++) expect(await runAlarm("unlucky")).toBe(true);

    const revocation = await revocationOf("unlucky");
    expect(revocation.status).toBe("failed");
    expect(revocation.rounds![0]!.state).toBe("failed");
    expect(revocation.rounds![0]!.attempts).toHaveLength(REVOCATION_MAX_ATTEMPTS);
    expect(revocation.nextAttemptAt).toBe(revocation.rounds![1]!.due);
    expect(revocation.airtightAt).toBe(revocation.rounds![1]!.due);
  });

  it("says the ban is not airtight once its last round is given up", async () => {
    await scriptAbly("never-airtight", [403]);
    await ban("never-airtight");
    await scriptAbly("never-airtight", [403]);
    expect(await runAlarm("never-airtight")).toBe(true);

    const revocation = await revocationOf("never-airtight");
    expect(revocation).toMatchObject({ status: "failed", airtightAt: null, nextAttemptAt: null });
    expect(await alarmOf("never-airtight")).toBeNull();
  });

  it.each([
    ["a refused request (400)", 400],
    ["a refused key (401)", 401],
  ])("does not retry %s: it will not pass", async (_name, status) => {
    const clientId = `refused-${status}`;
    await scriptAbly(clientId, [status]);
    const revocation = await ban(clientId);
    expect(revocation.rounds![0]).toMatchObject({
      state: "failed",
      attempts: [{ reason: `Ably answered HTTP ${status}` }],
    });
    expect(revocation.status).toBe("failed");
  });

  it("keeps every attempt within the hour Ably accepts the round's issuedBefore", () => {
    const delays = Array.from({ length: REVOCATION_MAX_ATTEMPTS - 1 }, (_, i) => retryDelay(i + 1));
    const lastStart = delays.reduce((a, b) => a + b, 0) + (REVOCATION_MAX_ATTEMPTS - 1) * UPSTREAM_TIMEOUT_MS;
    expect(delays).toEqual([5, 10, 20, 40, 80, 160, 320, 640, 1280].map((s) => s * 1000));
    expect(lastStart + UPSTREAM_TIMEOUT_MS).toBeLessThan(ABLY_MAX_ISSUED_BEFORE_AGE_MS);
  });
});

describe("unban, re-ban, and bans written straight into KV", () => {
  it("cancels what is pending when the ban is lifted", async () => {
    await ban("lifted");
    expect((await admin("DELETE", "/bans/lifted")).status).toBe(204);
    expect(await alarmOf("lifted")).toBeNull();
    expect(await runAlarm("lifted")).toBe(false);
    expect(await revokedAtAbly("lifted")).toHaveLength(1);
  });

  it("lets an unban made while Ably is awaited win: that attempt's result is dropped", async () => {
    await scriptAbly("mid-call", ["silence"]);
    const put = ban("mid-call");
    await new Promise((resolve) => setTimeout(resolve, 500)); // the revocation is under way
    expect((await admin("DELETE", "/bans/mid-call")).status).toBe(204);

    expect(await put).toEqual({ status: "none", airtightAt: null });
    expect(await alarmOf("mid-call")).toBeNull();
  }, 10_000);

  it("reschedules on a re-ban: revokes again at once and moves the second round", async () => {
    const first = await ban("again");
    await new Promise((resolve) => setTimeout(resolve, 20));
    const second = await ban("again");

    expect(second.rounds![0]!.attempts).toHaveLength(1);
    expect(ms(second.rounds![1]!.due)).toBeGreaterThan(ms(first.rounds![1]!.due));
    expect(await alarmOf("again")).toBe(ms(second.rounds![1]!.due));
    expect(await revokedAtAbly("again")).toHaveLength(2);
  });

  it("shows no revocation for a ban put into KV, until POST /revoke plans it", async () => {
    await testEnv.BANS.put("kv-only", '{"reason":"by wrangler"}');
    expect(await revocationOf("kv-only")).toEqual({ status: "none", airtightAt: null });

    const res = await admin("POST", "/bans/kv-only/revoke");
    expect(res.status).toBe(200);
    const { revocation } = await res.json<{ revocation: Status }>();
    expect(revocation).toMatchObject({ status: "pending", rounds: [{ state: "revoked" }, { state: "pending" }] });
    expect(await revocationOf("kv-only")).toEqual(revocation);
    expect(await revokedAtAbly("kv-only")).toHaveLength(1);
  });

  it.each([
    ["a user who is not banned", "never-banned", REVOCABLE, 404, "ban-not-found"],
    ["revocation off", "kv-ban-off", { ADMIN_TOKEN }, 409, "revocation-not-enabled"],
  ])("refuses POST /revoke for %s", async (_name, clientId, overrides, status, code) => {
    await testEnv.BANS.put("kv-ban-off", "");
    const res = await admin("POST", `/bans/${clientId}/revoke`, undefined, overrides);
    expect(res.status).toBe(status);
    expect((await problemOf(res)).type).toBe(PROBLEM_TYPE_PREFIX + code);
    expect(await revokedAtAbly(clientId)).toEqual([]);
  });

  it("revokes nothing and plans nothing without ABLY_REVOCABLE_TOKENS", async () => {
    const revocation = await ban("not-revocable", undefined, { ADMIN_TOKEN });
    expect(revocation.status).toBe("not-enabled");
    expect(await alarmOf("not-revocable")).toBeNull();
    expect(await revokedAtAbly("not-revocable")).toEqual([]);
  });
});
