/**
 * `npm run bench:profile`: where a warm request's CPU goes, stage by stage. Serves the worker (and,
 * for comparison, bench/bare-worker.mjs) in bare workerd exactly as `npm run bench` does, but
 * unminified and with workerd's DevTools inspector open; loads it with autocannon and records a V8
 * CPU profile over the Chrome DevTools Protocol (Profiler.start/stop). Prints, per target, the
 * sampled time per request by stage and the functions that cost most (markdown tables), and keeps
 * each profile as a .cpuprofile file that Chrome DevTools opens.
 *
 *   npm run bench:profile [-- worker|bare] [-- --seconds N] [-- --cold]
 *
 * With --cold it profiles instead the first request of a fresh workerd (no warm-up, one request):
 * what a new isolate pays on top of a warm request (first-use compilation, configuration, the
 * JWKS fetch and key imports).
 *
 * Run it alone (flock /tmp/ably-e2e.lock ...): the profiler slows the worker down (about 20 %), so
 * compare stages with each other and the targets with each other, not with the bench's figures.
 */
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import autocannon from "autocannon";
import WebSocket from "ws";
import { buildBundle, checkIssued, freePort, identityProvider, say, serveBare, workerBindings } from "./harness.mjs";

const CONNECTIONS = 32; // as bench/run.mjs
const WARMUP_SECONDS = 3;
const SAMPLING_INTERVAL_US = 50; // V8's default is 1000: too coarse for a request of ~100 µs

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: {
    seconds: { type: "string", default: "10" },
    out: { type: "string" },
    cold: { type: "boolean", default: false },
  },
});
const targets = positionals.length > 0 ? positionals : ["worker", "bare"];

