/**
 * Ably capabilities: parsing, the `{clientId}` template, and intersection under Ably's wildcard
 * rules. Pure functions; nothing here touches the request or the environment.
 *
 * A capability maps a resource (channel name or pattern) to operations. Patterns Ably defines:
 * `*` (every channel without a `[qualifier]`), `namespace:*` (every channel under `namespace:`),
 * `[*]*` (every channel, qualified ones included) and the operation `*` (every operation).
 */
import { isPlainObject } from "../validate";

/** Resource name → operations. Frozen, with resources and operations sorted (Ably's canonical form). */
export type Capability = Readonly<Record<string, readonly string[]>>;

/** The placeholder in a granted resource name that stands for the verified clientId. */
const CLIENT_ID_PLACEHOLDER = "{clientId}";

/** Whether a resource name is a template: it holds `{clientId}`. */
export const isTemplate = (resource: string): boolean => resource.includes(CLIENT_ID_PLACEHOLDER);

const ANY_OPERATION = "*";

/** Thrown by `parseCapability`; the message says what is wrong without echoing the input. */
export class CapabilityError extends Error {
  override name = "CapabilityError";
}

/**
 * Parses Ably's capability JSON: an object whose keys are non-empty resource names and whose
 * values are non-empty arrays of non-empty operation strings. Throws `CapabilityError`.
 */
export function parseCapability(json: string): Capability {
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new CapabilityError("is not valid JSON");
  }
  if (!isPlainObject(value)) {
    throw new CapabilityError('must be a JSON object such as {"channel":["subscribe"]}');
  }
  const entries = Object.entries(value);
  for (const [resource, operations] of entries) {
    if (resource === "") throw new CapabilityError("has an empty resource name");
    if (
      !Array.isArray(operations) ||
      operations.length === 0 ||
      !operations.every((op) => typeof op === "string" && op !== "")
    ) {
      throw new CapabilityError("maps a resource to something other than a non-empty array of operation names");
    }
  }
  return canonical(entries as [string, string[]][]);
}

/**
 * The capability with `{clientId}` in its resource names replaced by `clientId`. Split and joined,
 * never `replace`: a replacement string gives `$'`, `$&` and `$$` a meaning, and a user id may hold them.
 */
export function instantiate(template: Capability, clientId: string): Capability {
  return canonical(
    Object.entries(template).map(([resource, ops]) => [resource.split(CLIENT_ID_PLACEHOLDER).join(clientId), [...ops]]),
  );
}

/**
 * Why a granted resource name is not a usable template, or undefined. `{clientId}` may appear at
 * most once, as a whole `:` segment (`private:{clientId}`, `dm:{clientId}:*`): then a clientId that
 * is one segment after its provider's prefix (client-id.ts) can never reach into another user's
 * channels, which `user-{clientId}` or `{clientId}x:*` would allow (`a` would cover `ax:…`).
 */
export function templateFault(resource: string): string | undefined {
  const parts = resource.split(CLIENT_ID_PLACEHOLDER);
  if (parts.length === 1) return undefined;
  if (parts.length > 2) return `uses ${CLIENT_ID_PLACEHOLDER} more than once in ${JSON.stringify(resource)}`;
  const [before, after] = parts as [string, string];
  if ((before === "" || before.endsWith(":")) && (after === "" || after.startsWith(":"))) return undefined;
  return `must have ${CLIENT_ID_PLACEHOLDER} as a whole segment between colons in ${JSON.stringify(resource)}`;
}

/**
 * Two templated resource names whose instances for two different users could name the same
 * channel, or undefined. Instances of one template never meet (see templateFault); two templates
 * are safe when `{clientId}` sits at the same segment index in both, or when a literal segment
 * before either placeholder tells their channels apart (`private:{clientId}`, `org:acme:{clientId}`).
 * Anything else (`x:{clientId}` and `{clientId}:y`: users `y` and `x` both get `x:y`) is refused.
 */
export function templateClash(resources: readonly string[]): [string, string] | undefined {
  const heads = [...new Set(resources)]
    .filter(isTemplate)
    .map((r) => ({ resource: r, segments: aroundPlaceholder(r).before }));
  for (const [i, a] of heads.entries()) {
    for (const b of heads.slice(i + 1)) {
      if (a.segments.length === b.segments.length) continue;
      const told = a.segments.some(
        (s, k) => k < b.segments.length && s !== "*" && b.segments[k] !== "*" && s !== b.segments[k],
      );
      if (!told) return [a.resource, b.resource];
    }
  }
  return undefined;
}

/**
 * A template and a literal channel name (no wildcard segment, no qualifier) one of its instances
 * could be, or undefined. With `private:{clientId}` and `private:announcements` both granted, a
 * user whose id is `announcements` would get the template's operations on the shared channel.
 */
