/**
 * A reference for what a stored ban value means, written from docs/operations.md ("Banning users")
 * and sharing no code with src/: a present key bans; only a JSON object whose `until` is an ISO 8601
 * date and time with its zone (`2026-12-01T00:00:00Z`, `…+02:00`) that has passed lifts it; anything
 * else (no JSON, no object, a date alone, a number, prose) bans indefinitely. Slow and plain.
 */

const digits = (text: string, from: number, count: number) => {
  for (let i = from; i < from + count; i++) if (text[i] === undefined || text[i]! < "0" || text[i]! > "9") return false;
  return true;
};

/** The end an `until` names, or undefined when it names none (the ban then holds). */
export function endOf(until: unknown): number | undefined {
  if (typeof until !== "string") return undefined;
  // YYYY-MM-DDTHH:MM
  if (!(digits(until, 0, 4) && until[4] === "-" && digits(until, 5, 2) && until[7] === "-" && digits(until, 8, 2)))
    return undefined;
  if (!(until[10] === "T" && digits(until, 11, 2) && until[13] === ":" && digits(until, 14, 2))) return undefined;
  let at = 16;
  if (until[at] === ":" && digits(until, at + 1, 2)) {
    at += 3;
    if (until[at] === ".") {
      let end = at + 1;
      while (digits(until, end, 1)) end++;
      if (end === at + 1) return undefined;
      at = end;
    }
  }
  const zone = until.slice(at);
  const zoned =
    zone === "Z" ||
    ((zone[0] === "+" || zone[0] === "-") &&
      digits(zone, 1, 2) &&
      zone[3] === ":" &&
      digits(zone, 4, 2) &&
      zone.length === 6);
  if (!zoned) return undefined;
  const ms = new Date(until).getTime();
  return Number.isNaN(ms) ? undefined : ms;
}

/** Whether a stored value bans at `now` (ms). */
export function bans(value: string, now: number): boolean {
  let record: unknown;
  try {
    record = JSON.parse(value);
  } catch {
    return true;
  }
  if (typeof record !== "object" || record === null || Array.isArray(record)) return true;
  const end = endOf((record as Record<string, unknown>).until);
  return end === undefined || end > now;
}
