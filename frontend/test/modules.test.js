// What every module of the page promises: it is type-checked (jsconfig.json checks the modules
// that say `// @ts-check`) and small enough to have one job.
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { test } from "node:test";

const folder = new URL("../", import.meta.url);
const modules = readdirSync(folder).filter((name) => name.endsWith(".js"));
const MAX_LINES = 400;

test("every module of the page is type-checked", () => {
  assert.ok(modules.includes("app.js"));
  const unchecked = modules.filter(
    (name) => !readFileSync(new URL(name, folder), "utf8").startsWith("// @ts-check\n"),
  );
  assert.deepEqual(unchecked, []);
});

test(`no module of the page is over ${MAX_LINES} lines`, () => {
  const long = modules.filter(
    (name) => readFileSync(new URL(name, folder), "utf8").split("\n").length - 1 > MAX_LINES,
  );
  assert.deepEqual(long, []);
});
