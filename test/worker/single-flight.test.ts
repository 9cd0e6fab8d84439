/**
 * One ask of an upstream at a time (src/single-flight.ts): requests share it, and a request that
 * joins an ask which never settles (its starter's request was cancelled, taking the fetch with it)
 * gives up after UPSTREAM_TIMEOUT_MS instead of hanging. Timers are faked, so the bound is exact.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import { UPSTREAM_TIMEOUT_MS } from "../../src/constants";
import { forgetFlights, singleFlight } from "../../src/single-flight";

const timedOut = () => new Error("timed out");

describe("single flight", () => {
  afterEach(() => {
    vi.useRealTimers();
    forgetFlights();
  });

  it("shares one ask among the requests that need it", async () => {
    let asks = 0;
    const ask = () => singleFlight("shared", async () => ++asks, timedOut);
    expect(await Promise.all([ask(), ask(), ask()])).toEqual([1, 1, 1]);
    expect(asks).toBe(1);
    expect(await ask()).toBe(2); // settled asks are not kept
  });

  it("lets a joiner of an ask that never settles fail after exactly UPSTREAM_TIMEOUT_MS, and the next request ask afresh", async () => {
    vi.useFakeTimers();
    const never = new Promise<string>(() => {});
    void singleFlight("hung", () => never, timedOut);
    let outcome: unknown = "pending";
    const joiner = singleFlight("hung", () => Promise.resolve("second ask"), timedOut).then(
      (value) => (outcome = value),
      (error: Error) => (outcome = error.message),
    );
    await vi.advanceTimersByTimeAsync(UPSTREAM_TIMEOUT_MS - 1);
    expect(outcome).toBe("pending");
    await vi.advanceTimersByTimeAsync(1);
    await joiner;
    expect(outcome).toBe("timed out");
    expect(await singleFlight("hung", () => Promise.resolve("asked again"), timedOut)).toBe("asked again");
  });
});
