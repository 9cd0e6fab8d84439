/**
 * The endpoint users would otherwise write, for the benchmark to compare against: Node + Express +
 * jsonwebtoken + jwks-rsa, doing the worker's work on its happy path. Verify the RS256 identity
 * token against the provider's JWKS (jwks-rsa's cache and rate limit on, as its README suggests),
 * look the clientId up in an in-memory ban list, sign the Ably JWT (HS256, the same header and
 * claims), log one JSON line per request as the worker does.
 *
 * Configured by environment: JWKS_URL, JWT_ISSUER, JWT_AUDIENCE, ABLY_API_KEY. Listens on
 * 127.0.0.1, on PORT or a free port, and prints `listening <port>` once ready.
 */
import { createPublicKey, createSecretKey } from "node:crypto";
import express from "express";
import jwt from "jsonwebtoken";
import jwksRsa from "jwks-rsa";

const { PORT = "0", JWKS_URL, JWT_ISSUER, JWT_AUDIENCE, ABLY_API_KEY } = process.env;
const [keyName, secretText] = ABLY_API_KEY.split(":");
const secret = createSecretKey(Buffer.from(secretText)); // imported once
const TOKEN_TTL_SECONDS = 3_600; // the worker's default ABLY_TOKEN_TTL_SECONDS

const jwks = jwksRsa({
  jwksUri: JWKS_URL,
  cache: true,
  cacheMaxAge: 600_000,
  rateLimit: true,
  jwksRequestsPerMinute: 10,
});
const bans = new Map(); // clientId → reason
const imported = new Map(); // kid → KeyObject: a tutorial's endpoint passes the PEM, parsed per request

function signingKey(header, callback) {
  jwks.getSigningKey(header.kid, (error, key) => {
    if (error) return callback(error);
    if (!imported.has(header.kid)) imported.set(header.kid, createPublicKey(key.getPublicKey()));
    callback(null, imported.get(header.kid));
  });
}

const app = express();
app.disable("x-powered-by");

app.get("/auth", (req, res) => {
  const started = Date.now();
  const done = (status, outcome, clientId) =>
    console.log(
      JSON.stringify({ method: req.method, path: req.path, status, outcome, clientId, ms: Date.now() - started }),
    );
  const bearer = /^Bearer +(\S+)$/i.exec(req.get("authorization") ?? "");
  if (!bearer) {
    res.status(401).json({ error: "identity-token-missing" });
    return done(401, "identity-token-missing");
  }
  const options = { algorithms: ["RS256", "ES256"], issuer: JWT_ISSUER, audience: JWT_AUDIENCE };
  jwt.verify(bearer[1], signingKey, options, (error, claims) => {
    if (error) {
      res.status(401).json({ error: "identity-token-invalid", detail: error.message });
      return done(401, "identity-token-invalid");
    }
    const clientId = claims.sub;
    if (bans.has(clientId)) {
      res.status(403).json({ error: "user-banned", detail: bans.get(clientId) });
      return done(403, "user-banned", clientId);
    }
    const now = Math.floor(Date.now() / 1000);
    const capability = { [`private:${clientId}`]: ["history", "presence", "publish", "subscribe"] };
    const ablyJwt = jwt.sign(
      {
        "x-ably-capability": JSON.stringify(capability),
        "x-ably-clientId": clientId,
        iat: now,
        exp: now + TOKEN_TTL_SECONDS,
      },
      secret,
      { algorithm: "HS256", keyid: keyName, header: { typ: "JWT" } },
    );
    res.set({ "Content-Type": "application/jwt", "Cache-Control": "no-store" }).send(ablyJwt);
    done(200, "issued", clientId);
  });
});

const server = app.listen(Number(PORT), "127.0.0.1", () => {
  // stderr: stdout carries the request log, which the benchmark drains unread.
  console.error(`listening ${server.address().port}`);
});
