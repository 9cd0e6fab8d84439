/**
 * The moderation console as a moderator meets it: headless Chromium on /admin/ of `wrangler dev`
 * (the console's files served from public/admin/ as Workers Static Assets, through the worker).
 * A moderator signs in with the admin token, bans a user with a reason that is markup, sees it
 * listed as text (no element made of it, no script run, nothing the CSP had to block), and the user
 * is refused at /auth until the ban is lifted. Over HTTP: which paths the assets answer, with which
 * headers, with the admin API on and off.
 */
import { readFileSync } from "node:fs";
import { readVars } from "../../dev/dev-vars.mjs";
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type AblyStandIn, startAblyStandIn } from "../../dev/ably/server";
import { type Served, serve } from "../../dev/node-server";
import { ADMIN_LIST_PAGE_SIZE } from "../../src/constants";
import { launchBrowser, type OpenedPage, openPage } from "../support/browser";
import { identityProvider, TEST_ABLY_KEY } from "../support/identity-provider";
import { identityToken } from "../support/tokens";
import { ROOT, startWranglerDev, type WranglerDev } from "../support/wrangler-dev";

const ADMIN_TOKEN = "e2e-admin-token-0123456789abcdef0123456789";
const ADMIN = { Authorization: `Bearer ${ADMIN_TOKEN}` };
/** A reason that would make an element, and run a script, if the page ever parsed it as HTML. */
const MARKUP = "<img src=x onerror=alert(1)>";
/** Where the screenshot goes; CONSOLE_SCREENSHOT=docs/console.png renews the README's. */
const SCREENSHOT = process.env.CONSOLE_SCREENSHOT ?? "/tmp/console-e2e.png";
/** How long the page may take to show what a click asked for: everything is on 127.0.0.1. */
const UI_WAIT_MS = 5_000;

/**
 * Cloudflare Access as the development identity provider plays it on its fixed address, which
 * .dev.vars.example's Access settings name: its login sets the CF_Authorization cookie for
 * 127.0.0.1 (cookies ignore the port) and sends the browser on to `redirect`.
 */
const DEV_ACCESS_LOGIN = "http://127.0.0.1:8788/access/login";
/** A moderator on .dev.vars.example's allow-list. */
const MODERATOR = "moderator@example.com";

/** The development settings of `npm run dev`, so the Access step meets the same configuration. */
const devVars = readVars(readFileSync(join(ROOT, ".dev.vars.example"), "utf8"));

let provider: Awaited<ReturnType<typeof identityProvider>>;
let idp: Served;
/** Ably's token revocation, stood in for on 127.0.0.1: a ban's first round succeeds there. */
let ably: AblyStandIn;
let dev: WranglerDev;
/** The same worker without ADMIN_TOKEN: the admin API off. */
let off: WranglerDev;
let browser: Browser;
const pages: OpenedPage[] = [];

beforeAll(async () => {
  browser = await launchBrowser();
  idp = await serve(async (origin) => {
    provider = await identityProvider(origin);
    return provider.handle;
  });
  ably = await startAblyStandIn(TEST_ABLY_KEY);
  const identity = { JWT_ISSUER: provider.issuer, JWT_AUDIENCE: provider.audience, ABLY_API_KEY: TEST_ABLY_KEY };
  // One after the other: two cold starts at once on two cores can outlast the start-up timeout.
  dev = await startWranglerDev({
    ...devVars,
    ...identity,
    ADMIN_TOKEN,
    ABLY_REVOCABLE_TOKENS: "true",
    ABLY_REST_URL: `http://127.0.0.1:${ably.port}`,
  });
  // Nothing but what /auth needs: no way into the admin API is configured.
  off = await startWranglerDev(identity);
});

afterAll(async () => {
  for (const page of pages) await page.close().catch(() => {});
  await browser?.close();
  await Promise.all([dev?.stop(), off?.stop(), idp?.close(), ably?.close()]);
});

/** What /auth answers for `sub`: the status and, for a refusal, the problem code. */
async function authFor(sub: string): Promise<{ status: number; code?: string }> {
  const jwt = await identityToken(
    { issuer: provider.issuer, audience: provider.audience, key: provider.privateJwks.rsa },
    { claims: { sub } },
  );
  const res = await fetch(`${dev.base}/auth`, { headers: { Authorization: `Bearer ${jwt}` } });
  if (res.ok) return { status: res.status };
  const { type } = await res.json<{ type: string }>();
  return { status: res.status, code: type.split(":").pop() };
}

/** A refusal of the worker as the console should show it: the problem's title and detail. */
async function problemText(path: string, headers: Record<string, string>): Promise<string> {
  const { title, detail } = await (
    await fetch(`${dev.base}${path}`, { headers })
  ).json<{ title: string; detail: string }>();
  return `${title}: ${detail}`;
}

/** The ban as the admin API stored it. */
async function storedBan(clientId: string) {
  const res = await fetch(`${dev.base}/admin/bans/${clientId}`, { headers: ADMIN });
  return res.json<{ reason: string; until: string; bannedAt: string }>();
}

