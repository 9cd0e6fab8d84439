/**
 * `npm run bench`: the worker against the endpoint users would otherwise write, and against its
 * own budget. Prints one table on stdout (progress goes to stderr); about 1½ minutes on 2 cores.
 * Everything listens on 127.0.0.1 and is stopped at the end. It never fails on a timing; it exits
 * non-zero only when something is wrong (an answer not 2xx, I/O at global scope).
 *
 * What runs where:
 *  - The worker is built exactly as `wrangler deploy` builds it (`wrangler deploy --dry-run
 *    --outdir`) and that bundle is loaded twice, in wrangler's own workerd: (1) bare, from a
 *    workerd config written here, its KV binding answered by an empty stand-in service (nobody is
 *    banned), which is the closest to the edge: nothing else runs in the worker's thread; (2) through
 *    Miniflare as `wrangler dev` runs it (without wrangler dev's proxy), with Miniflare's local KV,
 *    whose entry worker and KV simulator share the worker's thread and CPU.
 *  - The reference (bench/reference/server.mjs) is Node + Express + jsonwebtoken + jwks-rsa.
 *  - All verify the same RS256 token against the same JWKS, served here from 127.0.0.1, look up a
 *    ban (worker: KV; reference: a Map) and sign the same HS256 Ably JWT. autocannon loads them
 *    alike. Rate limit bindings are not bound (the reference has none either).
 *  - CPU per part comes from bench/cpu-worker.mjs in workerd: the workerd process's CPU time
 *    (/proc/<pid>/task/*\/schedstat, ns) around a call that runs the part n times. Process CPU
 *    needs no clock inside the isolate (in production, the isolate's clock stands still during CPU
 *    work); this local workerd's clock does move, and agrees.
 */
import { execFile, spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { readdirSync, readFileSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { promisify } from "node:util";
import autocannon from "autocannon";
import { exportJWK, generateKeyPair, jwtVerify, SignJWT } from "jose";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const WRANGLER = join(ROOT, "node_modules/.bin/wrangler");
// wrangler's own Miniflare, workerd and esbuild (the test pool has its own, which may differ).
const fromWrangler = createRequire(join(ROOT, "node_modules/wrangler/package.json"));
const { build } = fromWrangler("esbuild");
// Miniflare 5 takes its options in a new shape; convertV4MiniflareOptions reads the v4 shape used here.
const { Miniflare, convertV4MiniflareOptions } = await import(pathToFileURL(fromWrangler.resolve("miniflare")).href);
const WORKERD = fromWrangler("workerd").default; // the binary's path
const WORKERD_VERSION = JSON.parse(readFileSync(fromWrangler.resolve("workerd/package.json"), "utf8")).version;
const COMPATIBILITY_DATE = /^compatibility_date\s*=\s*"([^"]+)"/m.exec(readFileSync(join(ROOT, "wrangler.toml"), "utf8"))[1];

// Load: the same for both; 50 connections is a busy location's worth of concurrent renewals for one isolate.
const CONNECTIONS = 50;
const WARMUP_SECONDS = 3;
const LOAD_SECONDS = 20;
const HEALTHZ_SECONDS = 10;
// CPU: each batch runs a part ITERATIONS times (~50-100 ms), so the call around it costs < 1 %.
const ITERATIONS = 300;
const BATCHES = 15;
// Cold: fresh isolates, each measured once per part; the median is reported.
const COLD_ISOLATES = 8;
// JWKS: isolates of one location (one Miniflare, one shared Cache API) and requests per isolate.
const JWKS_ISOLATES = 8;
const BURST = 50;
const KV_READS = 200;
const IMPORT_RUNS = 5;

