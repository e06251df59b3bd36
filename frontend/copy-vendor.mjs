// Copies what the pages load from node_modules/ into vendor/ (npm runs it after `npm ci`): the
// ES module builds the chat page imports, and Swagger UI's bundle and stylesheet for the API
// docs (docs.html). Both folders are git-ignored: only package.json and the lock file are ours.
import { copyFileSync, mkdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const files = {
  "marked.js": "node_modules/marked/lib/marked.esm.js",
  "purify.js": "node_modules/dompurify/dist/purify.es.mjs",
  // The standalone preset (a top bar that loads any URL's document) is left out: the docs
  // page shows this service's document only.
  "swagger-ui-bundle.js": "node_modules/swagger-ui-dist/swagger-ui-bundle.js",
  "swagger-ui.css": "node_modules/swagger-ui-dist/swagger-ui.css",
};

mkdirSync(join(here, "vendor"), { recursive: true });
for (const [name, source] of Object.entries(files)) {
  copyFileSync(join(here, source), join(here, "vendor", name));
}
