// Copies what the pages load from node_modules/ into vendor/ (npm runs it after `npm ci`): the
// ES module builds the chat page imports (marked, DOMPurify, highlight.js), and Swagger UI's
// bundle and stylesheet for the API docs (docs.html). Both folders are git-ignored: only
// package.json and the lock file are ours.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const files = {
  "marked.js": "node_modules/marked/lib/marked.esm.js",
  "purify.js": "node_modules/dompurify/dist/purify.es.mjs",
  // highlight.js with its common languages in one ES module (@highlightjs/cdn-assets): the
  // highlight.js package's own ES build imports each language from a file of its own.
  "highlight.js": "node_modules/@highlightjs/cdn-assets/es/highlight.min.js",
  // The standalone preset (a top bar that loads any URL's document) is left out: the docs
  // page shows this service's document only.
  "swagger-ui-bundle.js": "node_modules/swagger-ui-dist/swagger-ui-bundle.js",
  "swagger-ui.css": "node_modules/swagger-ui-dist/swagger-ui.css",
  // OpenID Connect sign-in (signin.js): oidc-client-ts imports its one dependency by package
  // name, which a browser cannot resolve without a bundler; below, that import is pointed at
  // the copy beside it.
  "jwt-decode.js": "node_modules/jwt-decode/build/esm/index.js",
};
const OIDC_CLIENT = "node_modules/oidc-client-ts/dist/esm/oidc-client-ts.js";
const BARE_IMPORT = 'from "jwt-decode"';

mkdirSync(join(here, "vendor"), { recursive: true });
for (const [name, source] of Object.entries(files)) {
  copyFileSync(join(here, source), join(here, "vendor", name));
}
const oidcClient = readFileSync(join(here, OIDC_CLIENT), "utf8");
if (oidcClient.split(BARE_IMPORT).length !== 2) {
  // A new release imports differently: fail the install rather than ship a module that cannot load.
  throw new Error(`${OIDC_CLIENT}: expected exactly one import ${BARE_IMPORT}`);
}
writeFileSync(
  join(here, "vendor", "oidc-client-ts.js"),
  oidcClient.replace(BARE_IMPORT, 'from "./jwt-decode.js"'),
);