const CLIENT_ID = "bench-user";
const ABLY_API_KEY = "benchApp.benchKey:bench-secret-not-a-real-key-0123456789";
const AUDIENCE = "ably-edge-auth-bench";
const wranglerEnv = { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", FORCE_COLOR: "0" };

const say = (message) => process.stderr.write(`bench: ${message}\n`);
const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const failures = []; // something is wrong: the bench exits 1
const warnings = []; // worth knowing, but not the worker's fault

// ───── the identity provider: a JWKS on 127.0.0.1 that counts its fetches ─────

async function identityProvider() {
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
    jwksUrl: (scenario = "load") => `${origin}/jwks?scenario=${scenario}`,
    token,
    publicJwk,
    fetchesOf: (scenario) => fetches.get(`/jwks?scenario=${scenario}`) ?? 0,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

// ───── workerd: Miniflare, and the CPU time of its process ─────

/** Bindings every worker here gets: the provider, the Ably key. */
const workerBindings = (idp, scenario) => ({
  JWT_ISSUER: idp.issuer,
  JWT_AUDIENCE: AUDIENCE,
  JWKS_URL: idp.jwksUrl(scenario),
  ABLY_API_KEY,
});

async function startMiniflare(workers) {
  const before = new Set(workerdPids());
  const mf = new Miniflare(convertV4MiniflareOptions({
    host: "127.0.0.1",
    port: 0,
    cf: false, // no download of Cloudflare's request metadata
    // The worker logs one line per request: drained unread, as the reference's are.
    handleRuntimeStdio: (stdout, stderr) => (stdout.resume(), stderr.resume()),
    // modulesRoot: the bundle's own directory, which is outside this one (workerd refuses "..").
    workers: workers.map((worker) => ({ modules: true, modulesRoot: dirname(worker.scriptPath), compatibilityDate: COMPATIBILITY_DATE, kvNamespaces: ["BANS"], ...worker })),
  }));
  const url = await mf.ready;
  const pid = workerdPids().find((p) => !before.has(p));
  return { mf, url, cpu: () => cpuNs(pid) };
}

/** workerd processes started by this process (Miniflare spawns workerd directly). */
function workerdPids() {
  return readdirSync("/proc").filter((p) => /^\d+$/.test(p)).filter((p) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, "utf8");
      const [, comm, rest] = /^\d+ \((.*)\) (.*)$/s.exec(stat);
      return comm === "workerd" && Number(rest.split(" ")[1]) === process.pid;
    } catch {
      return false;
    }
  }).map(Number);
}

/** CPU time of a process, in ns: the sum over its threads (schedstat is per thread, in ns). */
function cpuNs(pid) {
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

// ───── 1. the bundle ─────

async function buildBundle(outdir, ...flags) {
  const { stdout } = await promisify(execFile)(WRANGLER, ["deploy", "--dry-run", "--outdir", outdir, ...flags], { cwd: ROOT, env: wranglerEnv });
  const [, total, gzip] = /Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/.exec(stdout);
  return { file: join(outdir, "index.js"), totalKiB: Number(total), gzipKiB: Number(gzip) };
}

// ───── 2. the global scope: import time, and no I/O or key import ─────

/**
 * Imports the bundle in a fresh Node process with fetch, importKey and the Cache API watched. An
 * empty module is imported first, so the time is the bundle's own (compile and evaluate), not the
 * module loader's start-up.
 */
async function globalScope(file, emptyFile) {
  const script = `
    await import(${JSON.stringify(pathToFileURL(emptyFile).href)});
    const calls = { fetch: 0, importKey: 0, caches: 0 };
    globalThis.fetch = async () => { calls.fetch++; throw new Error("no I/O at global scope"); };
    const importKey = crypto.subtle.importKey.bind(crypto.subtle);
    crypto.subtle.importKey = (...args) => { calls.importKey++; return importKey(...args); };
    const cache = { match: async () => { calls.caches++; }, put: async () => { calls.caches++; } };
    globalThis.caches = { default: cache, open: async () => cache };
    const started = performance.now();
    const module = await import(${JSON.stringify(pathToFileURL(file).href)});
    const ms = performance.now() - started;
    if (typeof module.default?.fetch !== "function") throw new Error("no default export with fetch");
    console.log(JSON.stringify({ ms, ...calls }));`;
  const runs = [];
  for (let i = 0; i < IMPORT_RUNS; i++) {
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script]);
    runs.push(JSON.parse(stdout));
  }
  return {
    ms: median(runs.map((r) => r.ms)),
    io: Math.max(...runs.map((r) => r.fetch + r.caches)),
    importKey: Math.max(...runs.map((r) => r.importKey)),
  };
}

