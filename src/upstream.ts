/**
 * How the worker calls out (identity provider, Netlify, Ably) and bounds every wait: one fetch
 * with a deadline and no redirects, its failures sorted into a few words for a problem's detail,
 * and a deadline for any other promise (KV, a request joining another's ask).
 */

/** Why an upstream call failed, in words a problem detail can carry: never a URL's secret or a token. */
export type Failure = (why: string) => Error;

/**
 * GETs or POSTs `url` with a deadline of `timeoutMs` for the answer and its body, following no
 * redirect (a redirect is an answer like any other non-expected status). Resolves with the
 * response when its status is one of `accept`; the body of any other is dropped and the call
 * fails as `fail("HTTP <status>")`, unless `onStatus` answers for that status first. A timeout is
 * `fail("timed out")`, anything else on the way `fail("network error")`.
 */
export async function callUpstream(
  url: string,
  init: RequestInit & { readonly timeoutMs: number; readonly accept: readonly number[] },
  fail: Failure,
  onStatus?: (status: number) => Error | undefined,
): Promise<Response> {
  let response: Response;
  try {
    response = await fetch(url, { ...init, redirect: "manual", signal: AbortSignal.timeout(init.timeoutMs) });
  } catch (error) {
    throw fail(isTimeout(error) ? "timed out" : "network error");
  }
  if (init.accept.includes(response.status)) return response;
  await response.body?.cancel();
  throw onStatus?.(response.status) ?? fail(`HTTP ${response.status}`);
}

/** The JSON body of an upstream answer; a body that is not JSON, or stalls past the deadline, is `fail`. */
export async function jsonBody<T>(response: Response, fail: Failure): Promise<T> {
  try {
    return await response.json<T>();
  } catch (error) {
    throw fail(isTimeout(error) ? "timed out" : "not JSON");
  }
}

/** `promise`, or a rejection with `timedOut()` after `ms`. */
export function withTimeout<T>(promise: Promise<T>, ms: number, timedOut: () => Error): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(timedOut()), ms);
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

const isTimeout = (error: unknown) => (error as Error | null)?.name === "TimeoutError";
