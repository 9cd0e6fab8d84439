import { describe, expect, it } from "vitest";
import { instantiate, intersect, parseCapability } from "../../src/ably/capability";

const cap = (json: string) => parseCapability(json);

describe("capability intersection under Ably's wildcard rules", () => {
  it.each([
    // [requested, granted, expected]
    ['{"*":["*"]}', '{"chat:*":["subscribe"]}', '{"chat:*":["subscribe"]}'],
    ['{"chat:lobby":["publish","subscribe"]}', '{"chat:*":["subscribe"]}', '{"chat:lobby":["subscribe"]}'],
    ['{"chat:*":["*"]}', '{"*":["subscribe","publish"]}', '{"chat:*":["publish","subscribe"]}'],
    ['{"chat:a:*":["subscribe"]}', '{"chat:*":["*"]}', '{"chat:a:*":["subscribe"]}'],
    ['{"chat:*":["subscribe"]}', '{"chat:a:*":["*"]}', '{"chat:a:*":["subscribe"]}'],
    ['{"news":["subscribe"]}', '{"chat:*":["subscribe"]}', "{}"],
    ['{"chat:x":["publish"]}', '{"chat:*":["subscribe"]}', "{}"],
    ['{"[meta]log":["subscribe"]}', '{"*":["*"]}', "{}"],
    ['{"[meta]log":["subscribe"]}', '{"[*]*":["subscribe"]}', '{"[meta]log":["subscribe"]}'],
    [
      '{"*":["subscribe"]}',
      '{"a":["subscribe"],"b:*":["publish","subscribe"]}',
      '{"a":["subscribe"],"b:*":["subscribe"]}',
    ],
    ['{"*":["*"]}', '{"*":["*"]}', '{"*":["*"]}'],
    ['{"chatx":["subscribe"]}', '{"chat:*":["subscribe"]}', "{}"],
  ])("requested %s within %s is %s", (requested, granted, expected) => {
    expect(JSON.stringify(intersect(cap(requested), cap(granted)))).toBe(expected);
  });

  it("keeps resources and operations sorted, as ably-js's canonical form", () => {
    expect(JSON.stringify(cap('{"b":["subscribe","publish"],"a":["presence"]}'))).toBe(
      '{"a":["presence"],"b":["publish","subscribe"]}',
    );
  });

  it('treats a resource named "__proto__" as a resource, not a prototype', () => {
    const parsed = cap('{"__proto__":["subscribe"]}');
    expect(Object.keys(parsed)).toEqual(["__proto__"]);
    expect(JSON.stringify(intersect(parsed, cap('{"*":["*"]}')))).toBe('{"__proto__":["subscribe"]}');
  });
});

describe("the {clientId} template", () => {
  it("puts the clientId into every resource name that asks for it", () => {
    const template = cap('{"private:{clientId}":["*"],"inbox:{clientId}:*":["subscribe"],"lobby":["subscribe"]}');
    expect(instantiate(template, "alice")).toEqual({
      "inbox:alice:*": ["subscribe"],
      lobby: ["subscribe"],
      "private:alice": ["*"],
    });
  });
});

describe("capability syntax", () => {
  it.each([
    ["not JSON", "{", /not valid JSON/],
    ["an array", '["*"]', /JSON object/],
    ["null", "null", /JSON object/],
    ["a string value", '{"a":"subscribe"}', /non-empty array/],
    ["an empty array", '{"a":[]}', /non-empty array/],
    ["a number operation", '{"a":[1]}', /non-empty array/],
    ["an empty resource", '{"":["subscribe"]}', /empty resource/],
  ])("refuses %s", (_name, json, message) => {
    expect(() => parseCapability(json)).toThrow(message);
  });
});
