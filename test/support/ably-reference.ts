/**
 * A reference for the property tests, written from Ably's documentation (capabilities page,
 * "Resource names and wildcards"; JWT and REST pages) and sharing no code with src/: no
 * `String.prototype.replace`, no regular expression built from data. Slow and plain on purpose.
 *
 * Matching, per the documented table: `[*]*` matches every name; `[q]*` every name that starts with
 * `[q]`; any other name starting with `[` only itself; `*` matches every name not starting with `[`;
 * otherwise names are `:` segments, a `*` segment matching one segment, or, as the last segment, one
 * or more (`chat:*` matches `chat:a` and `chat:a:b`, not `chat`).
 */

export type Capability = Readonly<Record<string, readonly string[]>>;

function segments(name: string): string[] {
  const out: string[] = [];
  let current = "";
  for (const ch of name) {
    if (ch === ":") {
      out.push(current);
      current = "";
    } else {
      current += ch;
    }
  }
  out.push(current);
  return out;
}

function startsWithText(text: string, start: string): boolean {
  if (start.length > text.length) return false;
  for (let i = 0; i < start.length; i++) if (text[i] !== start[i]) return false;
  return true;
}

/** `[q]*` with a non-empty q without `]`, other than `[*]*`: the qualifier `[q]`, else undefined. */
function qualifierWildcard(resource: string): string | undefined {
  if (resource === "[*]*" || resource.length < 4 || resource[0] !== "[" || resource[resource.length - 1] !== "*")
    return undefined;
  const close = resource.indexOf("]");
  return close === resource.length - 2 && close > 1 ? resource.slice(0, close + 1) : undefined;
}

/** Whether the resource name `resource` matches the channel name `channel`. */
export function matches(resource: string, channel: string): boolean {
  if (resource === "[*]*" || resource === channel) return true;
  const qualifier = qualifierWildcard(resource);
  if (qualifier !== undefined) return startsWithText(channel, qualifier);
  if (resource[0] === "[" || channel[0] === "[") return false;
  const r = segments(resource);
  const c = segments(channel);
  const open = r[r.length - 1] === "*";
  if (open ? c.length < r.length : c.length !== r.length) return false;
  const fixed = open ? r.length - 1 : r.length;
  for (let i = 0; i < fixed; i++) if (r[i] !== "*" && r[i] !== c[i]) return false;
  return true;
}

/** Whether `capability` lets `operation` be done on `channel`. */
export function allows(capability: Capability, channel: string, operation: string): boolean {
  for (const resource of Object.keys(capability)) {
    const ops = capability[resource]!;
    if (matches(resource, channel) && (ops.includes("*") || ops.includes(operation))) return true;
  }
  return false;
}

/** `{clientId}` in every resource name becomes `clientId`, by scanning, never by `replace`. */
export function instantiate(template: Capability, clientId: string): Capability {
  const out: Record<string, string[]> = {};
  for (const resource of Object.keys(template)) {
    let name = "";
    let i = 0;
    while (i < resource.length) {
      if (resource.startsWith("{clientId}", i)) {
        name += clientId;
        i += "{clientId}".length;
      } else {
        name += resource[i];
        i += 1;
      }
    }
    out[name] = [...new Set([...(out[name] ?? []), ...template[resource]!])];
  }
  return out;
}

/**
 * Channel names worth probing a resource with: instances of it (each `*` segment filled with a few
 * segments), and the names themselves. Where two capabilities meet, their instances lie.
 */
export function probes(resource: string, fill: readonly string[]): string[] {
  if (resource === "[*]*") return ["x", "[meta]x", "[queue]x:y"];
  const qualifier = qualifierWildcard(resource);
  if (qualifier !== undefined) return [`${qualifier}x`, `${qualifier}a:b`, resource];
  if (resource[0] === "[") return [resource];
  const parts = segments(resource);
  const out = [resource];
  for (const f of fill) {
    const filled = parts.map((p) => (p === "*" ? f : p));
    out.push(filled.join(":"));
    if (parts[parts.length - 1] === "*") out.push(`${filled.join(":")}:${f}`);
  }
  return out;
}

/** UTF-8 length of a string, lone surrogates counted as U+FFFD (3 bytes), as TextEncoder does. */
export function utf8Length(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    const next = text.charCodeAt(i + 1);
    if (unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      bytes += 4;
      i += 1;
    } else {
      bytes += unit < 0x80 ? 1 : unit < 0x800 ? 2 : 3;
    }
  }
  return bytes;
}

