/**
 * GET/POST /auth, read top to bottom as the endpoint's specification: what a caller with a valid
 * identity token gets, how token parameters narrow it, and what a banned user sees.
 */
import { describe, expect, it } from "vitest";
import { PROBLEM_TYPE_PREFIX } from "../../src/errors";
import { bodyOf, getToken, keys, postToken, problemOf, testEnv, token, verifyAsAbly } from "./helpers";

describe("a verified caller gets an Ably JWT", () => {
  it("answers 200 with the bare JWT as application/jwt, never cached", async () => {
    const res = await getToken(await token());
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/jwt");
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(await bodyOf(res)).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
  });

  it("signs it as Ably checks it: HS256 by the key secret, kid, iat/exp in seconds, clientId from sub", async () => {
    const claims = await verifyAsAbly(await bodyOf(await getToken(await token({ claims: { sub: "user-42" } }))));
    expect(claims.clientId).toBe("user-42");
    expect(claims.ttl).toBe(3600);
    expect(Math.abs(claims.iat - Date.now() / 1000)).toBeLessThan(5);
  });

  it("grants the least-privilege default capability: the user's own private channel", async () => {
    const claims = await verifyAsAbly(await bodyOf(await getToken(await token({ claims: { sub: "bob" } }))));
    expect(claims.capability).toEqual({ "private:bob": ["history", "presence", "publish", "subscribe"] });
  });

  it("grants ABLY_CAPABILITY with {clientId} replaced by the verified clientId", async () => {
    const res = await getToken(
      await token({ claims: { sub: "carol" } }),
      "",
      {},
      {
        ABLY_CAPABILITY: '{"chat:*":["subscribe"],"inbox:{clientId}":["*"]}',
      },
    );
    expect((await verifyAsAbly(res)).capability).toEqual({
      "chat:*": ["subscribe"],
      "inbox:carol": ["*"],
    });
  });

  it("takes the clientId from the claim named by CLIENT_ID_CLAIM", async () => {
    const res = await getToken(await token({ claims: { uid: "u-7" } }), "", {}, { CLIENT_ID_CLAIM: "uid" });
    expect((await verifyAsAbly(res)).clientId).toBe("u-7");
  });

  it("accepts ES256 identity tokens by default, as well as RS256", async () => {
    const res = await getToken(await token({ key: keys.ec }));
    expect(res.status).toBe(200);
  });

  it("issues for ABLY_TOKEN_TTL_SECONDS", async () => {
    const res = await getToken(await token(), "", {}, { ABLY_TOKEN_TTL_SECONDS: "600" });
    expect((await verifyAsAbly(res)).ttl).toBe(600);
  });

  it("with TOKEN_EXPIRES_WITH_IDENTITY, never outlives the identity token", async () => {
    const exp = Math.floor(Date.now() / 1000) + 120;
    const res = await getToken(await token({ claims: { exp } }), "", {}, { TOKEN_EXPIRES_WITH_IDENTITY: "true" });
    expect((await verifyAsAbly(res)).exp).toBe(exp);
  });
});

