// The content hashes (stamp.mjs): computed leaves first, so each one covers the hashes it
// imports, and written nowhere but in the URLs.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";

import { declarations, dependencyOrder, stamped } from "../stamp.mjs";

const sha = (text) => createHash("sha256").update(text).digest("hex").slice(0, 10);

/** A page folder holding these files. */
function folderWith(files) {
  const folder = mkdtempSync(join(tmpdir(), "stamp-"));
  mkdirSync(join(folder, "docs"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(folder, name), text);
  return folder;
}

const PAGE = `<link href="style.css?v=0"><script type="module" src="app.js?v=0"></script>
<a href="docs">docs</a> <a href="openapi.json">API</a> <script src="vendor/x.js"></script>`;

function writeAll(folder, changed) {
  for (const [name, text] of changed) writeFileSync(join(folder, name), text);
}

test("each hash is that of the file with its own imports stamped", () => {
  const folder = folderWith({
    "leaf.js": "export const leaf = 1;\n",
    "mid.js": 'import { leaf } from "./leaf.js";\nexport const mid = leaf;\n',
    "app.js": 'import { mid } from "./mid.js?v=stale";\nawait import("./vendor/lib.js");\n',
    "style.css": "body {}\n",
    "page.html": PAGE,
  });
  const changed = stamped(folder);
  const leaf = sha("export const leaf = 1;\n");
  const mid = `import { leaf } from "./leaf.js?v=${leaf}";\nexport const mid = leaf;\n`;
  assert.equal(changed.get("mid.js"), mid);
  const app = `import { mid } from "./mid.js?v=${sha(mid)}";\nawait import("./vendor/lib.js");\n`;
  assert.equal(changed.get("app.js"), app, "vendor/ stays unversioned");
  assert.ok(!changed.has("leaf.js"), "nothing to change");
  const page = changed.get("page.html");
  assert.ok(page.includes(`src="app.js?v=${sha(app)}"`));
  assert.ok(page.includes(`href="style.css?v=${sha("body {}\n")}"`));
  assert.ok(page.includes('<a href="docs">') && page.includes('src="vendor/x.js"'));
  assert.equal(readFileSync(join(folder, "app.js"), "utf8").includes("stale"), true, "untouched");
});

test("once written, stamping again changes nothing; an edit changes every importer", () => {
  const folder = folderWith({
    "leaf.js": "export const leaf = 1;\n",
    "app.js": 'import { leaf } from "./leaf.js";\n',
    "page.html": PAGE.replace('<link href="style.css?v=0">', ""),
  });
  writeAll(folder, stamped(folder));
  assert.deepEqual([...stamped(folder).keys()], []);
  writeFileSync(join(folder, "leaf.js"), "export const leaf = 2;\n");
  assert.deepEqual([...stamped(folder).keys()].sort(), ["app.js", "page.html"]);
});

test("modules.d.ts declares each module's versioned specifiers", () => {
  const folder = folderWith({ "a.js": "export {};\n", "b.js": "export {};\n" });
  const types = stamped(folder).get("modules.d.ts");
  assert.equal(types, declarations(["a.js", "b.js"]));
  assert.ok(types.includes('declare module "./b.js?v=*" {\n  export * from "#page/b.js";\n}'));
});

test("modules come after what they import", () => {
  const sources = new Map([
    ["app.js", 'import "./b.js";\nimport "./a.js";'],
    ["a.js", 'import "./c.js";'],
    ["b.js", 'import "./a.js";'],
    ["c.js", ""],
  ]);
  assert.deepEqual(dependencyOrder(sources), ["c.js", "a.js", "b.js", "app.js"]);
});

test("an import cycle cannot be stamped", () => {
  const sources = new Map([
    ["a.js", 'import "./b.js";'],
    ["b.js", 'import "./a.js";'],
  ]);
  assert.throws(() => dependencyOrder(sources), /import cycle: a\.js -> b\.js -> a\.js/);
});

test("an import of a file that is not a module here is an error", () => {
  assert.throws(() => dependencyOrder(new Map([["a.js", 'import "./gone.js";']])), /gone\.js/);
});
