/**
 * A real OpenID Provider for the e2e suites: panva's certified oidc-provider 9, served by Node on
 * 127.0.0.1, with RSA signing keys generated here so that a test can rotate them, and counters of
 * how often its discovery document and its JWKS were fetched.
 *
 * Users are OAuth clients. With the client_credentials grant a token's `sub` is the client id, and
 * with a resource indicator (RFC 8707) whose resource server says `accessTokenFormat: "jwt"` the
 * access token is a signed JWT (RFC 9068) whose `aud` is that resource: exactly what an app's
 * backend would present to the worker, minted by the provider's own code path.
 *
 * http on 127.0.0.1: oidc-provider 9 has no production mode (nothing in it reads NODE_ENV); the
 * Provider constructor only asks the issuer to be an http(s) URL with a host and no query or
 * fragment, so `http://127.0.0.1:<port>` is accepted as it is. http matters only to cookies
 * (`secure` follows the request), which the client_credentials grant never sets.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import type { JWK } from "jose";
import { type Configuration, errors, Provider } from "oidc-provider";
import { keyPair } from "./keys";

export const DISCOVERY_PATH = "/.well-known/openid-configuration";
/** Set explicitly (it is also oidc-provider's default) so the counter matches discovery's jwks_uri. */
export const JWKS_PATH = "/jwks";
const TOKEN_PATH = "/token";

/** Identity tokens live an hour, as most providers' do: longer than this whole suite. */
const ACCESS_TOKEN_TTL_SECONDS = 3_600;

export interface OidcProviderOptions {
  /** Resource indicators it issues tokens for; each becomes the tokens' `aud`. */
  readonly resources: readonly string[];
  /** Client ids, one per "user": a token's `sub`. */
  readonly users: readonly string[];
}

export interface OidcProvider {
  /** `http://127.0.0.1:<port>`: the same across restarts. */
  readonly issuer: string;
  /** Kids in its JWKS, the signing key first. */
  kids(): readonly string[];
  /** An access token (a JWT) for `user` with `aud` = `resource`, from the token endpoint. */
  token(user: string, resource: string): Promise<string>;
  /** Fetches of the discovery document and of the JWKS so far, over every restart. */
  fetches(): { readonly discovery: number; readonly jwks: number };
  /** Restarts with a new signing key first in the JWKS and the previous ones after it. */
  rotate(): Promise<void>;
  /** Restarts with the signing key alone: every older key leaves the JWKS. */
  retireOldKeys(): Promise<void>;
  /** Takes it down: the port refuses connections, open ones are cut. */
  stop(): Promise<void>;
  /** Brings it back on the same port with the same keys. */
  start(): Promise<void>;
}

async function signingKey(kid: string): Promise<JWK> {
  return { ...(await keyPair("RS256", kid)).priv, use: "sig" };
}

const secretOf = (user: string) => `secret-of-${user}`;

function configuration(keys: readonly JWK[], { resources, users }: OidcProviderOptions): Configuration {
  return {
    // oidc-provider signs with the first key that fits the algorithm: the newest one, listed first.
    jwks: { keys: [...keys] },
    routes: { jwks: JWKS_PATH },
    ttl: { ClientCredentials: ACCESS_TOKEN_TTL_SECONDS },
    clients: users.map((user) => ({
      client_id: user,
      client_secret: secretOf(user),
      grant_types: ["client_credentials"],
      response_types: [],
      redirect_uris: [],
    })),
    features: {
      clientCredentials: { enabled: true },
      // The login pages for the authorization code flow: not used, so not served.
      devInteractions: { enabled: false },
      resourceIndicators: {
        enabled: true,
        // Only the resources listed issue tokens; an unknown one is refused (400 invalid_target).
        getResourceServerInfo: (_ctx, resource) => {
          if (!resources.includes(resource)) throw new errors.InvalidTarget();
          return { scope: "", accessTokenFormat: "jwt" };
        },
      },
    },
  };
}

export async function startOidcProvider(options: OidcProviderOptions): Promise<OidcProvider> {
  let generation = 1;
  let keys: JWK[] = [await signingKey(`key-${generation}`)];
  let port = 0;
  let issuer = "";
  let server: Server | undefined;
  let discovery = 0;
  let jwks = 0;

  async function start() {
    if (server) return;
    const listening = createServer();
    listening.listen(port, "127.0.0.1");
    await new Promise((resolve, reject) => {
      listening.once("listening", resolve);
      listening.once("error", reject);
    });
    // The issuer must be the origin it is served on, so the first start picks the port.
    port = (listening.address() as AddressInfo).port;
    issuer = `http://127.0.0.1:${port}`;
    const handle = new Provider(issuer, configuration(keys, options)).callback();
    listening.on("request", (req, res) => {
      const path = new URL(req.url ?? "/", issuer).pathname;
      if (path === DISCOVERY_PATH) discovery += 1;
      if (path === JWKS_PATH) jwks += 1;
      // The test's own token requests: never on a kept-alive connection a restart has cut.
      if (path === TOKEN_PATH) res.setHeader("Connection", "close");
      handle(req, res);
    });
    server = listening;
  }

  async function stop() {
    if (!server) return;
    const closing = server;
    server = undefined;
    const closed = new Promise((resolve) => closing.close(resolve));
    // Keep-alive connections from workerd would otherwise keep the old keys served.
    closing.closeAllConnections();
    await closed;
  }

  async function restart(next: JWK[]) {
    await stop();
    keys = next;
    await start();
  }

  await start();
  return {
    get issuer() {
      return issuer;
    },
    kids: () => keys.map((key) => key.kid!),
    async token(user, resource) {
      const response = await fetch(`${issuer}${TOKEN_PATH}`, {
        method: "POST",
        headers: {
          Authorization: `Basic ${btoa(`${user}:${secretOf(user)}`)}`,
          "Content-Type": "application/x-www-form-urlencoded",
        },
        body: new URLSearchParams({ grant_type: "client_credentials", resource }),
      });
      const body = await response.text();
      if (response.status !== 200) throw new Error(`token endpoint answered ${response.status}: ${body}`);
      return (JSON.parse(body) as { access_token: string }).access_token;
    },
    fetches: () => ({ discovery, jwks }),
    rotate: async () => restart([await signingKey(`key-${(generation += 1)}`), ...keys]),
    retireOldKeys: () => restart(keys.slice(0, 1)),
    stop,
    start,
  };
}