/** One DevTools Protocol session over the inspector's WebSocket. */
async function devtools(inspectorPort) {
  // The inspector may answer before the worker is loaded, with no target yet: wait for one.
  let targetsList = [];
  for (let tries = 0; targetsList.length === 0; tries++) {
    targetsList = await fetch(`http://127.0.0.1:${inspectorPort}/json/list`).then(
      (r) => r.json(),
      () => [],
    );
    if (targetsList.length === 0 && tries > 100) throw new Error("workerd's inspector did not answer");
    if (targetsList.length === 0) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const main =
    targetsList.find((t) => t.id === "main" || t.title === "main" || /\/main$/.test(t.webSocketDebuggerUrl)) ??
    targetsList[0];
  const socket = new WebSocket(main.webSocketDebuggerUrl);
  await new Promise((resolve, reject) => (socket.once("open", resolve), socket.once("error", reject)));
  let id = 0;
  const pending = new Map();
  socket.on("message", (data) => {
    const message = JSON.parse(String(data));
    if (message.id && pending.has(message.id)) {
      const { resolve, reject } = pending.get(message.id);
      pending.delete(message.id);
      if (message.error) reject(new Error(`${message.error.message}`));
      else resolve(message.result);
    }
  });
  const send = (method, params = {}) =>
    new Promise((resolve, reject) => {
      pending.set(++id, { resolve, reject });
      socket.send(JSON.stringify({ id, method, params }));
    });
  return { send, close: () => socket.close() };
}

/** Which bundled module each line of an unminified esbuild bundle comes from (its `// path` comments). */
function moduleOfLine(bundle) {
  const starts = [];
  bundle.split("\n").forEach((line, i) => {
    const match = /^\/\/ ((?:node_modules|src|bench)\/\S+)$/.exec(line);
    if (match) starts.push([i, match[1]]);
  });
  return (line) => {
    let found = "(bundle)";
    for (const [start, path] of starts) {
      if (start > line) break;
      found = path;
    }
    return found;
  };
}

const CRYPTO = new Set(["sign", "verify", "importKey", "digest", "getRandomValues", "randomUUID"]);

/** The stage a bundled module belongs to. */
function stageOf(path) {
  const hono = /^node_modules\/hono\/dist\/middleware\/([^/]+)\//.exec(path);
  if (hono) return `hono/${hono[1]} middleware`;
  if (path.startsWith("node_modules/hono/")) return "hono core: router, context, compose, request";
  if (path.startsWith("node_modules/jose/"))
    return `jose: ${/\/(jwt|jws|jwks|lib|util)\//.exec(path)?.[1] ?? ""}/${path.split("/").pop().replace(/\.js$/, "")}`;
  return path;
}

/**
 * Sampled time by stage. A sample in a built-in (JSON.stringify, console.log, crypto.subtle.verify:
 * no script URL) counts for the nearest bundled frame that called it; WebCrypto's own calls are a
 * stage of their own. (program) is the runtime outside JavaScript: HTTP, streams, I/O.
 */
function analyse(profile, moduleAt) {
  const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
  const parent = new Map();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const selfUs = new Map();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const stages = new Map();
  const functions = new Map();
  const add = (map, key, us) => map.set(key, (map.get(key) ?? 0) + us);
  let totalUs = 0;
  for (const [id, us] of selfUs) {
    const { callFrame } = nodes.get(id);
    if (callFrame.functionName === "(idle)") continue;
    totalUs += us;
    let stage;
    if (callFrame.url === "") {
      if (/^\(.*\)$/.test(callFrame.functionName)) stage = callFrame.functionName;
      else if (CRYPTO.has(callFrame.functionName)) stage = "WebCrypto (native)";
      else {
        let up = parent.get(id);
        while (up !== undefined && nodes.get(up).callFrame.url === "") up = parent.get(up);
        stage = up === undefined ? "(runtime)" : stageOf(moduleAt(nodes.get(up).callFrame.lineNumber));
      }
    } else {
      stage = stageOf(moduleAt(callFrame.lineNumber));
    }
    add(stages, stage, us);
    const where = callFrame.url === "" ? "built-in" : moduleAt(callFrame.lineNumber);
    add(functions, `${callFrame.functionName || "(anonymous)"} · ${where}`, us);
  }
  return { totalUs, stages, functions };
}

/** Runs `work` under the CPU profiler; returns its result, the profile and the process's CPU meanwhile. */
async function profiled(session, served, work) {
  await session.send("Profiler.enable");
  await session.send("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
  await session.send("Profiler.start");
  const cpuBefore = served.cpu();
  const result = await work();
  const cpuMs = (served.cpu() - cpuBefore) / 1e6;
  const { profile } = await session.send("Profiler.stop");
  return { result, profile, cpuMs };
}

async function profileTarget(name, bundle, idp, seconds) {
  const inspectorPort = await freePort();
  const headers = { authorization: `Bearer ${idp.token}` };
  const served = await serveBare(bundle.file, workerBindings(idp, `profile-${name}`), { inspectorPort });
  const url = `${served.url}/auth`;
  try {
    const session = await devtools(inspectorPort);
    try {
      if (values.cold) {
        const { profile, cpuMs } = await profiled(session, served, () => checkIssued(url, headers, name));
        return { profile, requests: 1, cpuMs };
      }
      await checkIssued(url, headers, name);
      await autocannon({ url, connections: CONNECTIONS, duration: WARMUP_SECONDS, headers });
      const { result, profile, cpuMs } = await profiled(session, served, () =>
        autocannon({ url, connections: CONNECTIONS, duration: seconds, headers }),
      );
      if (result.non2xx > 0) throw new Error(`${name}: ${result.non2xx} answers not 2xx`);
      return { profile, requests: result.requests.total, cpuMs };
    } finally {
      session.close();
    }
  } finally {
    await served.close();
  }
}

const us = (value) => value.toFixed(1);

function report(name, { profile, requests, cpuMs }, moduleAt) {
  const { totalUs, stages, functions } = analyse(profile, moduleAt);
  const perRequest = (value) => value / requests;
  console.log(
    `\n### ${name}: ${requests.toLocaleString("en")} requests; workerd process CPU ${us((cpuMs * 1000) / requests)} µs/request, of which the isolate's thread was sampled busy ${us(perRequest(totalUs))} µs\n`,
  );
  console.log("| stage | µs per request | share |\n|---|---:|---:|");
  for (const [stage, value] of [...stages].sort((a, b) => b[1] - a[1])) {
    if (perRequest(value) < 0.5) continue;
    console.log(`| ${stage} | ${us(perRequest(value))} | ${((100 * value) / totalUs).toFixed(1)} % |`);
  }
  console.log("\n| function (self time) · module | µs per request |\n|---|---:|");
  for (const [fn, value] of [...functions].sort((a, b) => b[1] - a[1]).slice(0, 25)) {
    console.log(`| ${fn} | ${us(perRequest(value))} |`);
  }
}

const dir = await mkdtemp(join(tmpdir(), "ably-edge-auth-profile-"));
const out = values.out ?? tmpdir();
const idp = await identityProvider();
try {
  const entries = { worker: undefined, bare: "bench/bare-worker.mjs" };
  for (const name of targets) {
    if (!(name in entries)) throw new Error(`unknown target ${name}: worker or bare`);
    say(
      values.cold
        ? `${name}: building unminified, then its first request, profiled`
        : `${name}: building unminified, then ${WARMUP_SECONDS} s warm-up + ${values.seconds} s at ${CONNECTIONS} connections, profiled`,
    );
    const bundle = await buildBundle(join(dir, name), { entry: entries[name], flags: ["--minify=false"] });
    const moduleAt = moduleOfLine(await readFile(bundle.file, "utf8"));
    const result = await profileTarget(name, bundle, idp, Number(values.seconds));
    const file = join(out, `ably-edge-auth-${name}${values.cold ? "-cold" : ""}.cpuprofile`);
    await writeFile(file, JSON.stringify(result.profile));
    report(name, result, moduleAt);
    say(`${name}: profile written to ${file}`);
  }
} finally {
  await idp.close();
  await rm(dir, { recursive: true, force: true });
}
