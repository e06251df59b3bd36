// Writes the content hashes in the pages' URLs: `npm run stamp` after changing any file of the
// page; `node stamp.mjs --check` (make test) fails when one is out of date. Needs Node only.
//
// A versioned URL ends in ?v=<first 10 hex digits of the file's SHA-256>, so NGINX lets
// browsers cache it for a year (tests/e2e/test_static_files.py checks every one). A module's
// hash covers the specifiers it imports, hashes included, so a changed module changes its
// importers' hashes too, up to the page: modules are stamped in dependency order, leaves first,
// then the HTML pages' src and href. The npm libraries in vendor/ stay unversioned (npm ci
// writes them, not git). modules.d.ts, which lets the type check read versioned specifiers, is
// written from the same list of modules.
import { createHash } from "node:crypto";
import { readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

// `from "./x.js?v=..."`, `import "./x.js"`, `import("./x.js")`: a relative specifier, with
// whatever query it has (the pattern tests/e2e/test_static_files.py reads them with).
const IMPORT = /(\bfrom|\bimport)(\s*\(?\s*)(["'])\.\/([^"'?]+)(?:\?[^"']*)?\3/g;
// A local file in a page: src="name" or href="name", with or without its version.
const PAGE_URL = /\b(src|href)="([\w.-]+)(?:\?v=[^"]*)?"/g;
const TYPES = "modules.d.ts";

/** @param {string | Buffer} content */
function version(content) {
  return createHash("sha256").update(content).digest("hex").slice(0, 10);
}

/**
 * The page's modules (*.js directly in `folder`) and the modules each imports, in the order to
 * stamp them: every module after those it imports.
 * @param {Map<string, string>} sources module name -> text
 * @returns {string[]}
 */
export function dependencyOrder(sources) {
  const order = [];
  const state = new Map(); // name -> "visiting" | "done"
  const visit = (name, path) => {
    if (state.get(name) === "done") return;
    if (state.get(name) === "visiting") {
      throw new Error(`import cycle: ${[...path, name].join(" -> ")}: hashes cannot cascade`);
    }
    state.set(name, "visiting");
    for (const imported of importsOf(sources.get(name) ?? "")) {
      if (!sources.has(imported)) {
        throw new Error(`${name} imports ./${imported}, which is not a module here`);
      }
      visit(imported, [...path, name]);
    }
    state.set(name, "done");
    order.push(name);
  };
  for (const name of [...sources.keys()].sort()) visit(name, []);
  return order;
}

/**
 * The page modules a module imports (not the libraries in vendor/).
 * @param {string} source
 */
function importsOf(source) {
  return [...source.matchAll(IMPORT)]
    .map((match) => match[4])
    .filter((path) => !path.startsWith("vendor/"));
}

/**
 * Every file of `folder` whose text stamping changes: name -> new text. Leaves `folder` as it is.
 * @param {string} folder
 * @returns {Map<string, string>}
 */
export function stamped(folder) {
  const names = readdirSync(folder).filter((name) => statSync(join(folder, name)).isFile());
  const read = (name) => readFileSync(join(folder, name), "utf8");
  const sources = new Map(names.filter((name) => name.endsWith(".js")).map((n) => [n, read(n)]));
  const versions = new Map();
  const versionOf = (name) => versions.get(name) ?? version(readFileSync(join(folder, name)));
  const changed = new Map();
  for (const name of dependencyOrder(sources)) {
    const source = sources.get(name);
    const text = source.replace(IMPORT, (whole, keyword, space, quote, path) =>
      path.startsWith("vendor/")
        ? whole
        : `${keyword}${space}${quote}./${path}?v=${versions.get(path)}${quote}`,
    );
    versions.set(name, version(text));
    if (text !== source) changed.set(name, text);
  }
  for (const page of names.filter((name) => name.endsWith(".html"))) {
    const source = read(page);
    const text = source.replace(PAGE_URL, (whole, attribute, path) =>
      names.includes(path) ? `${attribute}="${path}?v=${versionOf(path)}"` : whole,
    );
    if (text !== source) changed.set(page, text);
  }
  const types = declarations([...sources.keys()].sort());
  if (!names.includes(TYPES) || read(TYPES) !== types) changed.set(TYPES, types);
  return changed;
}

/**
 * modules.d.ts: TypeScript cannot resolve "./x.js?v=<hash>", so each module's versioned
 * specifiers are declared as the module itself ("#page/x.js", a path of jsconfig.json).
 * @param {string[]} modules
 */
export function declarations(modules) {
  const header = [
    "// Written by stamp.mjs (npm run stamp), not by hand: lets the type check (jsconfig.json)",
    "// resolve the versioned import specifiers of the page's modules to the modules themselves.",
  ];
  const entries = modules.map(
    (name) => `declare module "./${name}?v=*" {\n  export * from "#page/${name}";\n}`,
  );
  return `${[...header, ...entries].join("\n")}\n`;
}

function main() {
  const folder = dirname(fileURLToPath(import.meta.url));
  const check = process.argv.includes("--check");
  const changed = stamped(folder);
  if (check) {
    if (changed.size) {
      console.error(`Out of date: ${[...changed.keys()].join(", ")}. Run: npm run stamp`);
      process.exit(1);
    }
    return;
  }
  for (const [name, text] of changed) writeFileSync(join(folder, name), text);
  console.log(changed.size ? `stamped ${[...changed.keys()].join(", ")}` : "up to date");
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) main();