export function templateCapture(resources: readonly string[]): [string, string] | undefined {
  const names = [...new Set(resources)];
  const literals = names.filter((r) => !isTemplate(r) && !r.startsWith("[") && !r.split(":").includes("*"));
  for (const template of names.filter(isTemplate)) {
    const { before, after } = aroundPlaceholder(template);
    for (const literal of literals) {
      const segments = literal.split(":");
      if (segments.length < before.length + 1 + after.length) continue;
      const fits = (pattern: string[], at: number) => pattern.every((s, i) => s === "*" || s === segments[at + i]);
      if (fits(before, 0) && fits(after, segments.length - after.length)) return [template, literal];
    }
  }
  return undefined;
}

/** The whole segments before and after a template's placeholder (see templateFault): `dm:{clientId}:*` → [dm], [*]. */
function aroundPlaceholder(template: string): { before: string[]; after: string[] } {
  const [head = "", tail = ""] = template.split(CLIENT_ID_PLACEHOLDER);
  return {
    before: head === "" ? [] : head.split(":").slice(0, -1),
    after: tail === "" ? [] : tail.split(":").slice(1),
  };
}

/** Everything any of `capabilities` allows: resources merged, operations united. */
export function union(...capabilities: Capability[]): Capability {
  return canonical(
    capabilities.flatMap((c) => Object.entries(c).map(([r, ops]) => [r, [...ops]] as [string, string[]])),
  );
}

/**
 * The part of `requested` that `granted` allows: for each pair of resources, the names both match
 * (see `meet`) with the operations both allow. Exactly what both allow, never wider than `granted`;
 * empty (`{}`) when nothing is left.
 */
export function intersect(requested: Capability, granted: Capability): Capability {
  const result: [string, string[]][] = [];
  for (const [want, wantOps] of Object.entries(requested)) {
    for (const [have, haveOps] of Object.entries(granted)) {
      const resource = meet(want, have);
      if (resource === undefined) continue;
      const ops = intersectOperations(wantOps, haveOps);
      if (ops.length > 0) result.push([resource, ops]);
    }
  }
  return canonical(result);
}

/** Ably's canonical JSON for a capability (sorted, as ably-js sends it). */
export function stringifyCapability(capability: Capability): string {
  return JSON.stringify(capability);
}

/**
 * The resource name matching exactly the names both `a` and `b` match, or undefined when none.
 * Ably's forms: `[*]*` matches every name; `[q]*` every name qualified `[q]`; any other name that
 * starts with `[` only itself. An unqualified name is `:` segments, where `*` as a whole segment
 * matches one segment, or, as the last, one or more (`*` alone: every unqualified channel).
 */
function meet(a: string, b: string): string | undefined {
  if (a === b || b === ANY_RESOURCE) return a;
  if (a === ANY_RESOURCE) return b;
  const qa = a.startsWith("[");
  const qb = b.startsWith("[");
  if (qa || qb) {
    if (isQualifierWildcard(a) && qb && b.startsWith(a.slice(0, -1))) return b;
    if (isQualifierWildcard(b) && qa && a.startsWith(b.slice(0, -1))) return a;
    return undefined;
  }
  const [x, y] = [a.split(":"), b.split(":")];
  // Let x be the one whose trailing wildcard (if any) comes first: it ends the shared part.
  const [short, long] = endsOpen(x) && (!endsOpen(y) || x.length <= y.length) ? [x, y] : [y, x];
  if (endsOpen(short) ? long.length < short.length : long.length !== short.length) return undefined;
  const fixed = endsOpen(short) ? short.length - 1 : short.length;
  const segments: string[] = [];
  for (let i = 0; i < fixed; i++) {
    const s = short[i]!;
    const l = long[i]!;
    if (s !== l && s !== "*" && l !== "*") return undefined;
    segments.push(s === "*" ? l : s);
  }
  return [...segments, ...long.slice(fixed)].join(":");
}

const ANY_RESOURCE = "[*]*";
const endsOpen = (segments: readonly string[]) => segments[segments.length - 1] === "*";
const isQualifierWildcard = (name: string) => /^\[[^\]]+\]\*$/.test(name) && name !== ANY_RESOURCE;

function intersectOperations(a: readonly string[], b: readonly string[]): string[] {
  if (a.includes(ANY_OPERATION)) return [...b];
  if (b.includes(ANY_OPERATION)) return [...a];
  return a.filter((op) => b.includes(op));
}

/** Merges duplicate resources (union of operations, `*` absorbing the rest) and sorts. */
function canonical(entries: [string, string[]][]): Capability {
  const merged = new Map<string, Set<string>>();
  for (const [resource, ops] of entries) {
    const set = merged.get(resource) ?? new Set<string>();
    for (const op of ops) set.add(op);
    merged.set(resource, set);
  }
  // fromEntries defines own properties, so a resource named "__proto__" stays a resource.
  return Object.freeze(
    Object.fromEntries(
      [...merged.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([resource, ops]) => [
          resource,
          Object.freeze(ops.has(ANY_OPERATION) ? [ANY_OPERATION] : [...ops].sort()),
        ]),
    ),
  );
}
