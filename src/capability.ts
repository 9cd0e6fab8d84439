/**
 * Ably capabilities: parsing, the `{clientId}` template, and intersection under Ably's wildcard
 * rules. Pure functions; nothing here touches the request or the environment.
 *
 * A capability maps a resource (channel name or pattern) to operations. Patterns Ably defines:
 * `*` (every channel without a `[qualifier]`), `namespace:*` (every channel under `namespace:`),
 * `[*]*` (every channel, qualified ones included) and the operation `*` (every operation).
 */

/** Resource name → operations. Frozen, with resources and operations sorted (Ably's canonical form). */
export type Capability = Readonly<Record<string, readonly string[]>>;

/** The placeholder in a granted resource name that stands for the verified clientId. */
export const CLIENT_ID_PLACEHOLDER = "{clientId}";

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
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
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
      throw new CapabilityError(
        "maps a resource to something other than a non-empty array of operation names",
      );
    }
  }
  return canonical(entries as [string, string[]][]);
}

/** The capability with every `{clientId}` in its resource names replaced by `clientId`. */
export function instantiate(template: Capability, clientId: string): Capability {
  return canonical(
    Object.entries(template).map(([resource, ops]) => [
      resource.replaceAll(CLIENT_ID_PLACEHOLDER, clientId),
      [...ops],
    ]),
  );
}

/** Everything any of `capabilities` allows: resources merged, operations united. */
export function union(...capabilities: Capability[]): Capability {
  return canonical(capabilities.flatMap((c) => Object.entries(c).map(([r, ops]) => [r, [...ops]] as [string, string[]])));
}

/**
 * The part of `requested` that `granted` allows: for each pair of resources where one pattern
 * covers the other, the narrower resource with the operations both allow. Never wider than
 * `granted`; empty (`{}`) when nothing is left.
 */
export function intersect(requested: Capability, granted: Capability): Capability {
  const result: [string, string[]][] = [];
  for (const [want, wantOps] of Object.entries(requested)) {
    for (const [have, haveOps] of Object.entries(granted)) {
      const resource = covers(have, want) ? want : covers(want, have) ? have : undefined;
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
 * Whether every channel matched by `pattern` is also matched by `wider`. A pattern form not listed
 * at the top of this file only covers itself: unknown forms are never treated as wildcards.
 */
function covers(wider: string, pattern: string): boolean {
  if (wider === pattern || wider === "[*]*") return true;
  if (pattern.startsWith("[")) return false;
  if (wider === "*") return true;
  return wider.endsWith(":*") && pattern.startsWith(wider.slice(0, -1));
}

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
