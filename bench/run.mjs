/**
 * `npm run bench`: the worker against the floor (the same job as a bare `fetch` handler,
 * bench/bare-worker.mjs), against the endpoint users would otherwise write (Express,
 * bench/reference/server.mjs), and against its own budget. Prints the tables on stdout
 * (progress goes to stderr) and draws docs/bench.svg; about 3 minutes on 2 cores. Everything listens
 * on 127.0.0.1 and is stopped at the end. It never fails on a timing; it exits non-zero only when
 * something is wrong (an answer not 2xx, I/O at global scope). Run it alone: flock /tmp/ably-e2e.lock.
 *
 * What runs where:
 *  - The worker and the bare worker are built exactly as `wrangler deploy` builds them (`wrangler
 *    deploy --dry-run --outdir`, wrangler.toml's minify) and served alike by wrangler's own workerd,
 *    bare, from a config written here, the KV binding answered by an empty stand-in service (nobody
 *    is banned): nothing else runs in the worker's thread, the closest to the edge. The worker is
 *    also loaded once through Miniflare as `wrangler dev` runs it (its entry worker and KV
 *    simulator share the thread).
 *  - The reference is Node + Express + jsonwebtoken + jwks-rsa, keys imported once.
 *  - All verify the same RS256 token against the same JWKS, served here from 127.0.0.1, look up a
 *    ban (workers: KV; reference: a Map) and sign the same HS256 Ably JWT. autocannon loads them
 *    alike, ROUNDS times in turn; each figure is reported per round and as the median. Rate limit
 *    bindings are not bound (the others have none either).
 *  - CPU is the serving process's (/proc/<pid>/task/*\/schedstat, ns, all threads: HTTP included)
 *    over the load, divided by the requests answered. Cold: a fresh workerd per sample; its CPU
 *    until its socket accepts is its startup (the global scope included), its CPU around the first
 *    request is that request (JWKS fetch and key imports included). Both targets the same way.
 *  - CPU per part comes from bench/cpu-worker.mjs in workerd: the workerd process's CPU time
 *    around a call that runs the part n times.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { readdirSync, readFileSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { promisify } from "node:util";
import { execFile, spawn } from "node:child_process";
import autocannon from "autocannon";
import {
  ABLY_API_KEY,
  buildBundle,
  checkIssued,
  CLIENT_ID,
  coldStart,
  COMPATIBILITY_DATE,
  cpuNs,
  fromWrangler,
  identityProvider,
  median,
  ROOT,
  say,
  serveBare,
  sleep,
  workerBindings,
  WORKERD_VERSION,
} from "./harness.mjs";
import { drawChart } from "./chart.mjs";

// wrangler's own Miniflare and esbuild (the test pool has its own, which may differ).
const { build } = fromWrangler("esbuild");
// Miniflare 5 takes its options in a new shape; convertV4MiniflareOptions reads the v4 shape used here.
const { Miniflare, convertV4MiniflareOptions } = await import(pathToFileURL(fromWrangler.resolve("miniflare")).href);

// Load: the same for all; 32 connections is a busy location's worth of concurrent renewals for one isolate.
const CONNECTIONS = 32;
const WARMUP_SECONDS = 3;
const LOAD_SECONDS = 10;
const ROUNDS = 3;
const HEALTHZ_SECONDS = 5;
// Cold: a fresh workerd per sample and target; the median is reported.
const COLD_RUNS = 7;
// CPU: each batch runs a part ITERATIONS times (~50-100 ms), so the call around it costs < 1 %.
const ITERATIONS = 300;
const BATCHES = 15;
// Cold parts: fresh isolates, each measured once per part; the median is reported.
const COLD_ISOLATES = 8;
// JWKS: isolates of one location (one Miniflare, one shared Cache API) and requests per isolate.
const JWKS_ISOLATES = 8;
const BURST = 50;
const KV_READS = 200;
const IMPORT_RUNS = 5;
// The goals, as ratios to the bare worker (and a bundle size); docs/performance.md gives each one's reason.
const GOAL_CPU_RATIO = 1.3;
const GOAL_COLD_RATIO = 1.3;
const GOAL_P99_RATIO = 1.5;
const GOAL_GZIP_KIB = 36;

const failures = []; // something is wrong: the bench exits 1
const warnings = []; // worth knowing, but not the worker's fault

// ───── workerd through Miniflare ─────

async function startMiniflare(workers) {
  const before = new Set(workerdPids());
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      port: 0,
      cf: false, // no download of Cloudflare's request metadata
      // The worker logs one line per request: drained unread, as the reference's are.
      handleRuntimeStdio: (stdout, stderr) => (stdout.resume(), stderr.resume()),
      // modulesRoot: the bundle's own directory, which is outside this one (workerd refuses "..").
      workers: workers.map((worker) => ({
        modules: true,
        modulesRoot: dirname(worker.scriptPath),
        compatibilityDate: COMPATIBILITY_DATE,
        kvNamespaces: ["BANS"],
        ...worker,
      })),
    }),
  );
  const url = await mf.ready;
  const pid = workerdPids().find((p) => !before.has(p));
  return { mf, url, cpu: () => cpuNs(pid) };
}

/** workerd processes started by this process (Miniflare spawns workerd directly). */
function workerdPids() {
  return readdirSync("/proc")
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, "utf8");
        const [, comm, rest] = /^\d+ \((.*)\) (.*)$/s.exec(stat);
        return comm === "workerd" && Number(rest.split(" ")[1]) === process.pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

