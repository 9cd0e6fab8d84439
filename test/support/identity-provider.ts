/**
 * A stand-in identity provider for tests: real key pairs generated at start-up, an OIDC discovery
 * document and a JWKS, plus hosts that fail the ways real ones do. `handle` answers a fetch; the
 * worker suite plugs it into Miniflare's outbound service, the e2e suite serves it on 127.0.0.1.
 *
 * Hosts (worker suite): idp.test (the configured issuer, `https://idp.test/`), other-idp.test (a
 * second, real issuer whose JWKS reuses idp.test's kid), down.test (500), html.test (HTML at 200),
 * liar.test (discovery names another issuer), badjson.test (a JWKS that is not JSON), empty.test (an
 * empty key set), redirect.test (a 302 to the real JWKS), slow.test (answers after the worker's
 * timeout), outage.test (a real provider whose outage GET /__down starts and GET /__up ends).
 * GET /__fetches on any host reports fetch counts.
 */
import type { JWK } from "jose";
import { keyPair } from "./keys.ts";

/** How long slow.test takes: past the worker's 3 s JWKS timeout, short enough for a test. */
const SLOW_MS = 4_000;

/** An Ably API key that is obviously not real: `<appId>.<keyId>:<secret>`. */
export const TEST_ABLY_KEY = "testApp.testKey:not-a-real-secret-0123456789";

export interface SigningKeys {
  /** In the JWKS of the configured issuer. */
  rsa: JWK;
  ec: JWK;
  /** Not in any JWKS, but with the same kid as `rsa`. */
  attacker: JWK;
  /** In other-idp.test's JWKS only, with the same kid as `rsa`. */
  other: JWK;
}

export async function identityProvider(origin = "https://idp.test") {
  const [rsa, ec, attacker, other] = await Promise.all([
    keyPair("RS256", "rsa-1"),
    keyPair("ES256", "ec-1"),
    keyPair("RS256", "rsa-1"),
    keyPair("RS256", "rsa-1"),
  ]);
  const issuer = `${origin}/`;
  const fetches = new Map<string, number>();
  let outage = false;
  const json = (body: unknown, status = 200) =>
    new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json" } });

  function handle(request: Request): Response | Promise<Response> {
    const url = new URL(request.url);
    const where = `${url.host}${url.pathname}`;
    if (url.pathname === "/__fetches") return json(Object.fromEntries(fetches));
    fetches.set(where, (fetches.get(where) ?? 0) + 1);
    const discovery = url.pathname === "/.well-known/openid-configuration";
    // In the e2e suite every request arrives at one 127.0.0.1 origin: that origin is idp.test.
    const host = url.hostname.endsWith(".test") ? url.hostname : "idp.test";
    switch (host) {
      case "idp.test":
        if (discovery) return json({ issuer, jwks_uri: `${url.origin}/jwks` });
        if (url.pathname === "/jwks") return json({ keys: [rsa.pub, ec.pub] });
        break;
      case "outage.test": // a real provider until GET /__down, again after GET /__up
        if (url.pathname === "/__down" || url.pathname === "/__up") {
          outage = url.pathname === "/__down";
          return json({ outage });
        }
        if (outage) return json({ error: "outage" }, 503);
        if (discovery) return json({ issuer: "https://outage.test/", jwks_uri: `${url.origin}/jwks` });
        if (url.pathname === "/jwks") return json({ keys: [rsa.pub, ec.pub] });
        break;
      case "other-idp.test":
        if (discovery) return json({ issuer: "https://other-idp.test/", jwks_uri: `${url.origin}/jwks` });
        if (url.pathname === "/jwks") return json({ keys: [other.pub] });
        break;
      case "liar.test":
        if (discovery) return json({ issuer, jwks_uri: `${origin}/jwks` });
        break;
      case "down.test":
        return json({ error: "down" }, 500);
      case "html.test":
        return new Response("<html>maintenance</html>", { headers: { "content-type": "text/html" } });
      case "badjson.test":
        return new Response('{"keys": [', { headers: { "content-type": "application/json" } });
      case "empty.test":
        return json({ keys: [] });
      case "redirect.test":
        return new Response(null, { status: 302, headers: { location: `${origin}/jwks` } });
      case "slow.test": // answers after the worker's 3 s JWKS timeout
        return new Promise((resolve) => setTimeout(() => resolve(json({ keys: [rsa.pub, ec.pub] })), SLOW_MS));
    }
    return json({ error: "not found" }, 404);
  }

  const privateJwks: SigningKeys = {
    rsa: rsa.priv,
    ec: ec.priv,
    attacker: attacker.priv,
    other: other.priv,
  };
  return {
    issuer,
    audience: "ably-edge-auth-test",
    privateJwks,
    publicRsa: rsa.pub,
    handle,
    fetchCount: (where: string) => fetches.get(where) ?? 0,
  };
}
