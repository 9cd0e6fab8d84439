/**
 * Runs around every worker test file: captures every line the worker logs (quietly) and, after the
 * file, checks that no log line and no error body holds an identity token, a token's signature,
 * the Ably key's secret, or an Authorization header. Tests that inspect logs themselves spy on
 * console over this capture. After every test, no ban revocation is left planned: an alarm would
 * otherwise fire into a later test (alarms ignore the pool's per-file storage isolation).
 */
import { afterAll, afterEach } from "vitest";
import { clearBanRevocations, seen, testEnv } from "./helpers";

const lines: string[] = [];
for (const level of ["log", "info", "warn", "error", "debug"] as const) {
  // The worker logs objects (Workers Logs indexes their fields): as JSON, every field is searched.
  console[level] = (...args: unknown[]) =>
    void lines.push(args.map((arg) => (typeof arg === "string" ? arg : JSON.stringify(arg))).join(" "));
}

afterEach(clearBanRevocations);

afterAll(() => {
  const secret = String(testEnv.ABLY_API_KEY).split(":")[1]!;
  const haystacks = [...lines, ...seen.bodies];
  const needles = [secret, ...seen.secrets, ...seen.identityTokens.flatMap((jwt) => [jwt, jwt.split(".")[2]!])];
  for (const text of haystacks) {
    for (const needle of needles) {
      if (needle.length > 8 && text.includes(needle)) throw new Error(`a secret leaked into: ${text.slice(0, 200)}`);
    }
    // A header value: a Bearer or Basic credential, not the word in a detail such as "send Authorization: Bearer <token>".
    if (/(bearer|basic)\s+[A-Za-z0-9+/_-]{12,}/i.test(text))
      throw new Error(`a credential leaked into: ${text.slice(0, 200)}`);
  }
});
