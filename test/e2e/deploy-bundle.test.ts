/**
 * What `wrangler deploy` would upload: the auth endpoint alone. Nothing of the development identity
 * provider, the demo page, the Ably stand-in or the Ably client SDK is in it, and no development setting reaches it,
 * so no code path of the production worker can trust the development provider.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, WRANGLER, wranglerEnv } from "../support/wrangler-dev";

let outdir: string;
let printed: string;
let bundle: string;

beforeAll(async () => {
  outdir = mkdtempSync(join(tmpdir(), "ably-edge-auth-dist-"));
  const { stdout, stderr } = await promisify(execFile)(WRANGLER, ["deploy", "--dry-run", "--outdir", outdir], {
    cwd: ROOT,
    env: wranglerEnv,
  });
  printed = stdout + stderr;
  bundle = readdirSync(outdir)
    .filter((f) => f.endsWith(".js"))
    .map((f) => readFileSync(join(outdir, f), "utf8"))
    .join("\n");
});

afterAll(() => rmSync(outdir, { recursive: true, force: true }));

describe("wrangler deploy --dry-run", () => {
  it("bundles the auth endpoint", () => {
    expect(bundle).toContain("identity-token-missing");
    expect(printed).toMatch(/gzip: [\d.]+ KiB/);
  });

  it.each([
    ["the development identity provider", 'openid-configuration", (c) =>'],
    ["its token endpoint's marker", "FIXED_CLAIMS"],
    ["the demo page", "ably-edge-auth · local demo"],
    ["the development provider's address", "127.0.0.1:8788"],
    ["the development admin token", "dev-only-admin-token"],
    ["the Ably client SDK", "realtimeRequestTimeout"],
    ["the Ably stand-in", "ably-stand-in"],
    ["the stand-in's address", "127.0.0.1:8789"],
    // Uploaded beside it as static assets (public/admin/), never bundled.
    ["the moderation console's script", "ably-edge-auth.admin-token"],
  ])("holds nothing of %s", (_name, marker) => {
    expect(bundle).not.toContain(marker);
  });

  it("binds no development variable or state", () => {
    expect(printed).toContain("env.BANS");
    for (const name of ["IDP_STATE", "ADMIN_TOKEN", "AUTH_URL", "127.0.0.1"]) expect(printed).not.toContain(name);
  });
});
