/**
 * The worker against a real OpenID Provider: panva's certified oidc-provider on 127.0.0.1, found
 * through OIDC discovery only (no JWKS_URL), issuing RFC 9068 JWT access tokens through the
 * client_credentials grant. Each user is an OAuth client, so a token's `sub` is its client id.
 *
 * Several `wrangler dev` servers run the same worker. Each has its own isolate and its own local
 * Cache API, so each is what one Cloudflare location looks like to the provider:
 *   main   - the one most tests talk to;
 *   second - fetched the keys before the rotation, to show a refetch after the old key's removal;
 *   fresh  - never called until the provider is down;
 *   hung   - its issuer accepts TCP connections and never answers.
 *
 * An unknown kid makes the worker fetch the JWKS again only when its location last asked more than
 * JWKS_COOLDOWN_MS (30 s) ago. To make the rotation deterministic, this file brackets, from here,
 * when a location last fetched: between the timestamps taken just before and just after the
 * requests that made it fetch. "Inside the cooldown" is checked against the earlier one; "past
 * the cooldown" is waited for from the later one. That is one wait of about 30 s for the file.
 *
 * Every user sends at most a few requests a minute to each server, and bursts are of distinct
 * users, so the per-user rate limit of wrangler.toml never answers instead of the code under test.
 */
import { createServer as createNetServer, type Server as NetServer, type Socket } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { decodeJwt, type JWK } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  FAILED_ASK_MEMORY_MS,
  JWKS_CACHE_MAX_AGE_MS,
  JWKS_COOLDOWN_MS,
  RETRY_AFTER_SECONDS,
  UPSTREAM_TIMEOUT_MS,
} from "../../src/constants";
import { PROBLEM_TYPE_PREFIX } from "../../src/errors";
import { verifyAblyToken } from "../support/ably-token";
import { TEST_ABLY_KEY } from "../support/identity-provider";
import { keyPair } from "../support/keys";
import { freePort } from "../../dev/node-server";
import { type OidcProvider, startOidcProvider } from "../support/oidc";
import { identityToken } from "../support/tokens";
import { startWranglerDev, type WranglerDev } from "../support/wrangler-dev";

/** The worker's audience: a resource indicator, which the provider puts in `aud`. */
const RESOURCE = "https://ably-edge-auth.test/";
/** Another API of the same provider: its tokens must not open Ably. */
const OTHER_RESOURCE = "https://other-api.test/";
/** Enough simultaneous users to expose any per-request fetching, few enough to stay quick. */
const BURST = 20;
const USERS = Array.from({ length: BURST }, (_, i) => `user-${i + 1}`);

/** ably-js gives up on an authUrl after 10 s (realtimeRequestTimeout): no request here waits longer. */
const ABLY_JS_AUTH_TIMEOUT_MS = 10_000;
/** "Promptly": well under ably-js's limit, so the client sees our 503 rather than its own timeout. */
const PROMPT_MS = 8_000;
/** Slack between this process's clock and workerd's, and for scheduling, around the cooldown. */
const COOLDOWN_MARGIN_MS = 1_000;
/** Slack over the worker's upstream timeout for answering the 503 itself. */
const TIMEOUT_MARGIN_MS = 3_000;

let idp: OidcProvider;
let main: WranglerDev;
let second: WranglerDev;
let fresh: WranglerDev;
let hung: WranglerDev;
const devs: WranglerDev[] = [];

/** Accepts TCP connections and never answers: `hung`'s issuer. */
let silent: NetServer;
let silentIssuer: string;
const silentSockets = new Set<Socket>();
let silentConnections = 0;

/** Each user's token signed with the first key, minted before the rotation (the provider goes down later). */
const firstKey = new Map<string, string>();
/** Each user's token signed with the second key, minted right after the rotation. */
const secondKey = new Map<string, string>();
/** A key no JWKS will ever list, for forged tokens. */
let strangerKey: JWK;

/** When each location last fetched the JWKS, as seen from here: between `from` and `to`. */
const lastFetch = { main: { from: 0, to: 0 }, second: { from: 0, to: 0 } };
/** When the location that never had the keys had answered its failure to reach the provider (its failed ask came before). */
let freshFailedAt = 0;

