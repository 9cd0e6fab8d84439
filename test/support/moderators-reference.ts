/**
 * A reference for the moderator property tests, written from docs/operations.md's rules for MODERATORS and
 * sharing no code with src/: no regular expression, no case mapping but its own. Slow and plain.
 *
 * MODERATORS is split at commas, each entry trimmed of white space, empty entries dropped; what is
 * left must be at least one entry, each with exactly one `@`, something after it, and no white
 * space: an address (`alice@example.com`) or, with nothing before the `@`, a domain (`@example.com`).
 * An email is a moderator's when, A to Z read as a to z and nothing else changed, it has exactly one
 * `@` with something before it, and it equals an address entry or its part from the `@` on equals a
 * domain entry; and it fits in a ban record: at most 320 bytes stored (JSON-escaped UTF-8).
 */
import { jsonEscapedBytes } from "./ably-reference.ts";

/** ECMAScript's white space and line terminators: what String.prototype.trim removes. */
const WHITE = [
  "\t",
  "\n",
  "\v",
  "\f",
  "\r",
  " ",
  "\u00a0",
  "\u1680",
  "\u2000",
  "\u2001",
  "\u2002",
  "\u2003",
  "\u2004",
  "\u2005",
  "\u2006",
  "\u2007",
  "\u2008",
  "\u2009",
  "\u200a",
  "\u2028",
  "\u2029",
  "\u202f",
  "\u205f",
  "\u3000",
  "\ufeff",
];

function trimmed(text: string): string {
  let start = 0;
  let end = text.length;
  while (start < end && WHITE.includes(text[start]!)) start++;
  while (end > start && WHITE.includes(text[end - 1]!)) end--;
  return text.slice(start, end);
}

function ats(text: string): number {
  let n = 0;
  for (const ch of text) if (ch === "@") n++;
  return n;
}

/** A to Z as a to z; every other character as it is. */
export function folded(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    out += unit >= 65 && unit <= 90 ? String.fromCharCode(unit + 32) : text[i];
  }
  return out;
}

/** The entries of a MODERATORS value, or undefined when the worker must refuse the configuration. */
export function moderatorEntries(raw: string): string[] | undefined {
  const entries = raw
    .split(",")
    .map(trimmed)
    .filter((entry) => entry !== "");
  if (entries.length === 0) return undefined;
  for (const entry of entries) {
    if (ats(entry) !== 1 || entry.endsWith("@")) return undefined;
    for (const ch of entry) if (WHITE.includes(ch)) return undefined;
  }
  return entries;
}

/** Whether `email` is a moderator's under the valid MODERATORS `entries`. */
export function isModerator(email: string, entries: readonly string[]): boolean {
  const mine = folded(email);
  if (ats(mine) !== 1 || mine.startsWith("@") || jsonEscapedBytes(email) > 320) return false;
  const domain = mine.slice(mine.indexOf("@"));
  return entries.some((entry) => {
    const theirs = folded(entry);
    return theirs.startsWith("@") ? theirs === domain : theirs === mine;
  });
}
