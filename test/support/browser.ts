/**
 * A real, headless Chromium for the e2e suites, driven by playwright-core. It is an installed
 * Chromium or Chrome (chromium.ts finds it, and `npm test` installs Debian's where it can), not one
 * Playwright downloads, so nothing is fetched at test time. Each launch gets a fresh temporary profile from Playwright (removed on close), so
 * no cookie, cache or CORS preflight cache survives from one run to the next.
 *
 *   const browser = await launchBrowser();
 *   const { page, log } = await openPage(browser, "http://127.0.0.1:1234/");
 *   ...
 *   await browser.close();
 */
import { type Browser, chromium, type Page } from "playwright-core";
import { chromiumMissing, findChromium } from "./chromium";

/**
 * What this machine needs: no sandbox (containers, root), no GPU, no QUIC; and no background
 * networking, component updates, sync or first-run work, without which Chromium keeps calling out
 * to Google's servers, which a closed network answers with a flood of failures.
 */
export const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** How long Chromium may take to start; a cold start on a busy CI machine takes a few seconds. */
const LAUNCH_TIMEOUT_MS = 30_000;

/** How long a page may take to load: everything is served from 127.0.0.1. */
const LOAD_TIMEOUT_MS = 10_000;

/** Starts headless Chromium. Throws, never skips, when it is not installed. */
export async function launchBrowser(): Promise<Browser> {
  const missing = chromiumMissing();
  if (missing) throw new Error(missing);
  return chromium.launch({
    executablePath: findChromium(),
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: LAUNCH_TIMEOUT_MS,
  });
}

export interface OpenedPage {
  page: Page;
  /**
   * What the page said: console messages as `<type>: <text>`, uncaught errors as `pageerror: ...`
   * and failed requests as `requestfailed: <method> <url> <reason>`. Put it in assertion messages,
   * so a failure shows what the browser saw.
   */
  log: string[];
  /** Closes the page and its context. */
  close(): Promise<void>;
}

/**
 * Opens `url` in a new browser context (its own cookies and caches, like a fresh incognito window)
 * and waits for it to load, capturing what the page logs.
 */
export async function openPage(browser: Browser, url: string): Promise<OpenedPage> {
  const context = await browser.newContext();
  const page = await context.newPage();
  const log: string[] = [];
  page.on("console", (message) => log.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => log.push(`pageerror: ${error.message}`));
  page.on("requestfailed", (request) =>
    log.push(`requestfailed: ${request.method()} ${request.url()} ${request.failure()?.errorText ?? ""}`),
  );
  const response = await page.goto(url, { timeout: LOAD_TIMEOUT_MS, waitUntil: "load" });
  if (!response?.ok()) {
    await context.close();
    throw new Error(`${url} answered ${response?.status() ?? "nothing"}:\n${log.join("\n")}`);
  }
  return { page, log, close: () => context.close() };
}
