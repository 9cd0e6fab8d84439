/**
 * The toolchain the project pins is the one that runs: Node from the `node` devDependency (the
 * version in .node-version) under every npm script and `npx`, even where the machine's own Node is
 * older; and every dependency pinned to one exact version.
 */
import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { PROJECT_NODE, userShellEnv } from "../support/user-shell";
import { ROOT } from "../support/wrangler-dev";

const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  engines: { node: string };
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  allowScripts: Record<string, boolean>;
};

describe("the project's Node", () => {
  it("is the node devDependency's version, the one .node-version names, within engines", () => {
    expect(`v${pkg.devDependencies.node}`).toBe(PROJECT_NODE);
    expect(pkg.engines.node).toBe(`^${PROJECT_NODE.slice(1).split(".")[0]}.0.0`);
    // npm runs the node package's install script, which fetches the binary, only when allowed.
    expect(pkg.allowScripts.node).toBe(true);
  });

  it("runs Vitest (and so every test in this suite)", () => {
    expect(process.version).toBe(PROJECT_NODE);
  });

  it("is what `npm exec -- node` runs from a user's shell, whatever the machine's own Node is", () => {
    const env = userShellEnv();
    const run = (command: string, args: string[]) =>
      execFileSync(command, args, { cwd: ROOT, env, encoding: "utf8" }).trim();
    expect(run("npm", ["exec", "--", "node", "--version"])).toBe(PROJECT_NODE);
    expect(run("npm", ["exec", "--", "wrangler", "--version"])).toMatch(/^\d+\.\d+\.\d+$/);
    // For the record: the machine's Node, which runs npm itself (Node 20 on the CI machines).
    console.log(`machine's node: ${run("node", ["--version"])}; project's: ${PROJECT_NODE}`);
  });

  it("is what the README's `npm test` runs the suites on, from a user's shell", () => {
    // Only the test above that checks Vitest's own Node, so this does not run itself again.
    const out = execFileSync(
      "npm",
      ["test", "--", "--project", "e2e", "test/e2e/toolchain.test.ts", "-t", "runs Vitest \\(and so"],
      { cwd: ROOT, env: { ...userShellEnv(), FORCE_COLOR: "0", NO_COLOR: "1" }, encoding: "utf8" },
    );
    expect(out).toMatch(/Tests\s+1 passed/);
  }, 120_000);
});

describe("dependencies", () => {
  it("are each pinned to one exact version", () => {
    for (const [name, version] of Object.entries({ ...pkg.dependencies, ...pkg.devDependencies })) {
      expect(version, name).toMatch(/^\d+\.\d+\.\d+(-[\w.]+)?$/);
    }
  });
});