/** Whether `text` has a UTF-16 code unit that is half of a pair without its other half. */
export function hasLoneSurrogate(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (unit >= 0xd800 && unit <= 0xdbff) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i += 1;
      else return true;
    } else if (unit >= 0xdc00 && unit <= 0xdfff) {
      return true;
    }
  }
  return false;
}

/** Bytes `text` takes inside a JSON string once escaped (RFC 8259, as JSON.stringify writes it), quotes excluded. */
export function jsonEscapedBytes(text: string): number {
  const short = ['"', "\\", "\b", "\f", "\n", "\r", "\t"];
  let bytes = 0;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    const next = text.charCodeAt(i + 1);
    if (short.includes(text[i]!))
      bytes += 2; // \" \\ \b \f \n \r \t
    else if (unit < 0x20)
      bytes += 6; // \u00XX
    else if (unit >= 0xd800 && unit <= 0xdbff && next >= 0xdc00 && next <= 0xdfff) {
      bytes += 4;
      i += 1;
    } else if (unit >= 0xd800 && unit <= 0xdfff)
      bytes += 6; // a lone surrogate: \uDXXX
    else bytes += unit < 0x80 ? 1 : unit < 0x800 ? 2 : 3;
  }
  return bytes;
}

/** Whether some channel name is matched by both resource names. */
export function overlaps(a: string, b: string): boolean {
  if (a === "[*]*" || b === "[*]*" || a === b) return true;
  const qa = qualifierWildcard(a);
  const qb = qualifierWildcard(b);
  if (qa !== undefined || qb !== undefined) {
    if (qa !== undefined && qb !== undefined) return qa === qb;
    return qa !== undefined ? startsWithText(b, qa) : startsWithText(a, qb!);
  }
  if (a[0] === "[" || b[0] === "[") return false;
  const x = segments(a);
  const y = segments(b);
  const xOpen = x[x.length - 1] === "*";
  const yOpen = y[y.length - 1] === "*";
  if (!xOpen && !yOpen && x.length !== y.length) return false;
  if (xOpen && !yOpen && y.length < x.length) return false;
  if (yOpen && !xOpen && x.length < y.length) return false;
  const compared = Math.min(xOpen ? x.length - 1 : x.length, yOpen ? y.length - 1 : y.length);
  for (let i = 0; i < compared; i++) if (x[i] !== "*" && y[i] !== "*" && x[i] !== y[i]) return false;
  return true;
}

/**
 * Whether `text` may be (part of) a clientId by the rules SECURITY.md states: a non-empty,
 * well-formed string of at most 256 UTF-8 bytes, without `*`, `[`, `]` or control characters, and
 * not `.` or `..`.
 */
export function isClientIdText(text: string): boolean {
  if (text === "" || text === "." || text === ".." || hasLoneSurrogate(text) || utf8Length(text) > 256) return false;
  for (let i = 0; i < text.length; i++) {
    const unit = text.charCodeAt(i);
    if (text[i] === "*" || text[i] === "[" || text[i] === "]" || unit < 0x20 || (unit >= 0x7f && unit <= 0x9f))
      return false;
  }
  return true;
}

/** Everything any of `capabilities` allows: each resource's operations gathered from all of them. */
export function unionOf(capabilities: readonly Capability[]): Capability {
  const out: Record<string, string[]> = {};
  for (const capability of capabilities) {
    for (const resource of Object.keys(capability)) {
      const ops = out[resource] ?? [];
      for (const op of capability[resource]!) if (!ops.includes(op)) ops.push(op);
      out[resource] = ops;
    }
  }
  return out;
}

/** The roles a claim value holds, as the README describes ROLES_CLAIM: one string, or an array's strings. */
export function rolesIn(claim: unknown): string[] {
  if (typeof claim === "string") return [claim];
  if (!Array.isArray(claim)) return [];
  const roles: string[] = [];
  for (const role of claim) if (typeof role === "string") roles.push(role);
  return roles;
}

/**
 * What a user is granted before a request narrows it: the base capability united with the
 * capability of every role they hold that ROLE_CAPABILITIES lists (`byRole` as its entries, so no
 * object's prototype can stand for a role), `{clientId}` then filled in.
 */
export function grantedFor(
  base: Capability,
  byRole: readonly (readonly [string, Capability])[],
  roles: readonly string[],
  clientId: string,
): Capability {
  const held = byRole.filter(([role]) => roles.includes(role)).map(([, capability]) => capability);
  return instantiate(unionOf([base, ...held]), clientId);
}
