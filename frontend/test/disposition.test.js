// @ts-check
import assert from "node:assert/strict";
import { test } from "node:test";

import { dispositionName, fallbackName } from "../disposition.js";

test("the RFC 6266 extended name comes first, decoded", () => {
  const header = `attachment; filename="Caf_ notes.md"; filename*=UTF-8''Caf%C3%A9%20notes.md`;
  assert.equal(dispositionName(header), "Café notes.md");
});

test("the plain name, quoted or not", () => {
  assert.equal(dispositionName('attachment; filename="My chat.json"'), "My chat.json");
  assert.equal(dispositionName("attachment; filename=chat.md"), "chat.md");
  assert.equal(dispositionName('attachment; filename="say \\"hi\\".md"'), "say _hi_.md");
});

test("no name, or a broken encoding with no plain name, is none", () => {
  assert.equal(dispositionName(null), null);
  assert.equal(dispositionName("attachment"), null);
  assert.equal(dispositionName("attachment; filename*=UTF-8''%E0%A4%A"), null);
});

test("a name cannot reach another folder or hide itself", () => {
  assert.equal(dispositionName('attachment; filename="../../etc/passwd"'), "_.._etc_passwd");
  assert.equal(dispositionName("attachment; filename*=UTF-8''a%2Fb%0A.md"), "a_b_.md");
});

test("without one, the chat's title names the file", () => {
  assert.equal(fallbackName("Trip plans", "markdown"), "Trip plans.md");
  assert.equal(fallbackName("Trip/plans", "json"), "Trip_plans.json");
  assert.equal(fallbackName(null, "json"), "chat.json");
  assert.equal(fallbackName("  ", "markdown"), "chat.md");
});