beforeAll(async () => {
  idp = await startOidcProvider({ resources: [RESOURCE, OTHER_RESOURCE], users: USERS });
  for (const user of USERS) firstKey.set(user, await idp.token(user, RESOURCE));
  strangerKey = (await keyPair("RS256")).priv;

  silent = createNetServer((socket) => {
    silentConnections += 1;
    silentSockets.add(socket.on("close", () => silentSockets.delete(socket)));
  });
  const silentPort = await freePort();
  await new Promise<void>((resolve) => silent.listen(silentPort, "127.0.0.1", resolve));
  silentIssuer = `http://127.0.0.1:${silentPort}`;

  const issuers = [idp.issuer, idp.issuer, idp.issuer, silentIssuer];
  const started = await Promise.allSettled(
    issuers.map((issuer) =>
      startWranglerDev({ JWT_ISSUER: issuer, JWT_AUDIENCE: RESOURCE, ABLY_API_KEY: TEST_ABLY_KEY }),
    ),
  );
  // Keep whichever started, so that afterAll stops them even when another failed to start.
  for (const result of started) if (result.status === "fulfilled") devs.push(result.value);
  const failed = started.find((result) => result.status === "rejected");
  if (failed) throw failed.reason;
  [main, second, fresh, hung] = devs as [WranglerDev, WranglerDev, WranglerDev, WranglerDev];
});

afterAll(async () => {
  await Promise.all(devs.map((dev) => dev.stop()));
  await idp?.stop();
  for (const socket of silentSockets) socket.destroy();
  await new Promise((resolve) => silent?.close(resolve) ?? resolve(undefined));
});

