/**
 * `npm run bench:cold -- [--runs N] name=bundle.js ...`: an isolate's first request, side by side.
 * Each bundle given (built as `wrangler deploy` builds it: `npx wrangler deploy --dry-run --outdir
 * DIR`, say on two commits) and the bare worker, built here, are started in turn in fresh workerd
 * processes, so the machine's load falls on all of them alike; the medians of N samples each
 * (default 15) are printed, measured as `npm run bench` measures its cold rows (harness.mjs's
 * coldStart). Run it alone: flock /tmp/ably-e2e.lock.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { buildBundle, coldStart, identityProvider, median, say } from "./harness.mjs";

const { values, positionals } = parseArgs({
  allowPositionals: true,
  options: { runs: { type: "string", default: "15" } },
});
const given = positionals.map((arg) => {
  const [name, file] = arg.split("=");
  if (!file) throw new Error(`expected name=bundle.js, got ${arg}`);
  return { name, file };
});

const dir = await mkdtemp(join(tmpdir(), "ably-edge-auth-cold-"));
const idp = await identityProvider();
try {
  const bare = await buildBundle(join(dir, "bare"), { entry: "bench/bare-worker.mjs" });
  const targets = [...given, { name: "bare worker", file: bare.file }];
  const samples = new Map(targets.map(({ name }) => [name, []]));
  const load = () => loadavg()[0].toFixed(2);
  say(`${values.runs} rounds of ${targets.length} fresh workerd processes; load average ${load()}`);
  for (let round = 0; round < Number(values.runs); round++) {
    for (const { name, file } of targets) samples.get(name).push(await coldStart(file, idp, name));
  }
  const ms = (value) => `${value.toFixed(2)} ms`;
  const bareFirst = median(samples.get("bare worker").map((s) => s.firstMs));
  console.log(`\nload average ${load()} at the end; medians of ${values.runs}\n`);
  console.log(
    "| target | first request | / bare worker | startup | first requests, in turn |\n|---|---:|---:|---:|---|",
  );
  for (const [name, runs] of samples) {
    const first = median(runs.map((s) => s.firstMs));
    const all = runs.map((s) => s.firstMs.toFixed(1)).join(" ");
    const startup = ms(median(runs.map((s) => s.startupMs)));
    console.log(`| ${name} | ${ms(first)} | ${(first / bareFirst).toFixed(2)}× | ${startup} | ${all} |`);
  }
} finally {
  await idp.close();
  await rm(dir, { recursive: true, force: true });
}
