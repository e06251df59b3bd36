// @ts-check
// The interactive API docs (docs.html): Swagger UI renders the service's own OpenAPI document,
// and "Try it out" sends its requests to this same origin (relative URLs, as on the chat page,
// so the docs work behind NGINX and from the service alike).
//
// Swagger UI comes from npm (swagger-ui-dist, version 5: the document is OpenAPI 3.1, which
// version 4 cannot read); `npm ci` copies its bundle to vendor/, next to DOMPurify. Without
// them (no Node.js when the page was set up) the page says so and links the document itself,
// rather than staying blank.
//
// Trusted Types stay enforced here, as on the chat page, with one addition the page's policy
// (chat_service/api/security.py) allows for this page alone: a "default" policy. Swagger UI
// renders the descriptions' Markdown to HTML, sanitizes it with its own copy of DOMPurify, and
// hands the resulting string to React, which sets it as an element's HTML; under
// `require-trusted-types-for 'script'` that throws unless a default policy turns the string
// into TrustedHTML. Ours does it by sanitizing the string again with our DOMPurify,
// so no unsanitized markup reaches a sink. It defines no createScript or createScriptURL:
// strings for eval-like and script-URL sinks are still refused. Our DOMPurify parses through
// a policy of this module's own ("docs-dompurify", never handed out); Swagger UI's copy creates
// the usual "dompurify" one.

/** @typedef {import("dompurify").DOMPurify} DOMPurify */
/** @typedef {import("trusted-types/lib/index.js").TrustedTypesWindow} TrustedTypesWindow */
/** @typedef {import("trusted-types/lib/index.js").TrustedTypePolicyOptions} PolicyOptions */
/**
 * What docs.js uses of Swagger UI's bundle (vendor/swagger-ui-bundle.js, a classic script that
 * sets window.SwaggerUIBundle).
 * @typedef {((options: Record<string, unknown>) => unknown) & { presets: { apis: unknown } }}
 *   SwaggerUIBundle
 */

const status = /** @type {HTMLElement} */ (document.getElementById("docs-status"));

/** @returns {Promise<{ SwaggerUIBundle: SwaggerUIBundle, DOMPurify: DOMPurify } | null>} */
async function loadLibraries() {
  const bundle = /** @type {{ SwaggerUIBundle?: unknown }} */ (window).SwaggerUIBundle;
  if (typeof bundle !== "function") return null;
  try {
    const purify = /** @type {{ default: DOMPurify }} */ (
      /** @type {unknown} */ (await import("./vendor/purify.js"))
    );
    return { SwaggerUIBundle: /** @type {SwaggerUIBundle} */ (bundle), DOMPurify: purify.default };
  } catch {
    return null;
  }
}

function showMissing() {
  const link = document.createElement("a");
  link.href = "openapi.json";
  link.textContent = "/openapi.json";
  status.replaceChildren(
    "The interactive API docs are not installed here: they need Swagger UI, which `npm ci` " +
      "in frontend/ installs (with Node.js). The API is described by its OpenAPI document, ",
    link,
    ".",
  );
  status.classList.add("docs-status--missing");
}

/** @param {DOMPurify} DOMPurify */
function sanitizeSinks(DOMPurify) {
  const { trustedTypes } = /** @type {Partial<TrustedTypesWindow>} */ (window);
  if (!trustedTypes) return; // no Trusted Types in this browser: nothing to convert
  // Typed as any policy's options, so that it is a whole policy to DOMPurify (the browser's:
  // its createScript throws, as none is defined).
  const parsing = trustedTypes.createPolicy("docs-dompurify", /** @type {PolicyOptions} */ ({
    createHTML: (html) => html,
    createScriptURL: () => {
      throw new TypeError("the API docs load no scripts by URL");
    },
  }));
  trustedTypes.createPolicy("default", {
    // What Swagger UI's own sanitizer allows: links may open a new tab; no styles, no forms.
    createHTML: (html) =>
      DOMPurify.sanitize(html, {
        ADD_ATTR: ["target"],
        FORBID_TAGS: ["style", "form"],
        TRUSTED_TYPES_POLICY: parsing,
      }),
  });
}

const libraries = await loadLibraries();
if (libraries === null) {
  showMissing();
} else {
  const { SwaggerUIBundle, DOMPurify } = libraries;
  sanitizeSinks(DOMPurify);
  SwaggerUIBundle({
    url: "openapi.json",
    domNode: document.getElementById("swagger-ui"),
    // The document is the service's own: no badge from validator.swagger.io (another origin).
    validatorUrl: null,
    deepLinking: true,
    defaultModelsExpandDepth: 0,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
}