/** GET /auth on `dev` with `token`, given up on when ably-js would give up. */
function auth(dev: WranglerDev, token: string): Promise<Response> {
  return fetch(`${dev.base}/auth`, {
    headers: { Authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(ABLY_JS_AUTH_TIMEOUT_MS),
  });
}

/** The clientId of the Ably JWT a 200 carries, after checking the JWT as Ably would. */
async function issuedClientId(response: Response): Promise<string | undefined> {
  const body = await response.text();
  expect(response.status, body).toBe(200);
  return (await verifyAblyToken(body, TEST_ABLY_KEY)).clientId;
}

/** The problem document of a refusal, after checking its status; `code` is its type without the prefix. */
async function problem(response: Response, status: number): Promise<{ code: string; detail: string }> {
  const body = await response.text();
  expect(response.status, body).toBe(status);
  expect(response.headers.get("content-type")).toBe("application/problem+json");
  const { type, detail } = JSON.parse(body) as { type: string; detail: string };
  expect(type.startsWith(PROBLEM_TYPE_PREFIX), type).toBe(true);
  return { code: type.slice(PROBLEM_TYPE_PREFIX.length), detail };
}

const refusal = async (response: Response, status: number) => (await problem(response, status)).code;

/** The clientIds `dev` issues to every user at once, each with their token from `tokens`. */
const burstOfUsers = (dev: WranglerDev, tokens: Map<string, string>) =>
  Promise.all(USERS.map(async (user) => issuedClientId(await auth(dev, tokens.get(user)!))));

/** The same, one user after the other. */
async function usersInSequence(dev: WranglerDev, tokens: Map<string, string>) {
  const clientIds: (string | undefined)[] = [];
  for (const user of USERS) clientIds.push(await issuedClientId(await auth(dev, tokens.get(user)!)));
  return clientIds;
}

/** A token with `issuer` and our audience, signed by a stranger under a random kid. */
const forgedToken = (issuer = idp.issuer) =>
  identityToken(
    { issuer, audience: RESOURCE, key: strangerKey },
    { header: { kid: crypto.randomUUID() }, claims: { sub: "mallory" } },
  );

/** The problem codes `dev` answers to BURST forged tokens, at once (all signed first) or one after the other. */
async function forgedBurst(dev: WranglerDev) {
  const tokens = await Promise.all(Array.from({ length: BURST }, () => forgedToken()));
  return Promise.all(tokens.map(async (token) => refusal(await auth(dev, token), 401)));
}
async function forgedInSequence(dev: WranglerDev) {
  const codes: string[] = [];
  for (let i = 0; i < BURST; i += 1) codes.push(await refusal(await auth(dev, await forgedToken()), 401));
  return codes;
}

/** How many discovery and JWKS fetches `action` caused at the provider. */
async function fetchesDuring(action: () => Promise<unknown>) {
  const before = idp.fetches();
  await action();
  const after = idp.fetches();
  return { discovery: after.discovery - before.discovery, jwks: after.jwks - before.jwks };
}

/** Runs `action`, which makes `location` fetch the JWKS, bracketing when that happened. */
async function fetching(location: keyof typeof lastFetch, action: () => Promise<unknown>) {
  const from = Date.now();
  const fetches = await fetchesDuring(action);
  lastFetch[location] = { from, to: Date.now() };
  return fetches;
}

/** Waits until `location`'s cooldown is certainly over: never longer than the cooldown itself. */
async function pastCooldown(location: keyof typeof lastFetch) {
  const wait = lastFetch[location].to + JWKS_COOLDOWN_MS + COOLDOWN_MARGIN_MS - Date.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
}

const insideCooldown = (location: keyof typeof lastFetch) => Date.now() < lastFetch[location].from + JWKS_COOLDOWN_MS;

describe("a real OpenID Provider (oidc-provider), found through discovery", () => {
  it("accepts its access tokens: 200 and an Ably JWT whose clientId is the token's sub", async () => {
    expect(decodeJwt(firstKey.get("user-1")!)).toMatchObject({ sub: "user-1", aud: RESOURCE, iss: idp.issuer });
    const fetches = await fetching("main", async () => {
      expect(await burstOfUsers(main, firstKey)).toEqual(USERS);
    });
    // A cold location under a burst: every request waits for the same two fetches.
    expect(fetches).toEqual({ discovery: 1, jwks: 1 });
  });

  it("fetches neither discovery nor the JWKS again for many more requests", async () => {
    const fetches = await fetchesDuring(async () => {
      expect(await usersInSequence(main, firstKey)).toEqual(USERS);
      expect(await burstOfUsers(main, firstKey)).toEqual(USERS);
    });
    expect(fetches).toEqual({ discovery: 0, jwks: 0 });
  });

  it("refuses its token for another resource with 401 identity-token-audience-mismatch", async () => {
    const token = await idp.token("user-1", OTHER_RESOURCE);
    expect(decodeJwt(token).aud).toBe(OTHER_RESOURCE);
    const fetches = await fetchesDuring(async () => {
      expect(await refusal(await auth(main, token), 401)).toBe("identity-token-audience-mismatch");
    });
    expect(fetches).toEqual({ discovery: 0, jwks: 0 });
  });

  it("is fetched from once more by another location, which has its own caches", async () => {
    const fetches = await fetching("second", async () => {
      expect(await burstOfUsers(second, firstKey)).toEqual(USERS);
    });
    expect(fetches).toEqual({ discovery: 1, jwks: 1 });
  });
});

describe("when the provider rotates its signing key", () => {
  // What a provider that signs with a key it published seconds ago does to recently warmed
  // locations: real providers publish the next key well before signing with it.
  it("refuses the new kid inside the cooldown, without refetching: 401 identity-token-key-unknown", async () => {
    await idp.rotate();
    expect(idp.kids()).toEqual(["key-2", "key-1"]);
    for (const user of USERS) secondKey.set(user, await idp.token(user, RESOURCE));
    const fetches = await fetchesDuring(async () => {
      expect(await refusal(await auth(main, secondKey.get("user-1")!), 401)).toBe("identity-token-key-unknown");
    });
    expect(insideCooldown("main"), "the request came inside main's cooldown").toBe(true);
    expect(fetches).toEqual({ discovery: 0, jwks: 0 });
  });

  it("accepts new-kid tokens once the cooldown is over, refetching the JWKS once for a burst", async () => {
    await pastCooldown("main");
    const fetches = await fetching("main", async () => {
      expect(await burstOfUsers(main, secondKey)).toEqual(USERS);
      expect(await usersInSequence(main, secondKey)).toEqual(USERS);
    });
    expect(fetches).toEqual({ discovery: 0, jwks: 1 });
  });

  it("still accepts tokens signed with the old key while the JWKS lists it", async () => {
    const fetches = await fetchesDuring(async () => {
      expect(await burstOfUsers(main, firstKey)).toEqual(USERS);
    });
    expect(fetches).toEqual({ discovery: 0, jwks: 0 });
  });

  it("refuses random unknown kids with 401 identity-token-key-unknown, refetching nothing inside the cooldown", async () => {
    const fetches = await fetchesDuring(async () => {
      const codes = [...(await forgedBurst(main)), ...(await forgedInSequence(main))];
      expect(new Set(codes)).toEqual(new Set(["identity-token-key-unknown"]));
    });
    expect(insideCooldown("main"), "every forged token came inside main's cooldown").toBe(true);
    expect(fetches).toEqual({ discovery: 0, jwks: 0 });
  });
});

describe("when the provider removes the old key from its JWKS", () => {
  it("a location past its cooldown refetches once for a burst of unknown kids, then refuses old-key tokens", async () => {
    await idp.retireOldKeys();
    expect(idp.kids()).toEqual(["key-2"]);
    await pastCooldown("second");
    const forged = await fetchesDuring(async () => {
      const codes = [...(await forgedBurst(second)), ...(await forgedInSequence(second))];
      expect(new Set(codes)).toEqual(new Set(["identity-token-key-unknown"]));
    });
    expect(forged).toEqual({ discovery: 0, jwks: 1 });

    const after = await fetchesDuring(async () => {
      expect(await refusal(await auth(second, firstKey.get("user-1")!), 401)).toBe("identity-token-key-unknown");
      expect(await issuedClientId(await auth(second, secondKey.get("user-1")!))).toBe("user-1");
    });
    expect(after).toEqual({ discovery: 0, jwks: 0 });
  });

  // How long a removed key keeps working in a location is bounded by its next refetch: at the
  // earliest the first unknown kid after the 30 s cooldown, at the latest JWKS_CACHE_MAX_AGE_MS
  // (10 min) after its last fetch. `main` fetched less than 30 s ago, before the removal.
  it("a location that fetched before the removal accepts old-key tokens until its next refetch", async () => {
    expect(Date.now()).toBeLessThan(lastFetch.main.from + JWKS_CACHE_MAX_AGE_MS);
    expect(await issuedClientId(await auth(main, firstKey.get("user-2")!))).toBe("user-2");
  });
});

describe("when the provider is down", () => {
  it("keeps accepting tokens signed by keys a location already has", async () => {
    await idp.stop();
    expect(await issuedClientId(await auth(main, secondKey.get("user-3")!))).toBe("user-3");
    expect(await issuedClientId(await auth(main, firstKey.get("user-3")!))).toBe("user-3");
    expect(await issuedClientId(await auth(second, secondKey.get("user-3")!))).toBe("user-3");
  });

  it("answers a location that never had the keys with a prompt 503 and Retry-After", async () => {
    const started = Date.now();
    const response = await auth(fresh, secondKey.get("user-1")!);
    freshFailedAt = Date.now(); // the worker's failed ask happened before it answered
    expect(Date.now() - started).toBeLessThan(PROMPT_MS);
    expect(response.headers.get("retry-after")).toBe(String(RETRY_AFTER_SECONDS));
    expect(await refusal(response, 503)).toBe("identity-provider-unavailable");
  });

  it("answers 503 within the upstream timeout when the provider accepts connections but never answers", async () => {
    const started = Date.now();
    const response = await auth(hung, await forgedToken(silentIssuer));
    expect(Date.now() - started).toBeLessThan(UPSTREAM_TIMEOUT_MS + TIMEOUT_MARGIN_MS);
    expect(silentConnections, "the worker reached the silent server").toBeGreaterThan(0);
    expect(response.headers.get("retry-after")).toBe(String(RETRY_AFTER_SECONDS));
    const { code, detail } = await problem(response, 503);
    expect(code).toBe("identity-provider-unavailable");
    expect(detail).toContain("timed out");
  });

  it("serves the location that never had the keys once the provider is back, asking no sooner than 5 s after its last failure", async () => {
    await idp.start();
    // A failed ask with nothing to fall back on is remembered that long, so a provider that is down is not asked per request.
    await sleep(Math.max(0, freshFailedAt + FAILED_ASK_MEMORY_MS - Date.now()));
    const fetches = await fetchesDuring(async () => {
      expect(await issuedClientId(await auth(fresh, secondKey.get("user-1")!))).toBe("user-1");
    });
    expect(fetches).toEqual({ discovery: 1, jwks: 1 });
  });
});

// Every status above is asserted exactly; this catches what no status shows, such as an exception
// in work the worker does after answering.
it("logged no internal error on any server", () => {
  for (const dev of devs) {
    const outcomes = dev.records().map((record) => record.outcome);
    expect(outcomes.length, "the worker's log records").toBeGreaterThan(0);
    expect(outcomes).not.toContain("internal-error");
    expect(dev.output()).not.toMatch(/Uncaught|Unhandled/);
  }
});
