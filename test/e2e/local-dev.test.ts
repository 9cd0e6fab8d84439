/**
 * Local development works with no account anywhere: the README's run command, run exactly as
 * written in a fresh copy of the project, brings up the development identity provider and the
 * auth endpoint; the whole flow then runs over HTTP (discovery, identity token, /auth, ban, 403,
 * unban) and in Chromium on the demo page.
 *
 * It runs the command as a user types it: with no `node_modules/.bin` on PATH and no npm variables,
 * so `npm` is the machine's own (on these machines Node 20), and it checks that the dev script,
 * both wranglers and their children run on the project's Node (the `node` devDependency, the
 * version in .node-version), whatever the machine's Node is.
 *
 * It uses the fixed ports of `npm run dev` (8787, 8788): nothing else may be listening there.
 */
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import {
  copyFileSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  realpathSync,
  rmSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, sep } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { verifyAblyToken } from "../support/ably-token";
import { launchBrowser, openPage } from "../support/browser";
import { PROJECT_NODE, userShellEnv } from "../support/user-shell";
import { ROOT } from "../support/wrangler-dev";

const IDP = "http://127.0.0.1:8788";
const AUTH = "http://127.0.0.1:8787";
/** `npm ci` from a warm cache plus two wrangler starts; a cold CI machine needs the margin. */
const START_TIMEOUT_MS = 240_000;

const devVars = readFileSync(join(ROOT, ".dev.vars.example"), "utf8");
const devVar = (name: string) => new RegExp(`^${name}="([^"]*)"`, "m").exec(devVars)![1]!;
const ADMIN = { Authorization: `Bearer ${devVar("ADMIN_TOKEN")}` };

/** The first ```sh block after "Run it locally" in the README: the command a new user pastes. */
function readmeRunCommand(): string {
  const readme = readFileSync(join(ROOT, "README.md"), "utf8");
  const block = /\*\*Run it locally\*\*[\s\S]*?```sh\n([\s\S]*?)```/.exec(readme);
  if (!block) throw new Error("README.md has no run command under **Run it locally**");
  return block[1]!.trim();
}