// ───── 3. load: autocannon against the worker and the reference ─────

async function load(who, url, headers, cpu, seconds = LOAD_SECONDS) {
  await autocannon({ url, connections: CONNECTIONS, duration: WARMUP_SECONDS, headers });
  const cpuBefore = cpu();
  const run = autocannon({ url, connections: CONNECTIONS, duration: seconds, headers });
  const errors = new Map(); // socket errors by code: the runtime's, not answers of the worker
  run.on("reqError", (error) => errors.set(error.code ?? error.message, (errors.get(error.code ?? error.message) ?? 0) + 1));
  const result = await run;
  const cpuMs = (cpu() - cpuBefore) / 1e6;
  if (result.non2xx > 0) failures.push(`${who}: ${result.non2xx} answers not 2xx`);
  if (errors.size + result.timeouts > 0) {
    warnings.push(`${who}: ${result.timeouts} timeouts, socket errors ${JSON.stringify(Object.fromEntries(errors))}`);
  }
  return {
    rps: result.requests.total / seconds,
    p50: result.latency.p50,
    p99: result.latency.p99,
    cpuPerRequest: cpuMs / result.requests.total,
  };
}

/** Checks one answer is an Ably JWT for our user, signed with the key's secret. */
async function checkIssued(url, headers, who) {
  const response = await fetch(url, { headers });
  const body = await response.text();
  if (response.status !== 200) throw new Error(`${who}: ${response.status} ${body}`);
  const { payload } = await jwtVerify(body, new TextEncoder().encode(ABLY_API_KEY.split(":")[1]), { algorithms: ["HS256"] });
  if (payload["x-ably-clientId"] !== CLIENT_ID) throw new Error(`${who}: issued for ${payload["x-ably-clientId"]}`);
}

async function loadReference(idp, headers) {
  const child = spawn(process.execPath, [join(ROOT, "bench/reference/server.mjs")], {
    env: { ...process.env, JWKS_URL: idp.jwksUrl("reference"), JWT_ISSUER: idp.issuer, JWT_AUDIENCE: AUDIENCE, ABLY_API_KEY },
    stdio: ["ignore", "ignore", "pipe"], // its request log goes to /dev/null
  });
  const port = await new Promise((resolve, reject) => {
    child.stderr.on("data", (chunk) => {
      const match = /listening (\d+)/.exec(String(chunk));
      if (match) resolve(match[1]);
    });
    child.once("exit", (code) => reject(new Error(`reference exited with ${code}`)));
  });
  try {
    const url = `http://127.0.0.1:${port}/auth`;
    await checkIssued(url, headers, "reference");
    return await load("reference", url, headers, () => cpuNs(child.pid));
  } finally {
    child.kill();
  }
}

async function loadWorker(idp, bundle, headers) {
  const worker = await startMiniflare([{ scriptPath: bundle.file, bindings: workerBindings(idp, "load") }]);
  try {
    const url = new URL("/auth", worker.url).href;
    await checkIssued(url, headers, "worker");
    return await load("worker through Miniflare", url, headers, worker.cpu);
  } finally {
    await worker.mf.dispose();
  }
}

/**
 * The bundle in workerd itself, from a config written beside it: no Miniflare entry worker, and
 * KV answered by a one-line service (404: not banned), so only the worker runs in its thread.
 */
