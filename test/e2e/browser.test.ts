/**
 * The endpoint as a browser meets it: headless Chromium loads a page from one origin, and the real
 * ably-js (2.28, its browser bundle) on that page asks `wrangler dev`, on another origin, for a
 * token through `authUrl`, with the identity token in `authHeaders`. CORS is the browser's to
 * enforce, so only a browser can show that an allowed origin gets its token, that a refusal reaches
 * ably-js as a 403 (FAILED, not an endless retry), and that any other origin gets nothing.
 *
 * Two things are observed outside the page. What reached the worker: its own log lines, one per
 * request (Playwright does not report CORS preflights; the worker logs them). Whether the browser
 * sent credentials: a probe cookie for the worker's host, sent only on a credentialed request.
 */
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyAblyToken } from "../support/ably-token";
import { launchBrowser, type OpenedPage, openPage } from "../support/browser";
import { identityProvider, TEST_ABLY_KEY } from "../support/identity-provider";
import { type Served, serve } from "../../dev/node-server";
import { identityToken } from "../support/tokens";
import { ROOT, startWranglerDev, type WranglerDev } from "../support/wrangler-dev";

/** What ably-js makes of a 403 it can read: code 40300, and the client stops retrying (RSA4d). */
const FORBIDDEN = { statusCode: 403, code: 40300 };
/** What ably-js makes of a request the browser blocked: 40170 "the authUrl failed", retried forever. */
const AUTH_URL_FAILED = { statusCode: 401, code: 40170 };
/** How long the worker's log line for a finished request may take to reach wrangler's output. */
const LOG_WAIT_MS = 5_000;
/** How long the browser may take to send the auth request once ably-js is asked (ably-js gives it 10 s). */
const REQUEST_WAIT_MS = 10_000;
/** A cookie the browser holds for the worker's host: it goes along only on a credentialed request. */
const PROBE_COOKIE = { name: "probe", value: "credentialed" };
/** The Cookie header of a credentialed request to the worker. */
const PROBE = `${PROBE_COOKIE.name}=${PROBE_COOKIE.value}`;
const SCREENSHOT = "/tmp/browser-e2e.png";

/**
 * The page: the real ably-js and one function that asks the authUrl for a token, returns the
 * outcome (the token, or ably-js's ErrorInfo) and shows it.
 */
const PAGE = `<!doctype html>
<meta charset="utf-8">
<title>ably-edge-auth: ably-js in a browser</title>
<link rel="icon" href="data:,">
<style>pre { white-space: pre-wrap; word-break: break-all; }</style>
<script src="/ably.min.js"></script>
<h1>ably-js authUrl</h1>
<pre id="outcome">no request yet</pre>
<script>
  async function requestAblyToken(authUrl, authMethod, authHeaders) {
    const rest = new Ably.Rest({ authUrl, authMethod, authHeaders });
    let outcome;
    try {
      outcome = { token: (await rest.auth.requestToken()).token };
    } catch (e) {
      outcome = { error: { statusCode: e.statusCode, code: e.code, message: e.message } };
    }
    document.getElementById("outcome").textContent =
      authMethod + " " + authUrl + "\\n" + JSON.stringify(outcome, null, 2);
    return outcome;
  }
</script>
`;

type Method = "GET" | "POST";

type Outcome =
  | { token: string; error?: undefined }
  | { token?: undefined; error: { statusCode: number; code: number; message: string } };

/** One of the worker's log lines (src/request/log.ts). */
interface LogLine {
  requestId: string;
  method: string;
  status: number;
  outcome: string;
}

let provider: Awaited<ReturnType<typeof identityProvider>>;
let idp: Served;
let dev: WranglerDev;
/** The same page on two origins: one on ALLOWED_ORIGINS, one not. */
let allowedSite: Served;
let otherSite: Served;
let browser: Browser;
const pages: OpenedPage[] = [];

/** Serves PAGE at / and ably-js's browser bundle at /ably.min.js. */
async function site(): Promise<Served> {
  const ablyJs = await readFile(join(ROOT, "node_modules/ably/build/ably.min.js"));
  return serve(async () => (request) => {
    switch (new URL(request.url).pathname) {
      case "/":
        return new Response(PAGE, { headers: { "content-type": "text/html; charset=utf-8" } });
      case "/ably.min.js":
        return new Response(ablyJs, { headers: { "content-type": "text/javascript" } });
      default:
        return new Response("not found", { status: 404 });
    }
  });
}

beforeAll(async () => {
  // First: without Chromium, fail before anything else is started.
  browser = await launchBrowser();
  idp = await serve(async (origin) => {
    provider = await identityProvider(origin);
    return provider.handle;
  });
  [allowedSite, otherSite] = await Promise.all([site(), site()]);
  dev = await startWranglerDev({
    JWT_ISSUER: provider.issuer,
    JWT_AUDIENCE: provider.audience,
    ABLY_API_KEY: TEST_ABLY_KEY,
    ALLOWED_ORIGINS: allowedSite.origin,
  });
});

afterAll(async () => {
  for (const page of pages) await page.close().catch(() => {});
  await browser?.close();
  await dev?.stop();
  await Promise.all([allowedSite?.close(), otherSite?.close(), idp?.close()]);
});

/** Opens the page of `site` in a fresh browser context holding the probe cookie for the worker. */
async function open(site: Served): Promise<OpenedPage> {
  const opened = await openPage(browser, `${site.origin}/`);
  pages.push(opened);
  await opened.page.context().addCookies([{ ...PROBE_COOKIE, url: dev.base }]);
  return opened;
}

