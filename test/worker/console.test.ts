/**
 * The moderation console's files (public/admin/, through the ASSETS binding of wrangler.toml's
 * [assets]): served only while the admin API is on, to anyone (the page holds no secret), with a
 * CSP that allows the page's own script, style and API calls and nothing else.
 */
import { describe, expect, it } from "vitest";
import { ACCESS_AUD, ACCESS_TEAM } from "./access";
import { call, problemCode, seen } from "./helpers";

const ADMIN_TOKEN = "test-admin-token-0123456789abcdef0123456789";
seen.secrets.push(ADMIN_TOKEN);
const ADMIN = { ADMIN_TOKEN };

const FILES = [
  ["/admin/", "text/html", '<script type="module" src="console.js">'],
  ["/admin/console.js", "text/javascript", "textContent"],
  ["/admin/console.css", "text/css", "font:"],
] as const;

describe("the console with the admin API on", () => {
  it.each(FILES)("serves %s without any credential, with the console's CSP", async (path, type, excerpt) => {
    const res = await call(path, {}, ADMIN);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toContain(type);
    expect(await res.text()).toContain(excerpt);
    const csp = res.headers.get("content-security-policy")!;
    for (const directive of [
      "default-src 'none'",
      "script-src 'self'",
      "style-src 'self'",
      "connect-src 'self'",
      "frame-ancestors 'none'",
    ]) {
      expect(csp).toContain(directive);
    }
    expect(csp).not.toMatch(/unsafe|\*|https?:/);
    // The security headers and request id of every other answer.
    expect(res.headers.get("x-frame-options")).toBe("DENY");
    expect(res.headers.get("x-content-type-options")).toBe("nosniff");
    expect(res.headers.get("x-request-id")).toBeTruthy();
  });

  it("revalidates a file the browser holds: 304, still with the console's CSP", async () => {
    const etag = (await call("/admin/console.js", {}, ADMIN)).headers.get("etag");
    expect(etag).toBeTruthy();
    const res = await call("/admin/console.js", { headers: { "If-None-Match": etag! } }, ADMIN);
    expect(res.status).toBe(304);
    expect(res.headers.get("content-security-policy")).toContain("script-src 'self'");
  });

  it("sends /admin on to /admin/", async () => {
    const res = await call("/admin", { redirect: "manual" }, ADMIN);
    expect(res.status).toBe(307);
    expect(res.headers.get("location")).toBe("/admin/");
  });

  it("still demands the token for the API itself, on the same path prefix", async () => {
    for (const path of ["/admin/bans", "/admin/bans/alice", "/admin/index.html", "/admin/other.js"]) {
      expect(await problemCode(await call(path, {}, ADMIN)), path).toBe("admin-unauthorized");
    }
  });

  it("keeps the API's strict CSP on the API's answers", async () => {
    const res = await call("/admin/bans", { headers: { Authorization: `Bearer ${ADMIN_TOKEN}` } }, ADMIN);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-security-policy")).toBe("default-src 'none'; frame-ancestors 'none'");
  });
});

describe("the console with Cloudflare Access alone (no ADMIN_TOKEN)", () => {
  const ACCESS = { ACCESS_TEAM_DOMAIN: ACCESS_TEAM, ACCESS_AUD, MODERATORS: "@example.com" };

  it("serves the page, and the API asks for Access or the token", async () => {
    const page = await call("/admin/", {}, ACCESS);
    expect(page.status).toBe(200);
    expect(page.headers.get("content-security-policy")).toContain("script-src 'self'");
    expect(await problemCode(await call("/admin/bans", {}, ACCESS))).toBe("admin-unauthorized");
  });
});

describe("the console with the admin API off", () => {
  it.each([...FILES.map(([path]) => path), "/admin"])("%s is the 404 problem", async (path) => {
    const res = await call(path, { redirect: "manual" });
    expect(res.status).toBe(404);
    expect(await problemCode(res)).toBe("not-found");
  });
});

describe("nothing else of the assets is served", () => {
  it.each([
    "/",
    "/index.html",
    "/console.js",
    "/admin/../console.js",
    "/public/admin/console.js",
    // The router takes one trailing slash; the assets have no such file.
    "/admin/console.js/",
    "/admin/console.css/",
  ])("%s is the worker's 404 problem", async (path) => {
    const res = await call(path, {}, ADMIN);
    expect(res.status).toBe(404);
    expect(await problemCode(res)).toBe("not-found");
  });
});
