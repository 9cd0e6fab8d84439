// `npm run dev`: the whole local flow, offline. Starts the development identity provider
// (dev/idp, 127.0.0.1:8788, which also serves the demo page) and the auth endpoint (127.0.0.1:8787)
// in two `wrangler dev` processes, and, while .dev.vars holds the example's placeholder Ably key,
// the Ably stand-in (dev/ably, 127.0.0.1:8789) in a third; prints where they are once all answer,
// and stops them together.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { readVars, updateDevVars } from "./dev-vars.mjs";

const WRANGLER = "node_modules/.bin/wrangler";
const IDP = "http://127.0.0.1:8788";
const AUTH = "http://127.0.0.1:8787";
/** The Ably stand-in's port: ABLY_REST_URL in .dev.vars.example points at it. */
const ABLY_STAND_IN_PORT = 8789;
const ABLY_STAND_IN = `http://127.0.0.1:${ABLY_STAND_IN_PORT}`;
/** How long all may take to answer before we give up: wrangler's first build takes a few seconds. */
const READY_TIMEOUT_MS = 60_000;

const { created, added } = updateDevVars(".dev.vars", ".dev.vars.example");
if (created) {
  console.log(
    "[dev] created .dev.vars from .dev.vars.example (a placeholder Ably key; put yours there to connect to Ably)",
  );
}
if (added.length > 0) console.log(`[dev] added to .dev.vars from .dev.vars.example: ${added.join(", ")}`);

const vars = readVars(readFileSync(".dev.vars", "utf8"));
const standIn = vars.ABLY_API_KEY === readVars(readFileSync(".dev.vars.example", "utf8")).ABLY_API_KEY;
if (!standIn && vars.ABLY_REST_URL?.startsWith(ABLY_STAND_IN)) {
  console.log(
    '[dev] your own Ably key is in .dev.vars but ABLY_REST_URL points at the stand-in, which runs only with the placeholder key: set ABLY_REST_URL="https://main.realtime.ably.net" there to revoke at Ably',
  );
}

const common = ["--ip", "127.0.0.1", "--show-interactive-dev-session=false"];
const children = [
  // The demo page learns from ABLY_STAND_IN_PORT whether to connect to the stand-in or to Ably.
  start("idp", [
    WRANGLER,
    "dev",
    "-c",
    "dev/idp/wrangler.toml",
    "--port",
    "8788",
    "--inspector-port",
    "9230",
    ...common,
    ...(standIn ? ["--var", `ABLY_STAND_IN_PORT:${ABLY_STAND_IN_PORT}`] : []),
  ]),
  start("auth", [WRANGLER, "dev", "--port", "8787", "--inspector-port", "9229", ...common]),
  ...(standIn
    ? [
        start("ably", [process.execPath, "dev/ably/main.ts"], {
          ABLY_API_KEY: vars.ABLY_API_KEY,
          ABLY_STAND_IN_PORT: String(ABLY_STAND_IN_PORT),
        }),
      ]
    : []),
];

function start(name, [command, ...args], env = {}) {
  // Its own process group, so stopping it also stops the workerd processes it starts.
  const child = spawn(command, args, {
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
    env: { ...process.env, ...env },
  });
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
/** Whether anything answers there at all (the stand-in answers its root with 404, as Ably does). */
const answers = (url) =>
  fetch(url).then(
    () => true,
    () => false,
  );
const ready = async () =>
  (await up(`${IDP}/.well-known/openid-configuration`)) &&
  (await up(`${AUTH}/healthz`)) &&
  (!standIn || (await answers(`${ABLY_STAND_IN}/`)));
while (!(await ready())) {
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
  Ably                      ${standIn ? `the local stand-in on ${ABLY_STAND_IN} (the placeholder key in .dev.vars)` : "Ably itself, with your key in .dev.vars"}
  stop                      Ctrl-C
`);
}
