/**
 * Finds the Chromium the browser suites drive, and gets one where it can. `npm test` runs this file
 * first (`pretest`), so `npm ci && npm test` is the whole set-up on a fresh machine:
 *
 *   CHROMIUM_PATH if set; else an installed Chromium or Chrome at its usual places; else, on Debian
 *   as root (these machines, CI), Debian's `chromium` installed with apt-get; else the run stops
 *   with one line that says what to install.
 */
import { type ExecFileSyncOptions, execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { delimiter, join } from "node:path";

/** Names on PATH, then fixed places (macOS apps, snaps), a Chromium or Chrome may have. */
const NAMES = ["chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"];
const PLACES = [
  "/Applications/Google Chrome.app/Contents/MacOS/Google Chrome",
  "/Applications/Chromium.app/Contents/MacOS/Chromium",
  "/snap/bin/chromium",
];

/** fonts-liberation is only recommended by chromium, and screenshots need readable text. */
const APT_PACKAGES = ["chromium", "fonts-liberation"];

const INSTALL_HINT =
  "install Chromium or Chrome (Debian: apt-get install chromium; macOS: Google Chrome) or set CHROMIUM_PATH to its binary";

/** The Chromium or Chrome binary to drive, or undefined when none is installed (CHROMIUM_PATH wins). */
export function findChromium(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.CHROMIUM_PATH) return existsSync(env.CHROMIUM_PATH) ? env.CHROMIUM_PATH : undefined;
  const onPath = (env.PATH ?? "").split(delimiter).flatMap((dir) => (dir ? NAMES.map((name) => join(dir, name)) : []));
  return [...onPath, ...PLACES].find((path) => existsSync(path));
}

/** Why no browser can be launched, in one line; undefined when one can. */
export function chromiumMissing(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (findChromium(env)) return undefined;
  return env.CHROMIUM_PATH
    ? `CHROMIUM_PATH=${env.CHROMIUM_PATH} does not exist: point it at a Chromium or Chrome binary.`
    : `No Chromium or Chrome for the browser tests: ${INSTALL_HINT}.`;
}

function installWithApt(): void {
  console.log(`[pretest] no Chromium found: installing Debian's ${APT_PACKAGES.join(" and ")} with apt-get (once)`);
  const options: ExecFileSyncOptions = {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
  };
  execFileSync("apt-get", ["update", "-qq"], options);
  execFileSync("apt-get", ["install", "-y", "-qq", "--no-install-recommends", ...APT_PACKAGES], options);
}

if (import.meta.main) {
  const aptHere = process.platform === "linux" && process.getuid?.() === 0 && existsSync("/usr/bin/apt-get");
  if (!process.env.CHROMIUM_PATH && !findChromium() && aptHere) {
    try {
      installWithApt();
    } catch {
      // Said below, in the one line.
    }
  }
  const missing = chromiumMissing();
  if (missing) {
    console.error(missing);
    process.exit(1);
  }
}
