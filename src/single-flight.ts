/**
 * One ask of an upstream at a time per isolate, shared by the requests that need its answer. Owns
 * nothing but the table of asks in flight; callers say what an ask is and what a timeout means.
 */
import { UPSTREAM_TIMEOUT_MS } from "./constants";
import { withTimeout } from "./upstream";

const inFlight = new Map<string, Promise<unknown>>();

/**
 * The ask of `id` in flight, started with `start` if there is none. A request that joins another's
 * waits at most UPSTREAM_TIMEOUT_MS, then fails with `timedOut()`: on Workers a cancelled request
 * (its client went away) takes its pending fetch with it, and a promise that never settles must not
 * hang every request that joined it (jose #509).
 */
export function singleFlight<T>(id: string, start: () => Promise<T>, timedOut: () => Error): Promise<T> {
  const running = inFlight.get(id) as Promise<T> | undefined;
  if (running) return joined(running, id, timedOut);
  const started: Promise<T> = start().finally(() => {
    if (inFlight.get(id) === started) inFlight.delete(id);
  });
  inFlight.set(id, started);
  return started;
}

function joined<T>(running: Promise<T>, id: string, timedOut: () => Error): Promise<T> {
  return withTimeout(running, UPSTREAM_TIMEOUT_MS, () => {
    if (inFlight.get(id) === running) inFlight.delete(id); // the next request starts afresh
    return timedOut();
  });
}

/** Forgets every ask in flight, as a fresh isolate starts. For tests. */
export function forgetFlights(): void {
  inFlight.clear();
}