describe("token parameters may narrow what is issued, never widen it", () => {
  it("lives min(ttl / 1000, configured) seconds", async () => {
    const short = await getToken(await token(), "?ttl=60000");
    expect((await verifyAsAbly(short)).ttl).toBe(60);
    const long = await getToken(await token(), `?ttl=${1000 * 86_400 * 30}`);
    expect((await verifyAsAbly(long)).ttl).toBe(3600);
  });

  it("intersects the requested capability with the grant", async () => {
    const capability = encodeURIComponent('{"*":["*"]}');
    const res = await getToken(await token({ claims: { sub: "dave" } }), `?capability=${capability}`);
    expect((await verifyAsAbly(res)).capability).toEqual({
      "private:dave": ["history", "presence", "publish", "subscribe"],
    });
    const narrow = encodeURIComponent('{"private:dave":["subscribe"]}');
    const res2 = await getToken(await token({ claims: { sub: "dave" } }), `?capability=${narrow}`);
    expect((await verifyAsAbly(res2)).capability).toEqual({ "private:dave": ["subscribe"] });
  });

  it("refuses with 403 a capability with nothing in common with the grant", async () => {
    const res = await getToken(await token(), `?capability=${encodeURIComponent('{"admin":["publish"]}')}`);
    expect(res.status).toBe(403);
    expect((await problemOf(res)).type).toBe(`${PROBLEM_TYPE_PREFIX}capability-empty`);
  });

  it("accepts its own clientId and refuses another one, or the wildcard, with 403", async () => {
    expect((await getToken(await token(), "?clientId=alice")).status).toBe(200);
    for (const clientId of ["mallory", "*"]) {
      const res = await getToken(await token(), `?clientId=${encodeURIComponent(clientId)}`);
      expect(res.status).toBe(403);
      expect((await problemOf(res)).type).toBe(`${PROBLEM_TYPE_PREFIX}client-id-mismatch`);
    }
  });

  it("reads POST parameters from the form body, as ably-js sends them with authMethod POST", async () => {
    const capability = encodeURIComponent('{"private:alice":["subscribe"]}');
    const res = await postToken(await token(), `ttl=120000&capability=${capability}&rnd=123`);
    expect(res.status).toBe(200);
    const claims = await verifyAsAbly(res);
    expect(claims.ttl).toBe(120);
    expect(claims.capability).toEqual({ "private:alice": ["subscribe"] });
  });

  it("ignores token parameters in the query string of a POST", async () => {
    const res = await postToken(await token(), "", undefined, "/auth?ttl=5000");
    expect((await verifyAsAbly(res)).ttl).toBe(3600);
  });

  it("refuses a POST body that is not form-encoded with 415", async () => {
    const res = await postToken(await token(), '{"ttl":1000}', "application/json");
    expect(res.status).toBe(415);
  });

  it("ignores parameters it does not know, such as the browser's rnd", async () => {
    const res = await getToken(await token(), "?rnd=0.123&timestamp=1&nonce=x&foo=bar");
    expect(res.status).toBe(200);
  });
});

describe("the ban list in KV", () => {
  const ban = (clientId: string, value: string) => testEnv.BANS.put(clientId, value);

  it("refuses a banned user with 403, so ably-js stops retrying, and shows the reason", async () => {
    await ban("eve", JSON.stringify({ reason: "spamming #general ✋" }));
    const res = await getToken(await token({ claims: { sub: "eve" } }));
    expect(res.status).toBe(403);
    // Ably's own error headers, which ably-js reads its error message from (ASCII only).
    expect(res.headers.get("x-ably-errorcode")).toBe("40300");
    expect(res.headers.get("x-ably-errormessage")).toBe("You are banned: spamming #general ?");
    const problem = await problemOf(res);
    expect(problem.type).toBe(`${PROBLEM_TYPE_PREFIX}user-banned`);
    expect(problem.detail).toContain("spamming #general");
  });

  it("checks on every issuance: a user banned while holding a valid identity token is refused next time", async () => {
    const jwt = await token({ claims: { sub: "frank" } });
    expect((await getToken(jwt)).status).toBe(200);
    await ban("frank", "");
    expect((await getToken(jwt)).status).toBe(403);
    await testEnv.BANS.delete("frank");
    expect((await getToken(jwt)).status).toBe(200);
  });

  it.each([
    ["an empty value", ""],
    ["a plain string", "yes"],
    ["JSON that is not an object", "true"],
    ["an until that cannot be read", '{"until":"next tuesday"}'],
    ["an until in the future", JSON.stringify({ until: new Date(Date.now() + 60_000).toISOString() })],
  ])("bans for %s (fail closed)", async (_name, value) => {
    const clientId = `user-${crypto.randomUUID()}`;
    await ban(clientId, value);
    expect((await getToken(await token({ claims: { sub: clientId } }))).status).toBe(403);
  });

  it("does not ban once until has passed", async () => {
    await ban("grace", JSON.stringify({ reason: "cool-off", until: "2020-01-01T00:00:00Z" }));
    expect((await getToken(await token({ claims: { sub: "grace" } }))).status).toBe(200);
  });

  it("answers 503 with Retry-After when the ban list cannot be read, and issues nothing", async () => {
    const broken = { get: () => Promise.reject(new Error("KV down")) };
    const res = await getToken(await token(), "", {}, { BANS: broken });
    expect(res.status).toBe(503);
    expect(res.headers.get("retry-after")).toBe("10");
    expect((await problemOf(res)).type).toBe(`${PROBLEM_TYPE_PREFIX}ban-list-unavailable`);
  });
});
