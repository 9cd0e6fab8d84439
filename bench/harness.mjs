/**
 * What bench/run.mjs and bench/profile.mjs share: the identity provider on 127.0.0.1, the bundles
 * built as `wrangler deploy` builds them, bare workerd serving one bundle, a process's CPU time.
 */
import { execFile, spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { connect } from "node:net";
import { basename, dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from "jose";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WRANGLER = join(ROOT, "node_modules/.bin/wrangler");
// wrangler's own workerd, not the test pool's newer one.
export const fromWrangler = createRequire(join(ROOT, "node_modules/wrangler/package.json"));
const WORKERD = fromWrangler("workerd").default; // the binary's path
export const WORKERD_VERSION = JSON.parse(readFileSync(fromWrangler.resolve("workerd/package.json"), "utf8")).version;
export const COMPATIBILITY_DATE = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(
  readFileSync(join(ROOT, "wrangler.toml"), "utf8"),
)[1];

export const CLIENT_ID = "bench-user";
export const ABLY_API_KEY = "benchApp.benchKey:bench-secret-not-a-real-key-0123456789";
const AUDIENCE = "ably-edge-auth-bench";
const wranglerEnv = { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0" };

export const say = (message) => process.stderr.write(`bench: ${message}\n`);
export const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The identity provider: a JWKS on 127.0.0.1 that counts its fetches, and a token it signed. */
export async function identityProvider() {
  const { publicKey, privateKey } = await generateKeyPair("RS256");
  const publicJwk = { ...(await exportJWK(publicKey)), kid: "bench-1", alg: "RS256", use: "sig" };
  const fetches = new Map(); // path and query → count
  const server = createServer((req, res) => {
    fetches.set(req.url, (fetches.get(req.url) ?? 0) + 1);
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ keys: [publicJwk] }));
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const origin = `http://127.0.0.1:${server.address().port}`;
  const issuer = `${origin}/`;
  const now = Math.floor(Date.now() / 1000);
  const token = await new SignJWT({ sub: CLIENT_ID })
    .setProtectedHeader({ alg: "RS256", kid: "bench-1", typ: "JWT" })
    .setIssuer(issuer)
    .setAudience(AUDIENCE)
    .setIssuedAt(now)
    .setExpirationTime(now + 7_200)
    .sign(privateKey);
  return {
    issuer,
    audience: AUDIENCE,
    jwksUrl: (scenario = "load") => `${origin}/jwks?scenario=${scenario}`,
    token,
    publicJwk,
    fetchesOf: (scenario) => fetches.get(`/jwks?scenario=${scenario}`) ?? 0,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Bindings every worker here gets: the provider, the Ably key. */
export const workerBindings = (idp, scenario) => ({
  JWT_ISSUER: idp.issuer,
  JWT_AUDIENCE: idp.audience,
  JWKS_URL: idp.jwksUrl(scenario),
  ABLY_API_KEY,
});

/**
 * Builds `entry` (default: wrangler.toml's main) exactly as `wrangler deploy` does, and says where
 * the bundle is and its size as wrangler reports it.
 */
export async function buildBundle(outdir, { entry, flags = [] } = {}) {
  // Another entry gets a configuration of its own: wrangler.toml's bindings (its Durable Object
  // among them) belong to the worker, and wrangler refuses an entry that does not export them.
  const config = entry ? `${outdir}.wrangler.json` : undefined;
  if (config) {
    const own = { name: "bench-entry", main: join(ROOT, entry), compatibility_date: COMPATIBILITY_DATE, minify: true };
    await writeFile(config, JSON.stringify(own));
  }
  const args = ["deploy", "--dry-run", "--outdir", outdir, ...flags, ...(config ? ["--config", config] : [])];
  const { stdout } = await promisify(execFile)(WRANGLER, args, { cwd: ROOT, env: wranglerEnv });
  const [, total, gzip] = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(stdout);
  const file = join(outdir, entry ? `${basename(entry).replace(/\.[mc]?[jt]s$/, "")}.js` : "index.js");
  return { file, totalKiB: Number(total), gzipKiB: Number(gzip) };
}

/** CPU time of a process, in ns: the sum over its threads (schedstat is per thread, in ns). */
export function cpuNs(pid) {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += Number(readFileSync(`/proc/${pid}/task/${tid}/schedstat`, "utf8").split(" ")[0]);
    } catch {
      // the thread ended meanwhile
    }
  }
  return total;
}

/** A port nothing listens on right now (the OS picks it; workerd binds it a moment later). */
export async function freePort() {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Whether something accepts TCP connections on the port: no HTTP request, so no isolate is warmed. */
const accepts = (port) =>
  new Promise((resolve) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("connect", () => (socket.destroy(), resolve(true)));
    socket.once("error", () => resolve(false));
  });

/**
 * One bundle in workerd itself, from a config written beside it: no Miniflare entry worker, and
 * KV answered by a one-line service (404: not banned), so only the worker runs in its thread.
 * Returns once the socket accepts, before any request: `startupMs` is workerd's CPU until then
 * (start, compile, the global scope). `inspectorPort` opens workerd's DevTools inspector.
 */
export async function serveBare(file, bindings, { inspectorPort } = {}) {
  const dir = dirname(file);
  const port = await freePort();
  const text = (name, value) => `(name = ${JSON.stringify(name)}, text = ${JSON.stringify(value)})`;
  const vars = Object.entries(bindings).map(([name, value]) => text(name, value));
  const config = join(dir, `${basename(file, ".js")}.capnp`);
  await writeFile(join(dir, "empty-kv.js"), "export default { fetch: () => new Response(null, { status: 404 }) };\n");
  await writeFile(
    config,
    `using Workerd = import "/workerd/workerd.capnp";
const config :Workerd.Config = (
  services = [
    (name = "main", worker = .main),
    (name = "kv", worker = .kv),
    # The JWKS is served from 127.0.0.1, which workerd's default network refuses.
    (name = "internet", network = (allow = ["public", "private", "local"])),
  ],
  sockets = [(name = "http", address = "127.0.0.1:${port}", http = (), service = "main")],
);
const main :Workerd.Worker = (
  modules = [(name = "index.js", esModule = embed "${basename(file)}")],
  compatibilityDate = "${COMPATIBILITY_DATE}",
  bindings = [${vars.join(", ")}, (name = "BANS", kvNamespace = "kv")],
);
const kv :Workerd.Worker = (modules = [(name = "kv.js", esModule = embed "empty-kv.js")], compatibilityDate = "${COMPATIBILITY_DATE}");
`,
  );
  const inspector = inspectorPort ? [`--inspector-addr=127.0.0.1:${inspectorPort}`] : [];
  // Its log lines go to /dev/null, as the reference's do.
  const child = spawn(WORKERD, ["serve", config, ...inspector], { stdio: ["ignore", "ignore", "pipe"] });
  let errors = "";
  child.stderr.on("data", (chunk) => (errors += chunk));
  const close = () =>
    new Promise((resolve) => (child.exitCode !== null ? resolve() : (child.once("exit", resolve), child.kill())));
  try {
    for (let tries = 0; !(await accepts(port)); tries++) {
      if (tries > 500 || child.exitCode !== null) throw new Error(`bare workerd did not start: ${errors}`);
      await sleep(10);
    }
  } catch (error) {
    await close();
    throw error;
  }
  return {
    url: `http://127.0.0.1:${port}`,
    pid: child.pid,
    startupMs: cpuNs(child.pid) / 1e6,
    cpu: () => cpuNs(child.pid),
    close,
  };
}

/**
 * One fresh workerd serving `file`: its startup (CPU until the socket accepts: start, compile, the
 * global scope) and its first request (the process's CPU around it: JWKS fetch, key imports, code
 * compiled on first use), in ms.
 */
export async function coldStart(file, idp, who) {
  const served = await serveBare(file, workerBindings(idp, `cold-${who}`));
  try {
    await sleep(50); // anything workerd still does after binding its socket counts as startup
    const startupMs = served.cpu() / 1e6;
    await checkIssued(`${served.url}/auth`, { authorization: `Bearer ${idp.token}` }, `${who}, cold`);
    return { startupMs, firstMs: served.cpu() / 1e6 - startupMs };
  } finally {
    await served.close();
  }
}

/**
 * The smoke check every target passes before it is loaded: a 200 `application/jwt` whose token
 * verifies with the Ably key's secret and is issued for our user.
 */
export async function checkIssued(url, headers, who) {
  const response = await fetch(url, { headers });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`${who}: ${response.status} ${body}`);
  const type = response.headers.get("content-type") ?? "";
  if (type.split(";")[0] !== "application/jwt") throw new Error(`${who}: answered ${type}`);
  const { payload } = await jwtVerify(body, new TextEncoder().encode(ABLY_API_KEY.split(":")[1]), {
    algorithms: ["HS256"],
  });
  if (payload["x-ably-clientId"] !== CLIENT_ID) throw new Error(`${who}: issued for ${payload["x-ably-clientId"]}`);
}