/** The stored ban's length, in hours. */
const hoursOf = (ban: { until: string; bannedAt: string }) =>
  (Date.parse(ban.until) - Date.parse(ban.bannedAt)) / 3_600_000;

/** Signs in with `token` through the form. */
async function signIn(page: Page, token = ADMIN_TOKEN): Promise<void> {
  await page.fill("#token", token);
  await page.click("#sign-in-form button");
}

/** The console in a fresh browser context, every dialog it opens recorded (and dismissed). */
async function openConsole(): Promise<OpenedPage & { dialogs: string[] }> {
  const opened = await openPage(browser, `${dev.base}/admin/`);
  pages.push(opened);
  const dialogs: string[] = [];
  opened.page.on("dialog", (dialog) => {
    dialogs.push(dialog.message());
    void dialog.dismiss();
  });
  return { ...opened, dialogs };
}

describe("over HTTP: what the assets answer", () => {
  it("serves the console with its CSP and the worker's security headers", async () => {
    for (const path of ["/admin/", "/admin/console.js", "/admin/console.css"]) {
      const res = await fetch(`${dev.base}${path}`);
      expect(res.status, path).toBe(200);
      expect(res.headers.get("content-security-policy"), path).toBe(
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; " +
          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
      );
      expect(res.headers.get("x-frame-options"), path).toBe("DENY");
      expect(res.headers.get("strict-transport-security"), path).toMatch(/^max-age=/);
    }
  });

  it("answers every other path with the worker, never a file of public/", async () => {
    for (const path of ["/", "/index.html", "/admin/index.html", "/console.js", "/admin/nothing.js"]) {
      const res = await fetch(`${dev.base}${path}`, { redirect: "manual" });
      expect(res.headers.get("content-type"), path).toBe("application/problem+json");
      expect([401, 404], path).toContain(res.status);
    }
  });

  it("is the 404 problem everywhere under /admin when the admin API is off", async () => {
    for (const path of ["/admin", "/admin/", "/admin/console.js", "/admin/console.css"]) {
      const res = await fetch(`${off.base}${path}`, { redirect: "manual" });
      expect(res.status, path).toBe(404);
      expect((await res.json<{ type: string }>()).type, path).toMatch(/:not-found$/);
    }
  });
});

