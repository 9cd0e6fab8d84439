/**
 * A ban that holds everywhere, end to end with real parts: two `wrangler dev` processes
 * with their own persisted state stand for two Cloudflare locations, the second of which has not
 * yet heard of the ban (as KV propagation would have it); the real ably-js client talks to the
 * Ably stand-in (dev/ably/), which revokes as Ably documents `issuedBefore`.
 * The assertions are on the order of events, never on elapsed time.
 */
import * as Ably from "ably";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAuthCallback } from "../../client/ably-auth";
import { ISSUED_BEFORE_SKEW_MS } from "../../src/constants";
import { type AblyStandIn, startAblyStandIn } from "../../dev/ably/server";
import type { Event } from "../../dev/ably/stand-in";
import { identityProvider, TEST_ABLY_KEY } from "../support/identity-provider";
import { type Served, serve } from "../../dev/node-server";
import { identityToken } from "../support/tokens";
import { startWranglerDev, type WranglerDev } from "../support/wrangler-dev";

/**
 * BAN_PROPAGATION_SECONDS here: ample time for the test to write the ban into the second
 * location's KV (one HTTP call) before the second revocation, as KV propagation does in production
 * within the default 180 s.
 */
const PROPAGATION_SECONDS = 10;
const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef0123456789";
/** ably-js's retry delays, shortened so a client that is refused a token retries within a second. */
const RETRY_MS = 300;
/** Longest wait for any one step: the propagation window, a restart of wrangler dev, with margin. */
const STEP_TIMEOUT_MS = (PROPAGATION_SECONDS + 40) * 1000;
/** Longest a test may take: a few steps, on a machine that other suites keep busy. */
const TEST_TIMEOUT_MS = 3 * STEP_TIMEOUT_MS;

let provider: Awaited<ReturnType<typeof identityProvider>>;
let idp: Served;
let ably: AblyStandIn;
/** The location where the moderator bans, and one whose ban list lags. */
let first: WranglerDev;
let second: WranglerDev;

beforeAll(async () => {
  idp = await serve(async (origin) => {
    provider = await identityProvider(origin);
    return provider.handle;
  });
  ably = await startAblyStandIn(TEST_ABLY_KEY, { "*": ["*"] });
  const vars = {
    JWT_ISSUER: provider.issuer,
    JWT_AUDIENCE: provider.audience,
    ABLY_API_KEY: TEST_ABLY_KEY,
    ADMIN_TOKEN,
    ABLY_REVOCABLE_TOKENS: "true",
    ABLY_REST_URL: `http://127.0.0.1:${ably.port}`,
    BAN_PROPAGATION_SECONDS: String(PROPAGATION_SECONDS),
  };
  // One after the other: two cold starts at once on two cores can outlast the start-up timeout.
  first = await startWranglerDev(vars);
  // The ban reaches the second location's KV through its own admin API, with revocation off there
  // so that the call only writes KV, as propagation would: one HTTP call, fast enough to come
  // before the second revocation however busy the machine (a `wrangler kv` run may take seconds).
  second = await startWranglerDev({ ...vars, ABLY_REVOCABLE_TOKENS: "false" });
}, 180_000);

afterAll(async () => {
  await first?.stop();
  await second?.stop();
  await ably?.close();
  await idp?.close();
});

const clients: Ably.Realtime[] = [];
afterEach(() => {
  for (const client of clients.splice(0)) client.close();
});

const admin = async (dev: WranglerDev, method: string, path: string) => {
  const response = await fetch(`${dev.base}/admin${path}`, {
    method,
    headers: { Authorization: `Bearer ${ADMIN_TOKEN}`, "Content-Type": "application/json" },
    body: method === "PUT" ? JSON.stringify({ reason: "spam" }) : undefined,
  });
  expect(response.status, await response.clone().text()).toBe(200);
  return response.json<{ revocation: { status: string; airtightAt: string; rounds: { state: string }[] } }>();
};