async function loadBareWorkerd(idp, bundle, headers) {
  const dir = dirname(bundle.file);
  const port = await freePort();
  const text = (name, value) => `(name = ${JSON.stringify(name)}, text = ${JSON.stringify(value)})`;
  const vars = Object.entries(workerBindings(idp, "bare")).map(([name, value]) => text(name, value));
  await writeFile(join(dir, "empty-kv.js"), "export default { fetch: () => new Response(null, { status: 404 }) };\n");
  await writeFile(join(dir, "workerd.capnp"), `using Workerd = import "/workerd/workerd.capnp";
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
  modules = [(name = "index.js", esModule = embed "index.js")],
  compatibilityDate = "${COMPATIBILITY_DATE}",
  bindings = [${vars.join(", ")}, (name = "BANS", kvNamespace = "kv")],
);
const kv :Workerd.Worker = (modules = [(name = "kv.js", esModule = embed "empty-kv.js")], compatibilityDate = "${COMPATIBILITY_DATE}");
`);
  // Its log lines go to /dev/null, as the reference's do.
  const child = spawn(WORKERD, ["serve", join(dir, "workerd.capnp")], { stdio: ["ignore", "ignore", "pipe"] });
  let errors = "";
  child.stderr.on("data", (chunk) => (errors += chunk));
  const url = `http://127.0.0.1:${port}`;
  try {
    for (let tries = 0; !(await fetch(`${url}/healthz`).then((r) => r.ok, () => false)); tries++) {
      if (tries > 100 || child.exitCode !== null) throw new Error(`bare workerd did not start: ${errors}`);
      await sleep(100);
    }
    await checkIssued(`${url}/auth`, headers, "worker, bare workerd");
    const auth = await load("worker, bare workerd", `${url}/auth`, headers, () => cpuNs(child.pid));
    // The runtime's own latency tail at this concurrency: a route that does almost nothing.
    const healthz = await load("worker /healthz, bare workerd", `${url}/healthz`, {}, () => cpuNs(child.pid), HEALTHZ_SECONDS);
    return { ...auth, healthz };
  } finally {
    child.kill();
  }
}

