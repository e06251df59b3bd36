// ESLint's flat config (npm run lint). .mjs rather than .js: the page's folder serves its *.js
// files, and this one is not part of the page.
import js from "@eslint/js";
import globals from "globals";

export default [
  { ignores: ["node_modules/", "vendor/"] },
  js.configs.recommended,
  {
    rules: {
      eqeqeq: "error",
      "no-implicit-coercion": "error",
      "no-shadow": "error",
      "no-unused-vars": ["error", { caughtErrors: "none" }],
      "object-shorthand": "error",
      "prefer-const": "error",
      // Text reaches the page as text: no HTML sinks (Trusted Types would refuse them anyway).
      "no-restricted-properties": [
        "error",
        ...["innerHTML", "outerHTML", "insertAdjacentHTML"].map((property) => ({
          property,
          message: "Set text with textContent; markup comes only from DOMPurify (markdown.js).",
        })),
      ],
    },
  },
  // The page's modules run in the browser.
  { files: ["*.js"], languageOptions: { globals: globals.browser } },
  // The tools and the unit tests run in Node.
  { files: ["*.mjs", "test/**/*.js"], languageOptions: { globals: globals.node } },
];