/** Resolves once `condition` holds; fails after STEP_TIMEOUT_MS saying what it waited for and what happened. */
async function until(condition: () => boolean, what: string) {
  const deadline = Date.now() + STEP_TIMEOUT_MS;
  while (!condition()) {
    if (Date.now() > deadline) {
      const happened = ably.log.map((e) =>
        e.kind === "token" ? `token ${e.grant ? "accepted" : e.error?.code}` : e.kind === "mark" ? e.label : e.kind,
      );
      throw new Error(`${what}: not within ${STEP_TIMEOUT_MS} ms; the stand-in saw: ${happened.join(", ")}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const revocationsOf = (clientId: string) =>
  ably.log.filter(
    (e): e is Extract<Event, { kind: "revocation" }> => e.kind === "revocation" && e.target === `clientId:${clientId}`,
  );
const acceptedOf = (clientId: string) =>
  ably.log.filter((e): e is Extract<Event, { kind: "token" }> => e.kind === "token" && e.grant?.clientId === clientId);
const cutsOf = (clientId: string) => ably.log.filter((e) => e.kind === "cut" && e.clientId === clientId);
/** Where `event` is in the stand-in's log. */
const at = (event: Event | undefined) => {
  expect(event).toBeDefined();
  return ably.log.indexOf(event!);
};

describe("a ban with revocable tokens, a second location that lags", () => {
  it(
    "revokes again once the ban has propagated, reaching the token the lagging location minted; the client ends FAILED",
    async () => {
      const clientId = "roaming";
      /** Where the client's token requests go: the first location, then (as anycast may send it) the second. */
      let location = first;
      const statuses: number[] = [];
      const authCallback: Ably.ClientOptions["authCallback"] = (params, callback) =>
        createAuthCallback({
          endpoint: `${location.base}/auth`,
          getIdentityToken: () =>
            identityToken(
              { issuer: provider.issuer, audience: provider.audience, key: provider.privateJwks.rsa },
              { claims: { sub: clientId } },
            ),
          fetch: async (input, init) => {
            const response = await fetch(input, init);
            statuses.push(response.status);
            return response;
          },
        })(params, callback);
      const client = new Ably.Realtime({
        ...ably.clientOptions,
        logLevel: 0,
        authCallback,
        disconnectedRetryTimeout: RETRY_MS,
        suspendedRetryTimeout: RETRY_MS,
      });
      clients.push(client);
      await client.connection.whenState("connected");

      location = second;
      const ban = await admin(first, "PUT", `/bans/${clientId}`);
      expect(ban.revocation).toMatchObject({ status: "pending", rounds: [{ state: "revoked" }, { state: "pending" }] });

      // The client is cut off, asks the second location, which has not heard of the ban: a new token.
      await until(
        () => acceptedOf(clientId).length >= 2 && client.connection.state === "connected",
        "a token from the second location",
      );
      await admin(second, "PUT", `/bans/${clientId}`);
      ably.mark("the ban reached the second location");

      await until(() => client.connection.state === "failed", "the client FAILED");
      expect(client.connection.errorReason).toMatchObject({ statusCode: 403 });

      const [firstToken, lateToken, ...moreTokens] = acceptedOf(clientId);
      const [atBan, afterPropagation, ...moreRevocations] = revocationsOf(clientId);
      const [firstCut, secondCut] = cutsOf(clientId);
      const propagated = ably.log.find((e) => e.kind === "mark");
      expect(moreTokens).toEqual([]);
      expect(moreRevocations).toEqual([]);
      // The order: token, revocation, cut, the lagging location's token, the ban reaches it, second revocation, cut.
      const order = [firstToken, atBan, firstCut, lateToken, propagated, afterPropagation, secondCut].map(at);
      expect(order).toEqual([...order].sort((a, b) => a - b));
      // The first revocation could not reach the late token; the second one did, by its issuedBefore.
      expect(lateToken!.grant!.iat * 1000).toBeGreaterThanOrEqual(atBan!.issuedBefore);
      expect(afterPropagation!.issuedBefore).toBeGreaterThan(lateToken!.grant!.iat * 1000);
      expect(firstCut).toMatchObject({ token: firstToken!.token, code: 40141 });
      expect(secondCut).toMatchObject({ token: lateToken!.token, code: 40141 });
      // After it the second location refuses, once: a 403 ends the client's asking. (There may be more
      // than two 200s: a token minted within the same second as a revocation has an `iat`, in whole
      // seconds, before its `issuedBefore`, and Ably refuses it, so the client asks again.)
      expect(statuses.filter((s) => s !== 200)).toEqual([403]);
      expect(statuses.at(-1)).toBe(403);

      const shown = await admin(first, "GET", `/bans/${clientId}`);
      expect(shown.revocation).toMatchObject({
        status: "revoked",
        rounds: [{ state: "revoked" }, { state: "revoked" }],
      });
    },
    TEST_TIMEOUT_MS,
  );

  it(
    "still makes the second revocation when the first location restarts in between (its alarm is persisted)",
    async () => {
      const clientId = "restarted";
      const ban = await admin(first, "PUT", `/bans/${clientId}`);
      expect(revocationsOf(clientId)).toHaveLength(1);

      await first.restart();
      ably.mark("the first location restarted");
      await until(() => revocationsOf(clientId).length === 2, "the second revocation");

      const [, afterPropagation] = revocationsOf(clientId);
      const restarted = ably.log.find((e) => e.kind === "mark" && e.label === "the first location restarted");
      expect(at(afterPropagation)).toBeGreaterThan(at(restarted));
      // Set when the alarm ran, on the first location's clock, a little back for Ably's (constants.ts).
      expect(afterPropagation!.issuedBefore + ISSUED_BEFORE_SKEW_MS).toBeGreaterThanOrEqual(
        Date.parse(ban.revocation.airtightAt),
      );
      const shown = await admin(first, "GET", `/bans/${clientId}`);
      expect(shown.revocation).toMatchObject({
        status: "revoked",
        rounds: [{ state: "revoked" }, { state: "revoked" }],
      });
    },
    TEST_TIMEOUT_MS,
  );
});