/** A port nothing listens on right now (the OS picks it; workerd binds it a moment later). */
async function freePort() {
  const server = createServer().listen(0, "127.0.0.1");
  await new Promise((resolve) => server.once("listening", resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// ───── 4. CPU per part, warm and cold; 5. KV reads ─────

/** bench/cpu-worker.mjs bundled the way wrangler bundles the worker (esbuild, the same conditions). */
async function buildCpuWorker(dir) {
  const outfile = join(dir, "cpu-worker", "index.js");
  await build({
    entryPoints: [join(ROOT, "bench/cpu-worker.mjs")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "browser",
    conditions: ["workerd", "worker", "browser"], // what wrangler resolves with
    target: "es2022",
    logLevel: "error",
  });
  return outfile;
}

const cpuWorkerBindings = (idp) => ({
  ...workerBindings(idp, "cpu"),
  BENCH_TOKEN: idp.token,
  BENCH_PUBLIC_JWK: JSON.stringify(idp.publicJwk),
  BENCH_CLIENT_ID: CLIENT_ID,
});

async function cpuAndKv(idp, outfile) {
  const bindings = cpuWorkerBindings(idp);
  const names = ["warm", ...Array.from({ length: 2 * COLD_ISOLATES }, (_, i) => `cold${i}`)];
  // No Cache API here: Miniflare simulates it with JavaScript in the same workerd process, which
  // would count as the worker's CPU. (Each cold isolate fetches the JWKS itself instead.)
  const workerd = await startMiniflare(names.map((name) => ({ name, scriptPath: outfile, bindings, routes: [`${name}.bench/*`], cache: false })));
  /** One call into an isolate: the workerd process's CPU and the isolate's own clock, per iteration. */
  const call = async (isolate, path, n) => {
    const before = workerd.cpu();
    const response = await workerd.mf.dispatchFetch(`http://${isolate}.bench${path}&n=${n}`);
    const cpu = (workerd.cpu() - before) / 1e6;
    if (response.status !== 200) throw new Error(`${isolate}${path}: ${response.status} ${await response.text()}`);
    const { ms, importKey, fetch } = await response.json();
    return { cpu: cpu / n, clock: ms / n, made: (importKey + fetch) / n };
  };
  try {
    const warm = {};
    for (const part of ["noop", "floor", "verify", "ban", "sign", "request"]) {
      for (let i = 0; i < 2; i++) await call("warm", `/run?part=${part}`, ITERATIONS); // warm-up
      const batches = [];
      for (let i = 0; i < BATCHES; i++) batches.push(await call("warm", `/run?part=${part}`, ITERATIONS));
      warm[part] = {
        cpu: median(batches.map((b) => b.cpu)),
        clock: median(batches.map((b) => b.clock)),
        made: batches.reduce((sum, b) => sum + b.made, 0) / batches.length,
      };
    }
    // Half the isolates take the parts, after the bench's own set-up; half a whole request, with
    // nothing before it but an empty call. A noop call after them is the cost of a call, taken off.
    const cold = { verify: [], ban: [], sign: [], request: [] };
    for (let i = 0; i < COLD_ISOLATES; i++) {
      const [parts, whole] = [`cold${i}`, `cold${COLD_ISOLATES + i}`];
      await call(parts, "/run?part=setup", 1);
      const measured = {};
      for (const part of ["verify", "ban", "sign"]) measured[part] = (await call(parts, `/run?part=${part}`, 1)).cpu;
      const callCost = (await call(parts, "/run?part=noop", 1)).cpu;
      for (const part of ["verify", "ban", "sign"]) cold[part].push(measured[part] - callCost);
      await call(whole, "/run?part=noop", 1);
      const request = (await call(whole, "/run?part=request", 1)).cpu;
      cold.request.push(request - (await call(whole, "/run?part=noop", 1)).cpu);
    }
    const kv = {};
    for (const ttl of ["60", "none", "60", "none"]) {
      const { cpu, clock } = await call("warm", `/kv?ttl=${ttl}`, KV_READS);
      kv[ttl] = { cpu: Math.min(cpu, kv[ttl]?.cpu ?? Infinity), clock: Math.min(clock, kv[ttl]?.clock ?? Infinity) };
    }
    const noop = warm.noop.cpu;
    const less = (part) => warm[part].cpu - noop;
    return {
      warm: {
        floor: less("floor"),
        verify: less("verify"),
        ban: less("ban"),
        sign: less("sign"),
        request: less("request"),
        clockAgreement: warm.request.clock / warm.request.cpu,
        importsAndFetches: warm.request.made,
      },
      cold: Object.fromEntries(Object.entries(cold).map(([part, values]) => [part, median(values)])),
      kv,
    };
  } finally {
    await workerd.mf.dispose();
  }
}

// ───── 6. JWKS fetches: isolates of one location sharing its Cache API ─────

async function jwksFetches(idp, bundle, headers) {
  const isolates = [
    { name: "a0", scenario: "one-isolate" },
    ...Array.from({ length: JWKS_ISOLATES }, (_, i) => ({ name: `b${i}`, scenario: "cold-location" })),
    ...Array.from({ length: JWKS_ISOLATES }, (_, i) => ({ name: `c${i}`, scenario: "warm-location" })),
  ];
  const workerd = await startMiniflare(isolates.map(({ name, scenario }) => ({
    name,
    scriptPath: bundle.file,
    bindings: workerBindings(idp, scenario),
    routes: [`${name}.bench/*`],
  })));
  const burst = async (names) => {
    const responses = await Promise.all(names.flatMap((name) =>
      Array.from({ length: BURST }, () => workerd.mf.dispatchFetch(`http://${name}.bench/auth`, { headers }))));
    const bad = responses.filter((r) => r.status !== 200).map((r) => r.status);
    // Miniflare may already have consumed a body (e.g. to log an error): that is not our failure.
    await Promise.all(responses.map((r) => r.arrayBuffer().catch(() => undefined)));
    if (bad.length > 0) failures.push(`JWKS scenario: ${bad.length} requests not answered 200 (${[...new Set(bad)].join(", ")})`);
  };
  const names = (prefix) => isolates.filter((i) => i.name.startsWith(prefix)).map((i) => i.name);
  try {
    await burst(["a0"]);
    await burst(names("b"));
    await burst(["c0"]); // one isolate fills the location's cache...
    await sleep(100);
    await burst(names("c").slice(1)); // ...then the location's other isolates start cold
    return {
      oneIsolate: idp.fetchesOf("one-isolate"),
      coldLocation: idp.fetchesOf("cold-location"),
      warmLocation: idp.fetchesOf("warm-location") - 1,
    };
  } finally {
    await workerd.mf.dispose();
  }
}

// ───── the table ─────

const ms = (value, digits = 3) => `${value.toFixed(digits)} ms`;
const times = (value) => `${value.toFixed(2)}×`;
const verdict = (ok) => (ok ? "met" : "MISSED");

function printTable(rows, header) {
  const columns = ["", "measure", "worker", "compared with", "ratio", "target", "status", "measured in"];
  const cells = [columns, ...rows.map((row) => columns.map((_, i) => String(row[i] ?? "")))];
  const widths = columns.map((_, i) => Math.max(...cells.map((cell) => cell[i].length)));
  const line = (cell) => cell.map((text, i) => text.padEnd(widths[i])).join("  ").trimEnd();
  console.log(header);
  console.log(line(cells[0]));
  console.log(widths.map((w) => "─".repeat(w)).join("  "));
  let section = "";
  for (const cell of cells.slice(1)) {
    if (cell[0] !== section && section !== "") console.log("");
    section = cell[0];
    console.log(line(cell));
  }
}

async function main() {
  const started = Date.now();
  const load1 = loadavg()[0];
  const dir = await mkdtemp(join(tmpdir(), "ably-edge-auth-bench-"));
  const idp = await identityProvider();
  const headers = { authorization: `Bearer ${idp.token}` };
  try {
    say("building the bundle (wrangler deploy --dry-run), and once with --minify");
    const bundle = await buildBundle(join(dir, "dist"));
    const minified = await buildBundle(join(dir, "dist-min"), "--minify");
    say("global scope: importing the bundle in fresh Node processes");
    const empty = join(dir, "empty.mjs");
    await writeFile(empty, "export {};\n");
    const scope = await globalScope(bundle.file, empty);
    const minifiedScope = await globalScope(minified.file, empty);
    say(`load: reference, ${WARMUP_SECONDS} s warm-up + ${LOAD_SECONDS} s at ${CONNECTIONS} connections`);
    const reference = await loadReference(idp, headers);
    say("load: worker in bare workerd, the same way");
    const worker = await loadBareWorkerd(idp, bundle, headers);
    say("load: worker through Miniflare with its local KV, the same way");
    const miniflare = await loadWorker(idp, bundle, headers);
    say("CPU per part in workerd, warm and cold; KV reads");
    const cpu = await cpuAndKv(idp, await buildCpuWorker(dir));
    say("JWKS fetches from isolates sharing one location cache");
    const jwks = await jwksFetches(idp, bundle, headers);
    if (scope.io + scope.importKey > 0) failures.push("I/O or a key import at global scope");

    const { warm, cold, kv } = cpu;
    const rest = warm.request - warm.verify - warm.ban - warm.sign;
    const coldRest = cold.request - cold.verify - cold.ban - cold.sign;
    const rpsRatio = worker.rps / reference.rps;
    const workerd = `workerd ${WORKERD_VERSION}, process CPU`;
    const rows = [
      ["load", "requests/s", Math.round(worker.rps).toLocaleString("en"), `${Math.round(reference.rps).toLocaleString("en")} reference`, times(rpsRatio), "≥ 2× reference", verdict(rpsRatio >= 2), "bare workerd; autocannon, HTTP on 127.0.0.1"],
      ["load", "latency p50", ms(worker.p50, 0), `${ms(reference.p50, 0)} reference`, times(worker.p50 / reference.p50), "", "", "bare workerd"],
      ["load", "latency p99", ms(worker.p99, 0), `${ms(reference.p99, 0)} reference`, times(worker.p99 / reference.p99), "lower than reference", verdict(worker.p99 < reference.p99), "bare workerd"],
      ["load", "/healthz p50, p99: the runtime's own tail", `${ms(worker.healthz.p50, 0)}, ${ms(worker.healthz.p99, 0)}`, `${Math.round(worker.healthz.rps).toLocaleString("en")} requests/s`, "", "", "", "bare workerd, a route that does almost nothing"],
      ["load", "process CPU per request", ms(worker.cpuPerRequest), `${ms(reference.cpuPerRequest)} reference`, times(worker.cpuPerRequest / reference.cpuPerRequest), "", "", "workerd / node process, HTTP included"],
      ["load", "requests/s, as wrangler dev runs it", Math.round(miniflare.rps).toLocaleString("en"), `${Math.round(reference.rps).toLocaleString("en")} reference`, times(miniflare.rps / reference.rps), "", "", "Miniflare: entry worker + KV simulator in the thread"],
      ["load", "latency p99, as wrangler dev runs it", ms(miniflare.p99, 0), `${ms(reference.p99, 0)} reference`, times(miniflare.p99 / reference.p99)],
      ["load", "process CPU per request, ditto", ms(miniflare.cpuPerRequest), `${ms(reference.cpuPerRequest)} reference`, times(miniflare.cpuPerRequest / reference.cpuPerRequest)],
      ["cpu warm", "verify (verifyIdentity), alone", ms(warm.verify), "", "", "", "", workerd],
      ["cpu warm", "ban lookup (banFor, KV stand-in), alone", ms(warm.ban), "", "", "", "", workerd],
      ["cpu warm", "sign (grantFor + signAblyToken), alone", ms(warm.sign), "", "", "", "", workerd],
      ["cpu warm", "rest: request − the three", ms(rest), "", "", "", "", `${workerd}; Hono, middleware, log, and see note`],
      ["cpu warm", "whole request (app.fetch of GET /auth)", ms(warm.request), `${ms(warm.floor)} floor`, times(warm.request / warm.floor), "< 0.5 ms and ≤ 3× floor", verdict(warm.request < 0.5 && warm.request <= 3 * warm.floor), `${workerd}; floor: 1 RS256 verify + 1 HS256 sign`],
      ["cpu warm", "key imports + fetches per request", String(warm.importsAndFetches), "", "", "0", verdict(warm.importsAndFetches === 0), "importKey and fetch counted in the isolate"],
      ["cpu cold", "verify, first in a fresh isolate", ms(cold.verify), `${ms(warm.verify)} warm`, times(cold.verify / warm.verify), "", "", `${workerd}; JWKS fetch, parse, key import`],
      ["cpu cold", "ban lookup, first", ms(cold.ban), `${ms(warm.ban)} warm`, times(cold.ban / warm.ban), "", "", workerd],
      ["cpu cold", "sign, first (HMAC key import)", ms(cold.sign), `${ms(warm.sign)} warm`, times(cold.sign / warm.sign), "", "", workerd],
      ["cpu cold", "rest, first", ms(coldRest), `${ms(rest)} warm`, times(coldRest / rest), "", "", `${workerd}, request − parts`],
      ["cpu cold", "whole first request", ms(cold.request), `${ms(warm.request)} warm`, times(cold.request / warm.request), "", "", `${workerd}, median of ${COLD_ISOLATES} isolates`],
      ["size", "bundle, gzip", `${bundle.gzipKiB.toFixed(2)} KiB`, `${bundle.totalKiB.toFixed(2)} KiB raw`, "", "< 50 KiB", verdict(bundle.gzipKiB < 50), "wrangler deploy --dry-run"],
      ["size", "bundle with --minify, gzip", `${minified.gzipKiB.toFixed(2)} KiB`, `${minified.totalKiB.toFixed(2)} KiB raw`, "", "", "", "wrangler deploy --dry-run --minify"],
      ["startup", "global scope: compile + evaluate", ms(scope.ms, 1), "", "", "", "", `Node ${process.version} (V8), fresh process, median of ${IMPORT_RUNS}`],
      ["startup", "global scope, --minify bundle", ms(minifiedScope.ms, 1), "", "", "", "", "the same way"],
      ["startup", "global scope: I/O, key imports", `${scope.io}, ${scope.importKey}`, "", "", "none", verdict(scope.io + scope.importKey === 0), "fetch, Cache API, importKey watched"],
      ["kv", "ban get, cacheTtl 60: latency", ms(kv["60"].clock), `${ms(kv.none.clock)} no cacheTtl`, times(kv["60"].clock / kv.none.clock), "", "", `local Miniflare KV, isolate clock, best of 2 × ${KV_READS}`],
      ["kv", "ban get, cacheTtl 60: CPU", ms(kv["60"].cpu), `${ms(kv.none.cpu)} no cacheTtl`, times(kv["60"].cpu / kv.none.cpu), "", "", `${workerd}, KV simulator included`],
      ["jwks", `1 cold isolate, ${BURST} concurrent`, `${jwks.oneIsolate} fetch(es)`, `${BURST} requests`, "", "1", verdict(jwks.oneIsolate === 1), "JWKS server on 127.0.0.1"],
      ["jwks", `${JWKS_ISOLATES} cold isolates × ${BURST}, at once`, `${jwks.coldLocation} fetch(es)`, `${JWKS_ISOLATES * BURST} requests`, "", `≤ ${JWKS_ISOLATES} (1 per isolate)`, verdict(jwks.coldLocation <= JWKS_ISOLATES), "one Miniflare = one location's Cache API"],
      ["jwks", `${JWKS_ISOLATES - 1} cold isolates × ${BURST}, cache filled`, `${jwks.warmLocation} fetch(es)`, `${(JWKS_ISOLATES - 1) * BURST} requests`, "", "0", verdict(jwks.warmLocation === 0), "after one isolate fetched"],
    ];
    const header = `ably-edge-auth bench · ${cpus().length} cores, load average ${load1.toFixed(1)} at start · Node ${process.version} · workerd ${WORKERD_VERSION} (wrangler's Miniflare) · autocannon ${CONNECTIONS} connections, ${WARMUP_SECONDS} s warm-up + ${LOAD_SECONDS} s · CPU: median of ${BATCHES} batches × ${ITERATIONS}`;
    printTable(rows, header);
    console.log(
      "Note: the three parts alone run in tight loops, with hot caches; inside a whole request the same code runs\n" +
        "slower, so `rest` also holds that difference. CPU rows are medians of batch means; the isolate's own clock\n" +
        `gives ${warm.clockAgreement.toFixed(2)}× the process CPU for a warm request. Took ${Math.round((Date.now() - started) / 1000)} s.`,
    );
    if (load1 > cpus().length / 2) {
      console.log(`NOTE: the machine was busy (load average ${load1.toFixed(1)} on ${cpus().length} cores): timings are unreliable; CPU figures less so.`);
    }
    for (const warning of warnings) console.log(`WARNING: ${warning}`);
    for (const failure of failures) console.log(`FAILED: ${failure}`);
    process.exitCode = failures.length > 0 ? 1 : 0;
  } finally {
    await idp.close();
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
