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
  symlinkSync,
  writeFileSync,
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
/** `npm run dev` alone: two wrangler starts and the Ably stand-in. */
const DEV_START_TIMEOUT_MS = 90_000;

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

/** A fresh copy of the project: what git tracks plus new files it does not ignore, so no node_modules, no .dev.vars. */
function freshCopy(): string {
  const copy = mkdtempSync(join(tmpdir(), "ably-edge-auth-checkout-"));
  const files = execFileSync("git", ["ls-files", "-co", "--exclude-standard", "-z"], { cwd: ROOT, encoding: "utf8" });
  for (const file of files.split("\0").filter(Boolean)) {
    mkdirSync(dirname(join(copy, file)), { recursive: true });
    try {
      copyFileSync(join(ROOT, file), join(copy, file));
    } catch {
      // deleted in the working tree but still tracked: a fresh clone would not have it either
    }
  }
  return copy;
}

/** `command` run by a shell in `cwd` with `env`, in its own process group; its output collected. */
interface Run {
  child: ChildProcess;
  output(): string;
  /** Stops it and everything it started (dev/run.mjs stops its children on SIGTERM). */
  stop(): Promise<void>;
}

/** Starts `command` in `cwd` and waits until dev/run.mjs says it is ready. */
async function startRun(cwd: string, command: string, env: NodeJS.ProcessEnv, timeoutMs: number): Promise<Run> {
  const child = spawn("sh", ["-c", command], {
    cwd,
    env: { ...env, CI: "true", WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0" },
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  let output = "";
  child.stdout.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const run: Run = {
    child,
    output: () => output,
    stop: async () => {
      if (child.pid === undefined || child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      process.kill(-child.pid, "SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 10_000))]);
    },
  };
  const deadline = Date.now() + timeoutMs;
  while (!output.includes("[dev] ready")) {
    if (child.exitCode !== null) throw new Error(`${command} exited:\n${output}`);
    if (Date.now() > deadline) {
      await run.stop();
      throw new Error(`not ready after ${timeoutMs} ms:\n${output}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  return run;
}

describe("the README's run command", () => {
  let checkout: string;
  let run: Run;

  beforeAll(async () => {
    checkout = freshCopy();
    run = await startRun(checkout, readmeRunCommand(), userShellEnv(), START_TIMEOUT_MS);
  }, START_TIMEOUT_MS + 10_000);

  afterAll(async () => {
    await run?.stop();
    if (checkout) rmSync(checkout, { recursive: true, force: true });
  });

  it("runs the dev script and both wranglers on the project's Node, not the machine's", () => {
    const tree = descendants(run.child.pid!);
    const shown = JSON.stringify(tree, null, 1);
    // Every Node process but npm itself (whose title is "npm <command>"): npm may run on the machine's Node.
    const nodes = tree.filter(({ exe, cmdline }) => basename(exe) === "node" && !/^npm\b/.test(cmdline));
    expect(
      nodes.filter(({ cmdline }) => cmdline.includes("dev/run.mjs")),
      shown,
    ).toHaveLength(1);
    expect(nodes.filter(({ cmdline }) => cmdline.includes("wrangler")).length, shown).toBeGreaterThanOrEqual(2); // auth, idp
    expect(
      nodes.filter(({ cmdline }) => cmdline.includes("dev/ably/main.ts")),
      shown,
    ).toHaveLength(1); // placeholder key
    const own = join(realpathSync(checkout), "node_modules") + sep;
    for (const { exe, cmdline } of nodes) {
      // The checkout's own node_modules/node, found through the PATH that npm run gives its scripts.
      expect(exe.startsWith(own), `${cmdline}: ${exe}`).toBe(true);
      expect(execFileSync(exe, ["--version"], { encoding: "utf8" }).trim(), exe).toBe(PROJECT_NODE);
    }
    console.log(
      `on ${PROJECT_NODE}:\n${nodes.map(({ exe, cmdline }) => `  ${exe}: ${cmdline.slice(0, 120)}`).join("\n")}`,
    );
    expect(run.output()).toContain(`[dev] ready on Node ${PROJECT_NODE}`);
  });

  it("creates .dev.vars from the example and says so", () => {
    expect(run.output()).toContain("created .dev.vars from .dev.vars.example");
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

/**
 * An existing checkout whose .dev.vars predates the demo's settings, with the user's own shorter
 * token lifetime: `npm run dev` tops it up and starts the Ably stand-in; then the demo page's two
 * users in Chromium. node_modules is the project's own (linked), so no `npm ci` here.
 */
describe("the demo page from `npm run dev` in an existing checkout: two users, a ban cuts one off", () => {
  /** The user's own value in the old .dev.vars: Ably asks for a renewal half-way, 8 s in. */
  const TTL_SECONDS = "16";
  /** The settings the example gained for the demo: an older .dev.vars lacks them. */
  const NEW_SETTINGS = ["ABLY_CAPABILITY", "ABLY_REVOCABLE_TOKENS", "ABLY_REST_URL"];
  let checkout: string;
  let run: Run;
  let browser: Browser;

  beforeAll(async () => {
    checkout = freshCopy();
    symlinkSync(join(ROOT, "node_modules"), join(checkout, "node_modules"));
    const old = devVars
      .split("\n")
      .filter((line) => !NEW_SETTINGS.some((name) => line.startsWith(`${name}=`)))
      .join("\n")
      .replace(/^ABLY_TOKEN_TTL_SECONDS=.*$/m, `ABLY_TOKEN_TTL_SECONDS="${TTL_SECONDS}"`);
    writeFileSync(join(checkout, ".dev.vars"), old);
    run = await startRun(checkout, "npm run dev", process.env, DEV_START_TIMEOUT_MS);
    browser = await launchBrowser();
  }, DEV_START_TIMEOUT_MS + 40_000);

  afterAll(async () => {
    await browser?.close();
    await run?.stop();
    if (checkout) rmSync(checkout, { recursive: true, force: true });
  });

  it("adds the settings .dev.vars lacks, says which, and keeps the user's own values", () => {
    expect(run.output()).toContain(`added to .dev.vars from .dev.vars.example: ${NEW_SETTINGS.join(", ")}`);
    const now = readFileSync(join(checkout, ".dev.vars"), "utf8");
    expect(now).toContain(`ABLY_TOKEN_TTL_SECONDS="${TTL_SECONDS}"`);
    for (const name of NEW_SETTINGS) expect(now).toContain(`\n${name}=`);
    expect(run.output()).toContain("the local stand-in on http://127.0.0.1:8789");
  });

  it("shows two users talking, a refusal, a renewal, and a ban cutting one off while the other stays", async () => {
    const opened = await openPage(browser, `${IDP}/`);
    const { page, log } = opened;
    const text = (id: string) => page.textContent(`#${id}`).then((t) => t ?? "");
    /** Waits until the element's text matches: the page updates as ably-js, /auth and Ably answer. */
    const until = (id: string, pattern: RegExp, timeout = 15_000) =>
      page.locator(`#${id}`).filter({ hasText: pattern }).waitFor({ timeout });
    const names = (id: string) => page.locator(`#${id} li`).allTextContents();
    try {
      expect(await text("ably-mode")).toContain("local Ably stand-in on 127.0.0.1:8789");
      expect(await page.inputValue("#a-user")).toBe("alice");
      expect(await page.inputValue("#b-user")).toBe("bob");
      await page.click("#a-connect");
      await page.click("#b-connect");
      await until("a-state", /^connected$/);
      await until("b-state", /^connected$/);
      expect(await text("a-client-id")).toBe("alice");
      expect(await text("b-client-id")).toBe("bob");

      // Presence: each sees both.
      await until("a-presence", /alice[\s\S]*bob/);
      await until("b-presence", /alice[\s\S]*bob/);

      // Messages on the shared channel, both ways.
      await page.fill("#a-text", "hi bob");
      await page.click("#a-send");
      await until("b-messages", /alice: hi bob/);
      await page.fill("#b-text", "hi alice");
      await page.click("#b-send");
      await until("a-messages", /bob: hi alice/);

      // Outside alice's grant: bob's private channel, refused by Ably with 40160.
      await page.click("#a-forbidden");
      await until("a-refused", /^40160 /);

      // The token counts down and is renewed when Ably asks, on the same connection.
      expect(await text("a-countdown")).toMatch(/^\d+ s$/);
      await until("a-renewals", /^[1-9]/, Number(TTL_SECONDS) * 1000);
      await until("a-log", /token renewed/);
      expect(await text("a-state")).toBe("connected");

      // Ban bob: revoked (40141), his re-authentication refused (403), FAILED; alice stays.
      await page.click("#b-ban");
      await until("b-log", /40141 Token revoked/);
      await until("b-status", /^403 You are banned/);
      await until("b-state", /^failed$/);
      await until("a-log", /bob leave presence/);
      expect(await names("a-presence")).toEqual(["alice"]);
      expect(await text("b-countdown")).toBe("–"); // no live token left to count down
      expect(await text("a-state")).toBe("connected");
      await page.fill("#a-text", "still here");
      await page.click("#a-send");
      await until("a-messages", /alice: still here/);
      expect(await text("b-messages")).not.toContain("still here");

      if (process.env.DEMO_SCREENSHOT) await page.screenshot({ path: process.env.DEMO_SCREENSHOT, fullPage: true });
    } catch (error) {
      throw new Error(`${String(error)}\nwhat the page logged:\n${log.join("\n")}\nnpm run dev:\n${run.output()}`, {
        cause: error,
      });
    } finally {
      await opened.close();
    }
  });
});
