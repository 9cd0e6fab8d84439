// `npm run dev`: the whole local flow, offline. Starts the development identity provider
// (dev/idp, 127.0.0.1:8788, which also serves the demo page) and the auth endpoint (127.0.0.1:8787)
// in two `wrangler dev` processes, prints where they are once both answer, and stops both together.
import { spawn } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";

const WRANGLER = "node_modules/.bin/wrangler";
const IDP = "http://127.0.0.1:8788";
const AUTH = "http://127.0.0.1:8787";
/** How long both may take to answer before we give up: wrangler's first build takes a few seconds. */
const READY_TIMEOUT_MS = 60_000;

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log(
    "[dev] created .dev.vars from .dev.vars.example (a placeholder Ably key; put yours there to connect to Ably)",
  );
}

const common = ["--ip", "127.0.0.1", "--show-interactive-dev-session=false"];
const children = [
  start("idp", ["dev", "-c", "dev/idp/wrangler.toml", "--port", "8788", "--inspector-port", "9230", ...common]),
  start("auth", ["dev", "--port", "8787", "--inspector-port", "9229", ...common]),
];

function start(name, args) {
  // Its own process group, so stopping it also stops the workerd processes it starts.
  const child = spawn(WRANGLER, args, { stdio: ["ignore", "pipe", "pipe"], detached: true });
  for (const stream of [child.stdout, child.stderr]) {
    let rest = "";
    stream.on("data", (chunk) => {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop();
      for (const line of lines) console.log(`[${name}] ${line}`);
    });
  }
  child.on("exit", (code) => {
    console.log(`[dev] ${name} exited (${code}); stopping the rest`);
    stop(code ?? 1);
  });
  return child;
}

let stopping = false;
function stop(code) {
  if (stopping) return;
  stopping = true;
  for (const child of children) {
    try {
      process.kill(-child.pid, "SIGTERM");
    } catch {
      // already gone
    }
  }
  setTimeout(() => process.exit(code), 500);
}
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));

const deadline = Date.now() + READY_TIMEOUT_MS;
const up = (url) =>
  fetch(url).then(
    (r) => r.ok,
    () => false,
  );
while (!(await up(`${IDP}/.well-known/openid-configuration`)) || !(await up(`${AUTH}/healthz`))) {
  if (Date.now() > deadline) {
    console.error("[dev] not ready after 60 s; see the output above");
    stop(1);
    break;
  }
  await new Promise((resolve) => setTimeout(resolve, 300));
}
if (!stopping) {
  console.log(`
[dev] ready on Node ${process.version}
  demo page                 ${IDP}/
  identity token for alice  curl -s '${IDP}/token?sub=alice'
  auth endpoint             ${AUTH}/auth   (health: ${AUTH}/healthz)
  stop                      Ctrl-C
`);
}