/**
 * In the page, ably-js asks the worker for a token as `sub`, the identity token under the header
 * name `header`. Also returns the Cookie header the browser sent with the auth request.
 */
async function requestToken(
  opened: OpenedPage,
  { sub, method, header = "authorization" }: { sub: string; method: Method; header?: string },
): Promise<{ outcome: Outcome; cookie: string | undefined }> {
  const jwt = await identityToken(
    { issuer: provider.issuer, audience: provider.audience, key: provider.privateJwks.rsa },
    { claims: { sub } },
  );
  const sent = opened.page.waitForRequest((r) => r.url().startsWith(`${dev.base}/auth`), {
    timeout: REQUEST_WAIT_MS,
  });
  const outcome = await opened.page.evaluate(
    ([authUrl, authMethod, authHeaders]) =>
      (globalThis as unknown as { requestAblyToken(...args: unknown[]): Promise<Outcome> }).requestAblyToken(
        authUrl,
        authMethod,
        authHeaders,
      ),
    [`${dev.base}/auth`, method, { [header]: `Bearer ${jwt}` }] as const,
  );
  const { cookie } = await (await sent).allHeaders();
  return { outcome, cookie };
}

/**
 * The worker's log lines for the requests made by `act`, in order. A request from Node with a
 * known X-Request-Id marks the end: once its line is out, every earlier request's line is too.
 */
async function workerLinesDuring<T>(act: () => Promise<T>): Promise<T & { lines: LogLine[] }> {
  const start = dev.output().length;
  const result = await act();
  const marker = `browser-e2e-${crypto.randomUUID()}`;
  await fetch(`${dev.base}/healthz`, { headers: { "X-Request-Id": marker } });
  const deadline = Date.now() + LOG_WAIT_MS;
  while (!dev.output().includes(marker) && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  expect(dev.output().slice(start), "the marker request's log line").toContain(marker);
  const lines = dev.records(start).filter((line) => line.requestId !== marker) as unknown as LogLine[];
  return { ...result, lines };
}

/** What the worker did with one request: [method, status, outcome]. */
const summary = (line: LogLine) => [line.method, line.status, line.outcome];

// `authorization` in lower case: it is what makes ably-js 2.28's XHR transport send credentials
// (its check is `"authorization" in headers`), the strictest case for CORS.
describe.each(["GET", "POST"] as const)("ably-js in Chromium, authMethod %s, credentialed", (method) => {
  it("from the allowed origin: a preflight, then the credentialed request; ably-js gets a token for its user", async () => {
    const sub = `browser-alice-${method}`;
    const opened = await open(allowedSite);
    const { outcome, cookie, lines } = await workerLinesDuring(() => requestToken(opened, { sub, method }));

    expect(outcome.error, opened.log.join("\n")).toBeUndefined();
    expect(cookie, "sent with credentials").toBe(PROBE);
    expect(lines.map(summary)).toEqual([
      ["OPTIONS", 204, "ok"],
      [method, 200, "issued"],
    ]);
    const claims = await verifyAblyToken(outcome.token!, TEST_ABLY_KEY);
    expect(claims.clientId).toBe(sub);
    // For a person to look at (not asserted): the page as ably-js left it.
    if (method === "GET") await opened.page.screenshot({ path: SCREENSHOT });
  });

  it("from the allowed origin, a banned user: ably-js reads the 403 itself, so it stops retrying", async () => {
    const sub = `browser-mallory-${method}`;
    await dev.kv("put", sub, '{"reason":"spam"}');
    const opened = await open(allowedSite);
    const { outcome, cookie, lines } = await workerLinesDuring(() => requestToken(opened, { sub, method }));

    expect(outcome.token).toBeUndefined();
    expect(outcome.error, opened.log.join("\n")).toMatchObject(FORBIDDEN);
    // ably-js quotes the body: the browser exposed the whole refusal, not just its status.
    expect(outcome.error!.message).toContain("You are banned: spam");
    expect(cookie, "sent with credentials").toBe(PROBE);
    expect(lines.map(summary)).toEqual([
      ["OPTIONS", 204, "ok"],
      [method, 403, "user-banned"],
    ]);
  });

  it("from an origin not allowed: the browser blocks the request and the worker mints nothing", async () => {
    const opened = await open(otherSite);
    const { outcome, lines } = await workerLinesDuring(() =>
      requestToken(opened, { sub: `browser-eve-${method}`, method }),
    );

    expect(outcome.token).toBeUndefined();
    expect(outcome.error, opened.log.join("\n")).toMatchObject(AUTH_URL_FAILED);
    // Only the preflight reached the worker; refused, it kept the browser from sending the request.
    expect(lines.map(summary)).toEqual([["OPTIONS", 403, "origin-not-allowed"]]);
  });
});

describe("ably-js in Chromium, `Authorization` capitalised as apps usually write it", () => {
  // ably-js 2.28's XHR transport then leaves withCredentials off (its check is case-sensitive):
  // the endpoint must serve that request too.
  it("sends no credentials, and ably-js still gets its token", async () => {
    const sub = "browser-bob";
    const opened = await open(allowedSite);
    const { outcome, cookie, lines } = await workerLinesDuring(() =>
      requestToken(opened, { sub, method: "GET", header: "Authorization" }),
    );

    expect(outcome.error, opened.log.join("\n")).toBeUndefined();
    expect(cookie, "sent without credentials").toBeUndefined();
    expect(lines.map(summary)).toEqual([
      ["OPTIONS", 204, "ok"],
      ["GET", 200, "issued"],
    ]);
    expect((await verifyAblyToken(outcome.token!, TEST_ABLY_KEY)).clientId).toBe(sub);
  });
});