describe("in Chromium", () => {
  it("signs in with the token, bans with a reason shown as text, and the ban holds at /auth until lifted", async () => {
    const sub = "console-mallory";
    expect(await authFor(sub)).toEqual({ status: 200 });
    const { page, log, dialogs } = await openConsole();

    await signIn(page);
    await page.locator("#who", { hasText: "signed in with the admin token" }).waitFor({ timeout: UI_WAIT_MS });

    // A second ban first, so the list (and the screenshot) holds more than one.
    await page.fill("#ban-client-id", "console-spammer");
    await page.fill("#ban-reason", "Spamming #general");
    await page.selectOption("#ban-duration", "604800");
    await page.click("#ban-form button");
    await page.locator("#bans tr", { hasText: "console-spammer" }).waitFor({ timeout: UI_WAIT_MS });
    expect(hoursOf(await storedBan("console-spammer"))).toBe(7 * 24);

    await page.fill("#ban-client-id", sub);
    await page.fill("#ban-reason", MARKUP);
    await page.selectOption("#ban-duration", "custom");
    await page.fill("#ban-custom-amount", "2");
    await page.selectOption("#ban-custom-unit", "3600");
    await page.click("#ban-form button");
    const row = page.locator("#bans tr", { hasText: sub });
    await row.waitFor({ timeout: UI_WAIT_MS });

    // The reason as the moderator typed it, in the list and in the ban's details; no element made of it.
    expect(await row.locator("td").nth(1).textContent()).toBe(MARKUP);
    expect(await page.locator("#detail dd").first().textContent()).toBe(MARKUP);
    expect(await page.locator("img").count()).toBe(0);
    // Its revocation: the first round done at once, the second due once the ban is everywhere.
    expect(await page.locator("#detail .countdown").textContent()).toMatch(/^in \d+ min \d+ s/);
    expect(await page.locator("#detail caption").allTextContents()).toEqual([
      expect.stringMatching(/^Round at-ban: revoked, due /),
      expect.stringMatching(/^Round after-propagation: pending, due /),
    ]);
    expect(await page.locator("#detail table.round").first().locator("tbody td").nth(2).textContent()).toBe("revoked");
    const stored = await storedBan(sub);
    expect(stored.reason).toBe(MARKUP);
    expect(hoursOf(stored)).toBe(2);

    expect(await authFor(sub)).toEqual({ status: 403, code: "user-banned" });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });

    // Found by clientId: its details replace the other's.
    await page.fill("#find-client-id", "console-spammer");
    await page.click("#find-form button");
    await page.locator("#detail h2", { hasText: "console-spammer" }).waitFor({ timeout: UI_WAIT_MS });
    expect(await page.locator("#detail dd").first().textContent()).toBe("Spamming #general");

    await row.getByRole("button", { name: "Lift" }).click();
    await row.waitFor({ state: "detached", timeout: UI_WAIT_MS });
    expect(await page.locator("#message").textContent()).toBe(`Lifted the ban on ${sub}.`);
    expect(await authFor(sub)).toEqual({ status: 200 });

    expect(dialogs, "no script ran from the reason").toEqual([]);
    expect(log.filter((line) => /Content.Security.Policy|pageerror/i.test(line))).toEqual([]);
  });

  it("signs in through Cloudflare Access, with no token, and bans in the moderator's name", async () => {
    // On the port its Access settings name: nothing else may be listening there (no `npm run dev`).
    const access = await startWranglerDev(
      { AUTH_URL: dev.base },
      { config: "dev/idp/wrangler.toml", port: 8788, readyPath: "/.well-known/openid-configuration" },
    );
    const redirect = encodeURIComponent(`${dev.base}/admin/`);
    /** The console in a fresh browser context, signed in to Access as `email`. */
    const signedInAs = async (email: string) => {
      const opened = await openPage(browser, `${DEV_ACCESS_LOGIN}?email=${email}&redirect=${redirect}`);
      pages.push(opened);
      return opened.page;
    };
    try {
      // Verified by Access, but not on MODERATORS: the worker's own refusal, and the token form.
      const outsider = await signedInAs("someone@elsewhere.example");
      await outsider.locator("#message.error", { hasText: "MODERATORS" }).waitFor({ timeout: UI_WAIT_MS });
      expect(await outsider.locator("#sign-in").isVisible()).toBe(true);
      expect(await outsider.locator("#console").isVisible()).toBe(false);

      const page = await signedInAs(MODERATOR);
      await page
        .locator("#who", { hasText: `signed in as ${MODERATOR} (Cloudflare Access)` })
        .waitFor({ timeout: UI_WAIT_MS });
      expect(await page.locator("#sign-in").isVisible()).toBe(false);

      await page.fill("#ban-client-id", "console-access-target");
      await page.click("#ban-form button");
      const row = page.locator("#bans tr", { hasText: "console-access-target" });
      await row.waitFor({ timeout: UI_WAIT_MS });
      expect(await row.locator("td").nth(2).textContent()).toBe(MODERATOR);
      await row.getByRole("button", { name: "Lift" }).click();
      await row.waitFor({ state: "detached", timeout: UI_WAIT_MS });
    } finally {
      await access.stop();
    }
  });

  it("shows the API's problem plainly: a wrong token, then a ban that does not exist", async () => {
    const { page } = await openConsole();
    await signIn(page, "not-the-admin-token-0123456789abcdef");
    const message = page.locator("#message.error");
    await message.waitFor({ timeout: UI_WAIT_MS });
    expect(await message.textContent()).toBe(
      await problemText("/admin/whoami", { Authorization: "Bearer not-the-admin-token-0123456789abcdef" }),
    );
    expect(await page.locator("#sign-in").isVisible()).toBe(true);

    await signIn(page);
    await page.fill("#find-client-id", "nobody-banned");
    await page.click("#find-form button");
    await page.locator("#message.error", { hasText: "nobody-banned" }).waitFor({ timeout: UI_WAIT_MS });
    expect(await page.locator("#message").textContent()).toBe(await problemText("/admin/bans/nobody-banned", ADMIN));
  });

  it("pages through the list with More, keeps the token for the tab only, and forgets it on sign-out", async () => {
    // One more ban than a page holds, through the API.
    const ids = Array.from({ length: ADMIN_LIST_PAGE_SIZE + 1 }, (_, i) => `console-page-${i}`);
    const statuses = await Promise.all(
      ids.map(async (id) => (await fetch(`${dev.base}/admin/bans/${id}`, { method: "PUT", headers: ADMIN })).status),
    );
    expect(new Set(statuses)).toEqual(new Set([200]));
    const { page } = await openConsole();
    await signIn(page);
    const more = page.locator("#more");
    await more.waitFor({ timeout: UI_WAIT_MS });
    expect(await page.locator("#bans tr").count()).toBe(ADMIN_LIST_PAGE_SIZE);
    await more.click();
    await more.waitFor({ state: "hidden", timeout: UI_WAIT_MS });
    const listed = await page.locator("#bans td.id").allTextContents();
    expect(listed.length).toBeGreaterThan(ADMIN_LIST_PAGE_SIZE);
    expect(listed).toEqual(expect.arrayContaining(ids));

    // A reload keeps the tab signed in; signing out forgets the token.
    await page.reload();
    await page.locator("#who", { hasText: "signed in" }).waitFor({ timeout: UI_WAIT_MS });
    await page.click("#sign-out");
    expect(await page.locator("#sign-in").isVisible()).toBe(true);
    await page.reload();
    await page.locator("#sign-in").waitFor({ timeout: UI_WAIT_MS });
    expect(await page.locator("#console").isVisible()).toBe(false);
  });
});