// ───── 2. the global scope: import time, and no I/O or key import ─────

/**
 * Imports the bundle in a fresh Node process with fetch, importKey and the Cache API watched. An
 * empty module is imported first, so the time is the bundle's own (compile and evaluate, the
 * configuration's parse included), not the module loader's start-up.
 */
async function globalScope(file, emptyFile, bindings) {
  // The bundle imports cloudflare:workers (the Durable Object's base class, the isolate's env), which
  // Node lacks: a stub stands in, its env the bench's bindings and a KV stand-in, as workerd has them.
  const stubSource = `export class DurableObject { constructor(ctx, env) { this.ctx = ctx; this.env = env; } }
    export const env = { ...${JSON.stringify(bindings)}, BANS: { get: async () => null } };`;
  const script = `
    const { registerHooks } = await import("node:module");
    const stub = ${JSON.stringify(`data:text/javascript,${encodeURIComponent(stubSource)}`)};
    registerHooks({ resolve: (specifier, context, next) => specifier === "cloudflare:workers" ? { url: stub, shortCircuit: true } : next(specifier, context) });
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

// ───── 1. the bundles, and what each part costs ─────

/**
 * The bundle's bytes by part (hono, jose, src, ...) from esbuild's metafile. gzip compresses the
 * parts unevenly and together; each part's gzip share is estimated as its share of the raw bytes.
 */
async function bundleParts(metafile, bundle) {
  const { outputs } = JSON.parse(await readFile(metafile, "utf8"));
  const [output] = Object.values(outputs).filter((o) => o.entryPoint);
  const parts = new Map();
  for (const [input, { bytesInOutput }] of Object.entries(output.inputs)) {
    const part =
      /node_modules\/(@[^/]+\/[^/]+|[^/]+)\//.exec(input)?.[1] ?? (input.startsWith("src/") ? "src" : "other");
    parts.set(part, (parts.get(part) ?? 0) + bytesInOutput);
  }
  const total = [...parts.values()].reduce((a, b) => a + b, 0);
  return [...parts]
    .sort((a, b) => b[1] - a[1])
    .map(([part, bytes]) => ({
      part,
      rawKiB: bytes / 1024,
      gzipKiB: (bundle.gzipKiB * bytes) / total,
    }));
}

// ───── 3. load: autocannon against the worker, the bare worker and the reference ─────

async function load(who, url, headers, cpu, seconds = LOAD_SECONDS) {
  await autocannon({ url, connections: CONNECTIONS, duration: WARMUP_SECONDS, headers });
  const cpuBefore = cpu();
  const run = autocannon({ url, connections: CONNECTIONS, duration: seconds, headers });
  const errors = new Map(); // socket errors by code: the runtime's, not answers of the worker
  run.on("reqError", (error) =>
    errors.set(error.code ?? error.message, (errors.get(error.code ?? error.message) ?? 0) + 1),
  );
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

async function loadReference(idp, headers) {
  const child = spawn(process.execPath, [join(ROOT, "bench/reference/server.mjs")], {
    env: {
      ...process.env,
      JWKS_URL: idp.jwksUrl("reference"),
      JWT_ISSUER: idp.issuer,
      JWT_AUDIENCE: idp.audience,
      ABLY_API_KEY,
    },
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

async function loadMiniflare(idp, bundle, headers) {
  const worker = await startMiniflare([{ scriptPath: bundle.file, bindings: workerBindings(idp, "load") }]);
  try {
    const url = new URL("/auth", worker.url).href;
    await checkIssued(url, headers, "worker");
    return await load("worker through Miniflare", url, headers, worker.cpu);
  } finally {
    await worker.mf.dispose();
  }
}

/** A bundle in bare workerd under load; with `healthz`, also the runtime's own tail on a trivial route. */
async function loadBare(who, idp, bundle, headers, { healthz = false } = {}) {
  const served = await serveBare(bundle.file, workerBindings(idp, "bare"));
  try {
    await checkIssued(`${served.url}/auth`, headers, who);
    const auth = await load(who, `${served.url}/auth`, headers, served.cpu);
    if (!healthz) return auth;
    return {
      ...auth,
      healthz: await load(`${who} /healthz`, `${served.url}/healthz`, {}, served.cpu, HEALTHZ_SECONDS),
    };
  } finally {
    await served.close();
  }
}

/** coldStart's startup and first request, median of COLD_RUNS; the same for every target. */
async function coldStarts(who, idp, bundle) {
  const runs = [];
  for (let i = 0; i < COLD_RUNS; i++) runs.push(await coldStart(bundle.file, idp, who));
  return { startupMs: median(runs.map((r) => r.startupMs)), firstMs: median(runs.map((r) => r.firstMs)), runs };
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
    external: ["cloudflare:*"], // the runtime's own modules, as wrangler leaves them
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
  const workerd = await startMiniflare(
    names.map((name) => ({ name, scriptPath: outfile, bindings, routes: [`${name}.bench/*`], cache: false })),
  );
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
    for (const part of ["noop", "floor", "verify", "ban", "sign", "request", "log", "plain", "secured"]) {
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
        log: less("log"),
        securityHeaders: warm.secured.cpu - warm.plain.cpu,
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
  const workerd = await startMiniflare(
    isolates.map(({ name, scenario }) => ({
      name,
      scriptPath: bundle.file,
      bindings: workerBindings(idp, scenario),
      routes: [`${name}.bench/*`],
    })),
  );
  const burst = async (names) => {
    const responses = await Promise.all(
      names.flatMap((name) =>
        Array.from({ length: BURST }, () => workerd.mf.dispatchFetch(`http://${name}.bench/auth`, { headers })),
      ),
    );
    const bad = responses.filter((r) => r.status !== 200).map((r) => r.status);
    // Miniflare may already have consumed a body (e.g. to log an error): that is not our failure.
    await Promise.all(responses.map((r) => r.arrayBuffer().catch(() => undefined)));
    if (bad.length > 0)
      failures.push(`JWKS scenario: ${bad.length} requests not answered 200 (${[...new Set(bad)].join(", ")})`);
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

// ───── the tables, and the chart ─────

const ms = (value, digits = 3) => `${value.toFixed(digits)} ms`;
const µs = (msValue) => `${Math.round(msValue * 1000)} µs`;
const times = (value) => `${value.toFixed(2)}×`;
/** A row of the cold table: a part's first run in a fresh isolate against its warm figure. */
const coldRow = (label, cold, warm, measuredIn) => [
  "cpu cold",
  label,
  ms(cold),
  `${ms(warm)} warm`,
  times(cold / warm),
  "",
  "",
  measuredIn,
];
const count = (value) => Math.round(value).toLocaleString("en");
const verdict = (ok) => (ok ? "met" : "MISSED");

function printTable(columns, rows) {
  const cells = [columns, ...rows.map((row) => columns.map((_, i) => String(row[i] ?? "")))];
  const widths = columns.map((_, i) => Math.max(...cells.map((cell) => cell[i].length)));
  const line = (cell) =>
    cell
      .map((text, i) => text.padEnd(widths[i]))
      .join("  ")
      .trimEnd();
  console.log(line(cells[0]));
  console.log(widths.map((w) => "─".repeat(w)).join("  "));
  let section = "";
  for (const cell of cells.slice(1)) {
    if (cell[0] !== section && section !== "") console.log("");
    section = cell[0];
    console.log(line(cell));
  }
}

/** The ratios the goals are stated in, from one round's three loads. */
const ratiosOf = ({ worker, bare, reference }) => ({
  cpuVsBare: worker.cpuPerRequest / bare.cpuPerRequest,
  cpuVsReference: worker.cpuPerRequest / reference.cpuPerRequest,
  rpsVsReference: worker.rps / reference.rps,
  p99VsBare: worker.p99 / bare.p99,
});

async function main() {
  const started = Date.now();
  const load1 = loadavg()[0];
  const dir = await mkdtemp(join(tmpdir(), "ably-edge-auth-bench-"));
  const idp = await identityProvider();
  const headers = { authorization: `Bearer ${idp.token}` };
  try {
    say("building the worker and the bare worker (wrangler deploy --dry-run)");
    const bundle = await buildBundle(join(dir, "dist"), { flags: ["--metafile"] });
    const parts = await bundleParts(join(dir, "dist", "bundle-meta.json"), bundle);
    const bare = await buildBundle(join(dir, "bare"), { entry: "bench/bare-worker.mjs" });
    say("global scope: importing the bundles in fresh Node processes");
    const empty = join(dir, "empty.mjs");
    await writeFile(empty, "export {};\n");
    const bindings = workerBindings(idp, "global-scope");
    const scope = await globalScope(bundle.file, empty, bindings);
    const bareScope = await globalScope(bare.file, empty, bindings);
    if (scope.io + scope.importKey > 0) failures.push("I/O or a key import at global scope");

    const rounds = [];
    for (let round = 1; round <= ROUNDS; round++) {
      say(
        `round ${round}/${ROUNDS}: worker, bare worker, Express; ${WARMUP_SECONDS} s warm-up + ${LOAD_SECONDS} s at ${CONNECTIONS} connections each`,
      );
      const loads = {
        worker: await loadBare("worker", idp, bundle, headers, { healthz: round === 1 }),
        bare: await loadBare("bare worker", idp, bare, headers),
        reference: await loadReference(idp, headers),
      };
      rounds.push({ ...loads, ratios: ratiosOf(loads) });
    }
    say(`cold: ${COLD_RUNS} fresh workerd processes per target`);
    const cold = {
      worker: await coldStarts("worker", idp, bundle),
      bare: await coldStarts("bare", idp, bare),
    };
    say("load: worker through Miniflare with its local KV, once");
    const miniflare = await loadMiniflare(idp, bundle, headers);
    say("CPU per part in workerd, warm and cold; KV reads");
    const cpu = await cpuAndKv(idp, await buildCpuWorker(dir));
    say("JWKS fetches from isolates sharing one location cache");
    const jwks = await jwksFetches(idp, bundle, headers);

    const med = (pick) => median(rounds.map(pick));
    const m = {
      worker: {
        rps: med((r) => r.worker.rps),
        cpu: med((r) => r.worker.cpuPerRequest),
        p50: med((r) => r.worker.p50),
        p99: med((r) => r.worker.p99),
      },
      bare: {
        rps: med((r) => r.bare.rps),
        cpu: med((r) => r.bare.cpuPerRequest),
        p50: med((r) => r.bare.p50),
        p99: med((r) => r.bare.p99),
      },
      reference: {
        rps: med((r) => r.reference.rps),
        cpu: med((r) => r.reference.cpuPerRequest),
        p50: med((r) => r.reference.p50),
        p99: med((r) => r.reference.p99),
      },
      ratios: Object.fromEntries(Object.keys(rounds[0].ratios).map((k) => [k, med((r) => r.ratios[k])])),
    };

    console.log(
      `ably-edge-auth bench · ${cpus().length} cores, load average ${load1.toFixed(1)} at start · Node ${process.version} · workerd ${WORKERD_VERSION} · autocannon ${CONNECTIONS} connections, ${WARMUP_SECONDS} s warm-up + ${LOAD_SECONDS} s per target per round`,
    );
    console.log(
      "\nLoad, per round (worker and bare worker in bare workerd; Express = Node reference, keys imported once). CPU: the serving process's, HTTP included.",
    );
    const loadRow = (label, w, b, r, ratios) => [
      label,
      count(w.rps),
      count(b.rps),
      count(r.rps),
      µs(w.cpu),
      µs(b.cpu),
      µs(r.cpu),
      times(ratios.cpuVsBare),
      times(ratios.cpuVsReference),
      times(ratios.rpsVsReference),
      `${w.p99} / ${b.p99} / ${r.p99} ms`,
      times(ratios.p99VsBare),
    ];
    const asRow = (load) => ({ rps: load.rps, cpu: load.cpuPerRequest, p99: load.p99 });
    printTable(
      [
        "round",
        "worker req/s",
        "bare req/s",
        "Express req/s",
        "worker CPU",
        "bare CPU",
        "Express CPU",
        "CPU worker/bare",
        "CPU worker/Express",
        "req/s worker/Express",
        "p99 worker / bare / Express",
        "p99 worker/bare",
      ],
      [
        ...rounds.map((r, i) => loadRow(String(i + 1), asRow(r.worker), asRow(r.bare), asRow(r.reference), r.ratios)),
        loadRow("median", m.worker, m.bare, m.reference, m.ratios),
      ],
    );

    const { warm, cold: coldParts, kv } = cpu;
    const rest = warm.request - warm.verify - warm.ban - warm.sign;
    const coldRest = coldParts.request - coldParts.verify - coldParts.ban - coldParts.sign;
    const coldRatio = cold.worker.firstMs / cold.bare.firstMs;
    const ahead = m.ratios.cpuVsReference < 1 && m.ratios.rpsVsReference > 1;
    const workerd = `workerd ${WORKERD_VERSION}, process CPU`;
    console.log("\nGoals and the rest; load figures are the medians of the rounds above.");
    printTable(
      ["", "measure", "worker", "compared with", "ratio", "target", "status", "measured in"],
      [
        [
          "goals",
          "CPU per request (median of per-round ratios)",
          µs(m.worker.cpu),
          `${µs(m.bare.cpu)} bare worker`,
          times(m.ratios.cpuVsBare),
          `≤ ${GOAL_CPU_RATIO}× bare`,
          verdict(m.ratios.cpuVsBare <= GOAL_CPU_RATIO),
          "bare workerd, process CPU, HTTP included",
        ],
        [
          "goals",
          "ahead of Express: CPU, requests/s",
          `${µs(m.worker.cpu)}, ${count(m.worker.rps)}/s`,
          `${µs(m.reference.cpu)}, ${count(m.reference.rps)}/s Express`,
          `${times(m.ratios.cpuVsReference)}, ${times(m.ratios.rpsVsReference)}`,
          "CPU < 1×, req/s > 1×",
          verdict(ahead),
          "the same load, the same core",
        ],
        [
          "goals",
          "latency p99",
          ms(m.worker.p99, 0),
          `${ms(m.bare.p99, 0)} bare worker`,
          times(m.ratios.p99VsBare),
          `≤ ${GOAL_P99_RATIO}× bare`,
          verdict(m.ratios.p99VsBare <= GOAL_P99_RATIO),
          `autocannon, ${CONNECTIONS} connections`,
        ],
        [
          "goals",
          "first request of a fresh workerd, CPU",
          ms(cold.worker.firstMs, 2),
          `${ms(cold.bare.firstMs, 2)} bare worker`,
          times(coldRatio),
          `≤ ${GOAL_COLD_RATIO}× bare`,
          verdict(coldRatio <= GOAL_COLD_RATIO),
          `process CPU around it, all threads; JWKS fetch + key imports; median of ${COLD_RUNS}`,
        ],
        [
          "goals",
          "bundle, gzip",
          `${bundle.gzipKiB.toFixed(2)} KiB`,
          `${bare.gzipKiB.toFixed(2)} KiB bare worker`,
          "",
          `≤ ${GOAL_GZIP_KIB} KiB`,
          verdict(bundle.gzipKiB <= GOAL_GZIP_KIB),
          `wrangler deploy --dry-run (${bundle.totalKiB.toFixed(2)} KiB raw)`,
        ],
        ...parts.map(({ part, rawKiB, gzipKiB }) => [
          "size",
          `  of which ${part}`,
          `≈ ${gzipKiB.toFixed(1)} KiB gzip`,
          `${rawKiB.toFixed(1)} KiB raw`,
          "",
          "",
          "",
          "esbuild metafile; gzip by raw share",
        ]),
        [
          "startup",
          "fresh workerd until it accepts",
          ms(cold.worker.startupMs, 1),
          `${ms(cold.bare.startupMs, 1)} bare worker`,
          times(cold.worker.startupMs / cold.bare.startupMs),
          "",
          "",
          `process CPU: workerd start + compile + global scope; median of ${COLD_RUNS}`,
        ],
        [
          "startup",
          "global scope: compile + evaluate",
          ms(scope.ms, 1),
          `${ms(bareScope.ms, 1)} bare worker`,
          times(scope.ms / bareScope.ms),
          "",
          "",
          `Node ${process.version} (V8), fresh process, median of ${IMPORT_RUNS}`,
        ],
        [
          "startup",
          "global scope: I/O, key imports",
          `${scope.io}, ${scope.importKey}`,
          "",
          "",
          "none",
          verdict(scope.io + scope.importKey === 0),
          "fetch, Cache API, importKey watched",
        ],
        [
          "load",
          "latency p50",
          ms(m.worker.p50, 0),
          `${ms(m.bare.p50, 0)} bare, ${ms(m.reference.p50, 0)} Express`,
          "",
          "",
          "",
          "medians of the rounds",
        ],
        [
          "load",
          "/healthz p50, p99: the runtime's own tail",
          `${ms(rounds[0].worker.healthz.p50, 0)}, ${ms(rounds[0].worker.healthz.p99, 0)}`,
          `${count(rounds[0].worker.healthz.rps)} requests/s`,
          "",
          "",
          "",
          "round 1, a route that does almost nothing",
        ],
        [
          "load",
          "as wrangler dev runs it: req/s, p99",
          `${count(miniflare.rps)}, ${ms(miniflare.p99, 0)}`,
          `${ms(miniflare.cpuPerRequest)} CPU/request`,
          "",
          "",
          "",
          "Miniflare: entry worker + KV simulator in the thread",
        ],
        ["cpu warm", "verify (verifyIdentity), alone", ms(warm.verify), "", "", "", "", workerd],
        ["cpu warm", "ban lookup (banFor, KV stand-in), alone", ms(warm.ban), "", "", "", "", workerd],
        ["cpu warm", "sign (grantFor + signAblyToken), alone", ms(warm.sign), "", "", "", "", workerd],
        ["cpu warm", "rest: request − the three", ms(rest), "", "", "", "", `${workerd}; Hono, middleware, log`],
        [
          "cpu warm",
          "whole request (app.fetch of GET /auth)",
          ms(warm.request),
          `${ms(warm.floor)} crypto floor`,
          times(warm.request / warm.floor),
          "",
          "",
          `${workerd}; floor: 1 RS256 verify + 1 HS256 sign`,
        ],
        [
          "cpu warm",
          "price: the access log line",
          ms(warm.log),
          "",
          "",
          "",
          "",
          `${workerd}; src/request/log.ts's middleware, console.log included`,
        ],
        [
          "cpu warm",
          "price: security headers + request id",
          ms(warm.securityHeaders),
          "",
          "",
          "",
          "",
          `${workerd}; respond() − a Response with the 2 JWT headers`,
        ],
        [
          "cpu warm",
          "key imports + fetches per request",
          String(warm.importsAndFetches),
          "",
          "",
          "0",
          verdict(warm.importsAndFetches === 0),
          "importKey and fetch counted in the isolate",
        ],
        coldRow(
          "verify, first in a fresh isolate",
          coldParts.verify,
          warm.verify,
          `${workerd}; JWKS fetch, parse, key import`,
        ),
        coldRow("ban lookup, first", coldParts.ban, warm.ban, workerd),
        coldRow("sign, first (HMAC key import)", coldParts.sign, warm.sign, workerd),
        coldRow("rest, first", coldRest, rest, `${workerd}, request − parts`),
        coldRow(
          "whole first request, in-isolate",
          coldParts.request,
          warm.request,
          `${workerd}, median of ${COLD_ISOLATES} isolates`,
        ),
        [
          "kv",
          "ban get, cacheTtl 60: latency",
          ms(kv["60"].clock),
          `${ms(kv.none.clock)} no cacheTtl`,
          times(kv["60"].clock / kv.none.clock),
          "",
          "",
          `local Miniflare KV, isolate clock, best of 2 × ${KV_READS}`,
        ],
        [
          "kv",
          "ban get, cacheTtl 60: CPU",
          ms(kv["60"].cpu),
          `${ms(kv.none.cpu)} no cacheTtl`,
          times(kv["60"].cpu / kv.none.cpu),
          "",
          "",
          `${workerd}, KV simulator included`,
        ],
        [
          "jwks",
          `1 cold isolate, ${BURST} concurrent`,
          `${jwks.oneIsolate} fetch(es)`,
          `${BURST} requests`,
          "",
          "1",
          verdict(jwks.oneIsolate === 1),
          "JWKS server on 127.0.0.1",
        ],
        [
          "jwks",
          `${JWKS_ISOLATES} cold isolates × ${BURST}, at once`,
          `${jwks.coldLocation} fetch(es)`,
          `${JWKS_ISOLATES * BURST} requests`,
          "",
          `≤ ${JWKS_ISOLATES} (1 per isolate)`,
          verdict(jwks.coldLocation <= JWKS_ISOLATES),
          "one Miniflare = one location's Cache API",
        ],
        [
          "jwks",
          `${JWKS_ISOLATES - 1} cold isolates × ${BURST}, cache filled`,
          `${jwks.warmLocation} fetch(es)`,
          `${(JWKS_ISOLATES - 1) * BURST} requests`,
          "",
          "0",
          verdict(jwks.warmLocation === 0),
          "after one isolate fetched",
        ],
      ],
    );
    const chart = join(ROOT, "docs", "bench.svg");
    await writeFile(
      chart,
      drawChart(
        [
          { name: "worker", rps: m.worker.rps, cpuUs: m.worker.cpu * 1000 },
          { name: "bare worker", rps: m.bare.rps, cpuUs: m.bare.cpu * 1000 },
          { name: "Express", rps: m.reference.rps, cpuUs: m.reference.cpu * 1000 },
        ],
        `npm run bench: medians of ${ROUNDS} rounds, ${CONNECTIONS} connections, ${cpus().length} cores · workerd ${WORKERD_VERSION}, Node ${process.version} · CPU of the serving process`,
      ),
    );
    console.log(`\nChart: ${chart}. Took ${Math.round((Date.now() - started) / 1000)} s.`);
    if (load1 > cpus().length / 2) {
      console.log(
        `NOTE: the machine was busy (load average ${load1.toFixed(1)} on ${cpus().length} cores): timings are unreliable; CPU figures less so.`,
      );
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
