/**
 * The part of oidc-provider 9 that test/support/oidc.ts uses. The package ships no types (they
 * live in @types/oidc-provider, which is not installed), so without this it would be `any`.
 */
declare module "oidc-provider" {
  import type { IncomingMessage, ServerResponse } from "node:http";

  export interface ResourceServer {
    scope: string;
    audience?: string;
    accessTokenTTL?: number;
    accessTokenFormat?: "opaque" | "jwt";
  }

  export interface ClientMetadata {
    client_id: string;
    client_secret?: string;
    grant_types?: string[];
    response_types?: string[];
    redirect_uris?: string[];
  }

  export interface Configuration {
    clients?: ClientMetadata[];
    jwks?: { keys: object[] };
    routes?: Record<string, string>;
    ttl?: Record<string, number>;
    features?: {
      clientCredentials?: { enabled: boolean };
      devInteractions?: { enabled: boolean };
      resourceIndicators?: {
        enabled: boolean;
        getResourceServerInfo?: (ctx: unknown, resource: string, client: unknown) => ResourceServer;
      };
    };
  }

  export class Provider {
    constructor(issuer: string, configuration?: Configuration);
    readonly issuer: string;
    /** A Node request listener: `http.createServer(provider.callback())`. */
    callback(): (req: IncomingMessage, res: ServerResponse) => void;
  }

  export namespace errors {
    export class InvalidTarget extends Error {
      constructor(description?: string);
    }
  }
}