/** Every process started, directly or not, by `pid` (Linux /proc); each with its executable and command line. */
function descendants(pid: number): { pid: number; exe: string; cmdline: string }[] {
  const parents = new Map<number, number[]>();
  for (const entry of readdirSync("/proc").filter((name) => /^\d+$/.test(name))) {
    try {
      // The fields after the command name (which may hold spaces and parentheses): state, ppid, ...
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      parents.set(ppid, [...(parents.get(ppid) ?? []), Number(entry)]);
    } catch {
      // gone meanwhile
    }
  }
  const found: { pid: number; exe: string; cmdline: string }[] = [];
  const queue = [...(parents.get(pid) ?? [])];
  while (queue.length > 0) {
    const child = queue.shift()!;
    queue.push(...(parents.get(child) ?? []));
    try {
      const exe = readlinkSync(`/proc/${child}/exe`);
      const cmdline = readFileSync(`/proc/${child}/cmdline`, "utf8").split("\0").join(" ").trim();
      found.push({ pid: child, exe, cmdline });
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

let checkout: string;
let run: ChildProcess;
let output = "";

beforeAll(async () => {
  // A fresh copy: what git tracks plus new files it does not ignore, so no node_modules, no .dev.vars.
  checkout = mkdtempSync(join(tmpdir(), "ably-edge-auth-checkout-"));
  const files = execFileSync("git", ["ls-files", "-co", "--exclude-standard", "-z"], { cwd: ROOT, encoding: "utf8" });
  for (const file of files.split("\0").filter(Boolean)) {
    mkdirSync(dirname(join(checkout, file)), { recursive: true });
    try {
      copyFileSync(join(ROOT, file), join(checkout, file));
    } catch {
      // deleted in the working tree but still tracked: a fresh clone would not have it either
    }
  }
  run = spawn("sh", ["-c", readmeRunCommand()], {
    cwd: checkout,
    env: { ...userShellEnv(), CI: "true", WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  run.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  run.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const deadline = Date.now() + START_TIMEOUT_MS;
  while (!output.includes("[dev] ready")) {
    if (run.exitCode !== null) throw new Error(`the run command exited:\n${output}`);
    if (Date.now() > deadline) throw new Error(`not ready after ${START_TIMEOUT_MS} ms:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
}, START_TIMEOUT_MS + 10_000);

afterAll(async () => {
  if (run?.pid !== undefined && run.exitCode === null) {
    const exited = new Promise((resolve) => run.once("exit", resolve));
    process.kill(-run.pid, "SIGTERM"); // dev/run.mjs stops both wrangler process groups
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
  }
  if (checkout) rmSync(checkout, { recursive: true, force: true });
});

describe("the README's run command", () => {
  it("runs the dev script and both wranglers on the project's Node, not the machine's", () => {
    const tree = descendants(run.pid!);
    const shown = JSON.stringify(tree, null, 1);
    // Every Node process but npm itself (whose title is "npm <command>"): npm may run on the machine's Node.
    const nodes = tree.filter(({ exe, cmdline }) => basename(exe) === "node" && !/^npm\b/.test(cmdline));
    expect(
      nodes.filter(({ cmdline }) => cmdline.includes("dev/run.mjs")),
      shown,
    ).toHaveLength(1);
    expect(nodes.filter(({ cmdline }) => cmdline.includes("wrangler")).length, shown).toBeGreaterThanOrEqual(2); // auth, idp
    const own = join(realpathSync(checkout), "node_modules") + sep;
    for (const { exe, cmdline } of nodes) {
      // The checkout's own node_modules/node, found through the PATH that npm run gives its scripts.
      expect(exe.startsWith(own), `${cmdline}: ${exe}`).toBe(true);
      expect(execFileSync(exe, ["--version"], { encoding: "utf8" }).trim(), exe).toBe(PROJECT_NODE);
    }
    console.log(
      `on ${PROJECT_NODE}:\n${nodes.map(({ exe, cmdline }) => `  ${exe}: ${cmdline.slice(0, 120)}`).join("\n")}`,
    );
    expect(output).toContain(`[dev] ready on Node ${PROJECT_NODE}`);
  });

  it("creates .dev.vars from the example and says so", () => {
    expect(output).toContain("created .dev.vars from .dev.vars.example");
    expect(readFileSync(join(checkout, ".dev.vars"), "utf8")).toBe(devVars);
  });

  it("runs the whole flow over HTTP: discovery, token, /auth, ban, 403, unban", async () => {
    const discovery: { issuer: string; jwks_uri: string } = await (
      await fetch(`${IDP}/.well-known/openid-configuration`)
    ).json();
    expect(discovery.issuer).toBe(devVar("JWT_ISSUER"));
    const jwks = await (await fetch(discovery.jwks_uri)).json<{ keys: { kid: string; d?: string }[] }>();
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]!.d).toBeUndefined(); // the public half only

    const identity = await (await fetch(`${IDP}/token?sub=walkthrough&roles=member`)).text();
    const auth = () => fetch(`${AUTH}/auth`, { headers: { Authorization: `Bearer ${identity}` } });
    const issued = await auth();
    expect(issued.status).toBe(200);
    const claims = await verifyAblyToken(await issued.text(), devVar("ABLY_API_KEY"));
    expect(claims.clientId).toBe("walkthrough");
    expect(claims.ttl).toBe(Number(devVar("ABLY_TOKEN_TTL_SECONDS")));

    const ban = await fetch(`${AUTH}/admin/bans/walkthrough`, {
      method: "PUT",
      headers: { ...ADMIN, "Content-Type": "application/json" },
      body: JSON.stringify({ reason: "walkthrough ban" }),
    });
    expect(ban.status).toBe(200);
    const refused = await auth();
    expect(refused.status).toBe(403);
    expect((await refused.json<{ detail: string }>()).detail).toContain("walkthrough ban");

    expect((await fetch(`${AUTH}/admin/bans/walkthrough`, { method: "DELETE", headers: ADMIN })).status).toBe(204);
    expect((await auth()).status).toBe(200);
  });

  it("refuses a user whose development token carries a banned role (ROLES_CLAIM=roles)", async () => {
    const identity = await (await fetch(`${IDP}/token?sub=dave&roles=banned-spammer`)).text();
    const res = await fetch(`${AUTH}/auth`, { headers: { Authorization: `Bearer ${identity}` } });
    expect(res.status).toBe(403);
  });

  it("plays Cloudflare Access for the admin API: its certs, an application token, the login cookie", async () => {
    const certs = await (
      await fetch(`${devVar("ACCESS_TEAM_DOMAIN")}/cdn-cgi/access/certs`)
    ).json<{
      keys: { d?: string }[];
      public_cert: { kid: string; cert: string };
      public_certs: unknown[];
    }>();
    expect(certs.keys[0]!.d).toBeUndefined();
    expect(certs.public_cert.cert).toMatch(/^-----BEGIN PUBLIC KEY-----/);
    expect(certs.public_certs).toEqual([certs.public_cert]);

    const jwt = await (await fetch(`${IDP}/access/token?email=alice@example.com`)).text();
    const payload = JSON.parse(Buffer.from(jwt.split(".")[1]!, "base64url").toString()) as Record<string, unknown>;
    expect(payload).toMatchObject({ iss: devVar("ACCESS_TEAM_DOMAIN"), aud: [devVar("ACCESS_AUD")], type: "app" });
    const header = { "Cf-Access-Jwt-Assertion": jwt };
    expect(await (await fetch(`${AUTH}/admin/whoami`, { headers: header })).json()).toEqual({
      moderator: "alice@example.com",
      via: "access",
    });
    const ban = await fetch(`${AUTH}/admin/bans/access-walkthrough`, { method: "PUT", headers: header });
    expect(await ban.json()).toMatchObject({ bannedBy: "alice@example.com" });
    expect((await fetch(`${AUTH}/admin/bans/access-walkthrough`, { method: "DELETE", headers: header })).status).toBe(
      204,
    );

    const login = await fetch(`${IDP}/access/login?email=bob@example.com&redirect=${AUTH}/admin/`, {
      redirect: "manual",
    });
    expect(login.status).toBe(302);
    expect(login.headers.get("location")).toBe(`${AUTH}/admin/`);
    const cookie = login.headers.get("set-cookie")!;
    expect(cookie).toMatch(/^CF_Authorization=[\w.-]+; Path=\/; SameSite=Lax; HttpOnly/);
    const sameOrigin = { Cookie: cookie.split(";")[0]!, "Sec-Fetch-Site": "same-origin", "Sec-Fetch-Mode": "cors" };
    expect(await (await fetch(`${AUTH}/admin/whoami`, { headers: sameOrigin })).json()).toEqual({
      moderator: "bob@example.com",
      via: "access",
    });
    const elsewhere = await fetch(`${IDP}/access/login?email=bob@example.com&redirect=https://evil.example/`, {
      redirect: "manual",
    });
    expect(elsewhere.status).toBe(400);
  });
});

describe("the demo page in Chromium", () => {
  let browser: Browser;
  beforeAll(async () => {
    browser = await launchBrowser();
  });
  afterAll(async () => browser?.close());

  it("shows a token issued and decoded, then a ban turning the renewal into a 403 and FAILED", async () => {
    const opened = await openPage(browser, `${IDP}/`);
    const { page, log } = opened;
    const text = (id: string) => page.textContent(`#${id}`).then((t) => t ?? "");
    /** Waits until the element's text matches: the page updates as ably-js and /auth answer. */
    const until = (id: string, text: RegExp) =>
      page.locator(`#${id}`).filter({ hasText: text }).waitFor({ timeout: 15_000 });
    try {
      await page.selectOption("#user", "bob");
      await page.click("#connect");
      await until("status", /^200/);
      expect(await text("client-id")).toBe("bob");
      expect(JSON.parse(await text("ably-token"))).toMatchObject({
        "x-ably-clientId": "bob",
        "x-ably-capability": { "private:bob": ["history", "presence", "publish", "subscribe"] },
      });
      expect(JSON.parse(await text("identity"))).toMatchObject({ sub: "bob", iss: devVar("JWT_ISSUER") });
      expect(await text("key-note")).toContain("placeholder key");

      await page.click("#ban");
      await until("log", /bob banned/);
      await page.click("#renew");
      await until("status", /^403/);
      await until("state", /^failed$/);
      expect(await text("status")).toContain("banned from the demo page");
      await page.click("#unban");
    } catch (error) {
      throw new Error(`${String(error)}\nwhat the page logged:\n${log.join("\n")}`, { cause: error });
    } finally {
      await opened.close();
    }
  });
});
