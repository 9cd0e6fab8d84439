/**
 * What a user's shell looks like to the project, for the e2e suites that run its commands the way a
 * user types them; and the Node the project runs on.
 */
import { readFileSync } from "node:fs";
import { delimiter, join, sep } from "node:path";
import { ROOT } from "./wrangler-dev";

/** The Node the project's scripts run on: .node-version, which the `node` devDependency installs. */
export const PROJECT_NODE = `v${readFileSync(join(ROOT, ".node-version"), "utf8").trim()}`;

/**
 * This process's environment (which `npm test` or `npx` set up) as a user's shell has it: without
 * the `node_modules/.bin` directories npm puts first on PATH, and without npm's own variables. So
 * `node` and `npm` there are the machine's own.
 */
export function userShellEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const name of Object.keys(env)) if (/^npm_/i.test(name)) delete env[name];
  env.PATH = (process.env.PATH ?? "")
    .split(delimiter)
    .filter((dir) => !dir.split(sep).join("/").includes("node_modules/.bin"))
    .join(delimiter);
  return env;
}
