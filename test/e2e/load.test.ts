/**
 * Load held: a bounded load against `wrangler dev` on 127.0.0.1, 20 000 requests at concurrency
 * 50, mixing valid, invalid and banned users from many client IPs (so the rate limits, which
 * wrangler dev enforces per CF-Connecting-IP, do not apply). It reports throughput and memory; it
 * asserts only that every answer is the expected one and that the worker's memory stops growing.
 *
 * Memory is workerd's resident size. Under `wrangler dev` it grows with every request of any route,
 * /healthz included (measured: about 15 KiB a request under wrangler 4.86, as much on /healthz as on
 * /auth; under wrangler 4.164, 55 KiB on /healthz and 35-40 KiB on /auth), so an
 * absolute bound would measure wrangler dev, not the worker. Instead the same run measures a
 * baseline of /healthz requests, and the /auth load may grow memory per request by at most twice
 * the baseline's rate (measured runs: 1.0 to 1.2 times). That catches a leak in the auth path of
 * the runtime's own size (about 20 KiB a request) or more; smaller ones are below what resident
 * memory under wrangler dev can show.
 */
import { afterAll, beforeAll, expect, it } from "vitest";
import { identityProvider, TEST_ABLY_KEY } from "../support/identity-provider";
import { type Served, serve } from "../../dev/node-server";
import { identityToken } from "../support/tokens";
import { startWranglerDev, type WranglerDev } from "../support/wrangler-dev";

const REQUESTS = 20_000;
const CONCURRENCY = 50;
const CHUNK = 2_000;
/** /healthz requests before anything is measured (first JIT, first allocations). */
const WARM_UP = 4_000;
/** /healthz requests for the baseline growth. */
const BASELINE = 10_000;
/** How much faster than the /healthz baseline memory may grow under the /auth load. */
const MAX_GROWTH_RATIO = 2;
/** The bound when the baseline hardly grows (another runtime, another machine), in KiB a request. */
const MIN_ALLOWED_KIB_PER_REQUEST = 5;
/**
 * Users, each with one identity token: 20 000 / 1000 = at most 20 requests each, so the per-user
 * limit (20 a minute) is never reached however fast the run goes.
 */
const USERS = 1_000;
/** Every 10th user is banned. */
const BANNED_EVERY = 10;

let idp: Served;
let dev: WranglerDev;
const tokens: string[] = [];

beforeAll(async () => {
  let provider!: Awaited<ReturnType<typeof identityProvider>>;
  idp = await serve(async (origin) => {
    provider = await identityProvider(origin);
    return provider.handle;
  });
  dev = await startWranglerDev({
    JWT_ISSUER: provider.issuer,
    JWT_AUDIENCE: provider.audience,
    ABLY_API_KEY: TEST_ABLY_KEY,
  });
  for (let u = 0; u < USERS; u++) {
    tokens.push(
      await identityToken(
        { issuer: provider.issuer, audience: provider.audience, key: provider.privateJwks.rsa },
        { claims: { sub: `load-${u}` } },
      ),
    );
  }
  // One wrangler start for all the bans: one a key (100 starts, 2-3 s each) outgrew the hook's timeout.
  const bans: Record<string, string> = {};
  for (let u = 0; u < USERS; u += BANNED_EVERY) bans[`load-${u}`] = '{"reason":"load test"}';
  await dev.kvBulkPut(bans);
}, 180_000);

afterAll(async () => {
  await dev?.stop();
  await idp?.close();
});

/**
 * Client IPs: 20 000 / 200 = 100 requests each, under the per-IP limit (300 a minute) however fast
 * the run goes. A fixed set, as real traffic has: every new key is a new entry in the limiter.
 */
const IPS = 200;

/** Request i: a garbage token every 7th, else user i % USERS, from client IP i % IPS. */
function request(i: number): { init: RequestInit; expected: number } {
  const ip = `10.0.${Math.floor((i % IPS) / 256)}.${(i % IPS) % 256}`;
  if (i % 7 === 0) {
    return { init: { headers: { "CF-Connecting-IP": ip, Authorization: "Bearer not.a.token" } }, expected: 401 };
  }
  const user = i % USERS;
  return {
    init: { headers: { "CF-Connecting-IP": `${ip}`, Authorization: `Bearer ${tokens[user]}` } },
    expected: user % BANNED_EVERY === 0 ? 403 : 200,
  };
}

async function load(from: number, to: number, path = "/auth") {
  let next = from;
  const unexpected: string[] = [];
  const statuses: Record<number, number> = {};
  const worker = async () => {
    while (next < to) {
      const i = next++;
      const { init, expected } = path === "/auth" ? request(i) : { init: {}, expected: 200 };
      const res = await fetch(`${dev.base}${path}`, init);
      await res.arrayBuffer();
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      if (res.status !== expected) unexpected.push(`#${i}: ${res.status}, expected ${expected}`);
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return { statuses, unexpected, seconds: (performance.now() - started) / 1000 };
}

it(`answers ${REQUESTS} mixed requests at concurrency ${CONCURRENCY} as expected, without leaking memory`, async () => {
  expect((await load(0, WARM_UP, "/healthz")).unexpected).toEqual([]);
  const atStart = await dev.workerdRssKiB();
  expect((await load(0, BASELINE, "/healthz")).unexpected).toEqual([]);
  const afterBaseline = await dev.workerdRssKiB();

  const rss: number[] = [afterBaseline];
  const statuses: Record<number, number> = {};
  const unexpected: string[] = [];
  let seconds = 0;
  for (let from = 0; from < REQUESTS; from += CHUNK) {
    const chunk = await load(from, from + CHUNK);
    for (const [status, n] of Object.entries(chunk.statuses))
      statuses[Number(status)] = (statuses[Number(status)] ?? 0) + n;
    unexpected.push(...chunk.unexpected);
    seconds += chunk.seconds;
    rss.push(await dev.workerdRssKiB());
  }
  const baselinePerRequest = (afterBaseline - atStart) / BASELINE;
  const authPerRequest = (rss.at(-1)! - afterBaseline) / REQUESTS;
  console.log(
    `load: ${REQUESTS} requests in ${seconds.toFixed(1)} s (${Math.round(REQUESTS / seconds)} req/s at concurrency ${CONCURRENCY}); ` +
      `statuses ${JSON.stringify(statuses)}; workerd RSS growth per request: /healthz baseline ${baselinePerRequest.toFixed(1)} KiB, ` +
      `/auth load ${authPerRequest.toFixed(1)} KiB; RSS every ${CHUNK} (MiB): ${rss.map((k) => Math.round(k / 1024)).join(" ")}`,
  );
  expect(unexpected.slice(0, 10)).toEqual([]);
  expect(statuses[200]).toBeGreaterThan(0);
  expect(statuses[403]).toBeGreaterThan(0);
  expect(statuses[401]).toBeGreaterThan(0);
  expect(atStart).toBeGreaterThan(0);
  expect(authPerRequest).toBeLessThan(Math.max(MAX_GROWTH_RATIO * baselinePerRequest, MIN_ALLOWED_KIB_PER_REQUEST));
}, 600_000);
