/**
 * `wrangler dev` in a child process on 127.0.0.1, for the e2e suites: started with the given
 * variables, ready when /healthz answers 200, stopped with its whole process group; restartable on
 * the same port and persisted state (KV, Durable Objects and their alarms), as a deploy would be.
 * The auth endpoint by default; another worker (the development identity provider) on request.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { freePort } from "../../dev/node-server";

/** The project root: wrangler finds wrangler.toml from its working directory. */
export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "../..");
export const WRANGLER = join(ROOT, "node_modules/.bin/wrangler");

/** Never prompt, never phone home; a developer's CLOUDFLARE_* settings must not reach the worker. */
export const wranglerEnv = {
  ...process.env,
  CI: "true",
  WRANGLER_SEND_METRICS: "false",
  CLOUDFLARE_INCLUDE_PROCESS_ENV: "false",
  CLOUDFLARE_ENV: "",
  FORCE_COLOR: "0",
};

export interface WranglerDev {
  /** `http://127.0.0.1:<port>` */
  readonly base: string;
  /** Its local state directory (KV lives here). */
  readonly persistTo: string;
  /** Resident memory of the workerd processes it runs, in KiB (Linux `ps`). */
  workerdRssKiB(): Promise<number>;
  /** Everything wrangler and the worker printed so far (the worker's log lines included). */
  output(): string;
  /** The worker's per-request log records (src/request/log.ts) in `output()` from `from` on, oldest first. */
  records(from?: number): LogRecord[];
  /** Runs `wrangler kv key <args> --binding BANS --local` against this server's store. */
  kv(...args: string[]): Promise<void>;
  /** Writes every entry with one `wrangler kv bulk put --binding BANS --local` (one wrangler start, not one a key). */
  kvBulkPut(entries: Record<string, string>): Promise<void>;
  /** Stops the process and starts another on the same port with the same state and variables. */
  restart(): Promise<void>;
  /** Stops the process and deletes its state. */
  stop(): Promise<void>;
}

export interface WranglerDevOptions {
  /** Another worker's configuration, such as dev/idp/wrangler.toml; default the auth endpoint's. */
  config?: string;
  /** A fixed port (the development identity provider's is 8788); default a free one. */
  port?: number;
  /** The path that answers 200 once the worker is up; default /healthz. */
  readyPath?: string;
}

/**
 * Starts the worker of `wrangler.toml` with `vars` (as `--var`, which beats wrangler.toml) and an
 * empty env file, which replaces .dev.vars so a developer's local secrets cannot leak in.
 */
export async function startWranglerDev(
  vars: Record<string, string>,
  { config, port: fixedPort, readyPath = "/healthz" }: WranglerDevOptions = {},
): Promise<WranglerDev> {
  const persistTo = await mkdtemp(join(tmpdir(), "ably-edge-auth-e2e-"));
  const emptyEnvFile = join(persistTo, "empty.env");
  await writeFile(emptyEnvFile, "");
  const port = fixedPort ?? (await freePort());
  const base = `http://127.0.0.1:${port}`;
  let output = "";
  let child: ChildProcess | undefined;

  /** Ends the current process group, SIGKILL if it lingers. */
  const kill = async () => {
    if (child?.pid !== undefined && child.exitCode === null) {
      const exited = new Promise((resolve) => child!.once("exit", resolve));
      process.kill(-child.pid, "SIGTERM");
      await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 5_000))]);
      if (child.exitCode === null) process.kill(-child.pid, "SIGKILL");
    }
  };
  const stop = async () => {
    await kill();
    await rm(persistTo, { recursive: true, force: true });
  };

  /** Starts wrangler dev and waits for its ready path; stops everything if it never gets there. */
  const launch = async () => {
    const started: ChildProcess = spawn(
      WRANGLER,
      [
        "dev",
        ...(config ? ["-c", config] : []),
        "--ip",
        "127.0.0.1",
        "--port",
        String(port),
        "--inspector-ip",
        "127.0.0.1",
        "--inspector-port",
        String(await freePort()),
        "--persist-to",
        persistTo,
        "--env-file",
        emptyEnvFile,
        "--show-interactive-dev-session=false",
        // --var splits on the first colon only, so URLs and the Ably key keep theirs.
        ...Object.entries(vars).flatMap(([name, value]) => ["--var", `${name}:${value}`]),
      ],
      // Its own process group, so stop() ends wrangler and the workerd processes it starts.
      { cwd: ROOT, env: wranglerEnv, stdio: ["ignore", "pipe", "pipe"], detached: true },
    );
    child = started;
    started.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    started.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));

    const deadline = Date.now() + 60_000;
    for (;;) {
      if (started.exitCode !== null) {
        await stop();
        throw new Error(`wrangler dev exited early:\n${output}`);
      }
      if (
        await fetch(`${base}${readyPath}`).then(
          (r) => r.ok,
          () => false,
        )
      )
        break;
      if (Date.now() > deadline) {
        await stop();
        throw new Error(`wrangler dev not ready after 60 s:\n${output}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  };
  await launch();

  return {
    base,
    persistTo,
    workerdRssKiB: async () => {
      const { stdout } = await promisify(execFile)("ps", ["-o", "rss=,comm=", "-g", String(child!.pid)]);
      return stdout
        .split("\n")
        .filter((line) => line.trim().endsWith("workerd"))
        .reduce((sum, line) => sum + Number(line.trim().split(/\s+/)[0]), 0);
    },
    output: () => output,
    records: (from = 0) => logRecords(output.slice(from)),
    kv: async (...args) => {
      await promisify(execFile)(
        WRANGLER,
        ["kv", "key", ...args, "--binding", "BANS", "--local", "--persist-to", persistTo],
        { cwd: ROOT, env: wranglerEnv },
      );
    },
    kvBulkPut: async (entries) => {
      const file = join(persistTo, "bulk.json");
      await writeFile(file, JSON.stringify(Object.entries(entries).map(([key, value]) => ({ key, value }))));
      await promisify(execFile)(
        WRANGLER,
        ["kv", "bulk", "put", file, "--binding", "BANS", "--local", "--persist-to", persistTo],
        { cwd: ROOT, env: wranglerEnv },
      );
    },
    restart: async () => {
      await kill();
      await launch();
    },
    stop,
  };
}

/** One of the worker's per-request log records. */
export type LogRecord = Record<string, string | number | undefined> & { requestId: string };

/**
 * The per-request records in wrangler dev's output. The worker logs an object (Workers Logs indexes
 * its fields); locally workerd prints it the way Node's util.inspect does, one `key: value,` a line
 * between a line `{` and a line `}`, strings quoted with ', " or `.
 */
export function logRecords(text: string): LogRecord[] {
  const blocks = text.match(/^\{\n[\s\S]*?^\}$/gm) ?? [];
  return blocks
    .map((block) =>
      Object.fromEntries(
        block
          .split("\n")
          .slice(1, -1)
          .map((line) => /^\s+(\w+): (.*?),?$/.exec(line))
          .filter((m) => m !== null)
          .map(([, key, raw]) => [key!, inspected(raw!)]),
      ),
    )
    .filter((record): record is LogRecord => typeof record.requestId === "string");
}

function inspected(raw: string): string | number | undefined {
  if (raw === "undefined") return undefined;
  if (/^['"`]/.test(raw)) return raw.slice(1, -1).replace(/\\(.)/g, "$1");
  return Number(raw);
}
