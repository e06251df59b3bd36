// Copies the ES module builds the page imports from node_modules/ into vendor/ (npm runs it
// after `npm ci`). Both folders are git-ignored: only package.json and the lock file are ours.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const files = {
  "marked.js": "node_modules/marked/lib/marked.esm.js",
  "purify.js": "node_modules/dompurify/dist/purify.es.mjs",
};

mkdirSync(join(here, "vendor"), { recursive: true });
for (const [name, source] of Object.entries(files)) {
  copyFileSync(join(here, source), join(here, "vendor", name));
}
