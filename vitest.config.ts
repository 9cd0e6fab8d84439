/**
 * Two suites. `worker`: inside workerd through the Workers test pool, with real local KV; the
 * identity provider's discovery document and JWKS come from keys generated here at start-up and
 * are served to the worker's outbound fetches (no network), as is the Ably stand-in's REST token
 * revocation (dev/ably). `e2e`: Node drives `wrangler dev`
 * over HTTP on 127.0.0.1.
 */
import { existsSync, readFileSync } from "node:fs";
import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { defineConfig } from "vitest/config";
import { restHandler } from "./dev/ably/rest.ts";
import { createStandIn } from "./dev/ably/stand-in.ts";
import { identityProvider, TEST_ABLY_KEY } from "./test/support/identity-provider.ts";
import { providerHosts } from "./test/support/provider-hosts.ts";

const idp = await identityProvider();
/** Every preset's provider, at its real JWKS URL (test/worker/providers.test.ts). */
const presetIdps = await providerHosts();

/**
 * The test pool loads a developer's .dev.vars (written by `npm run dev`); blank out every variable
 * in it, so the suite runs on the same settings on every machine ("" reads as unset).
 */
const localVars = existsSync(".dev.vars")
  ? Object.fromEntries(
      [...readFileSync(".dev.vars", "utf8").matchAll(/^\s*([A-Z_][A-Z0-9_]*)\s*=/gm)].map((m) => [m[1]!, ""]),
    )
  : {};
/** Ably's REST API for revocation: the development stand-in's (dev/ably); ably-down.test is Ably failing. */
const ably = restHandler(createStandIn(TEST_ABLY_KEY));
const ablyDown = () =>
  Response.json({ error: { statusCode: 500, code: 50000, message: "internal error" } }, { status: 500 });

export default defineConfig({
  test: {
    projects: [
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ...localVars,
                JWT_ISSUER: idp.issuer,
                JWT_AUDIENCE: idp.audience,
                ABLY_API_KEY: TEST_ABLY_KEY,
                ALLOWED_ORIGINS: "https://app.example",
                TEST_SIGNING_KEYS: JSON.stringify(idp.privateJwks),
                TEST_PROVIDER_KEYS: JSON.stringify(presetIdps.privateKeys),
              },
              outboundService: async (request: Request) => {
                const { hostname } = new URL(request.url);
                if (hostname === "ably-rest.test") return ably(request);
                if (hostname === "ably-down.test") return ablyDown();
                return (await presetIdps.handle(request)) ?? idp.handle(request);
              },
            },
          }),
        ],
        test: { name: "worker", include: ["test/worker/**/*.test.ts"], setupFiles: ["test/worker/setup.ts"] },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 90_000,
        },
      },
    ],
  },
});
