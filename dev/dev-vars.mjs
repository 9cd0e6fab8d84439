// The local settings file `.dev.vars` for `npm run dev`: created from `.dev.vars.example` on the
// first run, and on later runs topped up with the settings the example has gained since, each with
// the comment above it, so new development settings reach existing checkouts. The user's own
// values are never changed. Lines are `NAME="value"` (or unquoted), as wrangler reads them.
import { appendFileSync, copyFileSync, existsSync, readFileSync } from "node:fs";

const SETTING = /^\s*([A-Z_][A-Z0-9_]*)\s*=\s*(.*?)\s*$/;

/** NAME → value of every setting in a .dev.vars-style text, quotes removed. */
export function readVars(text) {
  const vars = {};
  for (const line of text.split("\n")) {
    const [, name, value] = SETTING.exec(line) ?? [];
    if (name) vars[name] = value.replace(/^(["'])(.*)\1$/, "$2");
  }
  return vars;
}

/**
 * Creates `file` from `example`, or appends to it the example's settings it lacks (each with the
 * comment lines just above it in the example). Answers what it did: `{ created }` or `{ added: [names] }`.
 */
export function updateDevVars(file, example) {
  if (!existsSync(file)) {
    copyFileSync(example, file);
    return { created: true, added: [] };
  }
  const have = readVars(readFileSync(file, "utf8"));
  const lines = readFileSync(example, "utf8").split("\n");
  const added = [];
  let missing = "";
  /** The comment lines just read: they belong to the setting that follows them. */
  let comment = [];
  for (const line of lines) {
    const name = SETTING.exec(line)?.[1];
    if (name && !(name in have)) {
      added.push(name);
      missing += [...comment, line].join("\n") + "\n";
    }
    comment = line.startsWith("#") ? [...comment, line] : [];
  }
  if (added.length > 0) {
    appendFileSync(file, `\n# Added by \`npm run dev\` from .dev.vars.example:\n${missing}`);
  }
  return { created: false, added };
}
