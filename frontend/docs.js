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
/**
 * What a Swagger UI plugin's component wrapper uses: the system, which carries Swagger UI's own
 * React, and the operation's properties (an Immutable.js map).
 * @typedef {{ React: { createElement: (type: unknown, props: object) => unknown } }} System
 * @typedef {{ set: (key: string, value: unknown) => unknown }} ImmutableMap
 */

const status = /** @type {HTMLElement} */ (document.getElementById("docs-status"));

// Light or dark as the reader's system is, like the chat page, and live when it changes. Swagger
// UI's stylesheet has its dark theme under html.dark-mode (it has no switch of its own in this
// layout); docs.css follows the same class, and prefers-color-scheme where Swagger UI is absent.
const darkScheme = window.matchMedia("(prefers-color-scheme: dark)");
const followScheme = () =>
  document.documentElement.classList.toggle("dark-mode", darkScheme.matches);
followScheme();
darkScheme.addEventListener("change", followScheme);

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

// Accessibility repairs of Swagger UI's markup (WCAG 2.2 AA, checked by axe-core in
// tests/e2e/test_accessibility.py); its colours are repaired in docs.css.
//
// An operation's summary is a button that opens it, and with deep linking on, the path inside
// it is also a link to the operation: a control inside a control (4.1.2), which on a phone is a
// target too small to tap (2.5.8). The path stays text; deep linking itself stays: opening an
// operation still puts it in the address, and that address still opens it.
const summaryPathAsText = {
  wrapComponents: {
    /**
     * @param {unknown} Original
     * @param {System} system
     */
    OperationSummaryPath: (Original, system) =>
      /** @param {{ operationProps: ImmutableMap }} props */
      (props) =>
        system.React.createElement(Original, {
          ...props,
          operationProps: props.operationProps.set("isDeepLinkingEnabled", false),
        }),
  },
};

// Controls Swagger UI leaves without a name (4.1.2), named as it renders them: the server list
// sits in an empty <label> beside its "Servers" title, the request body's box has an empty
// title, and the authorization dialog's close button is an icon alone. The dialog's Authorize
// and Logout buttons are labelled "Apply credentials" and "Remove authorization", names speech
// input cannot find from the words they show (2.5.3): their visible text names them instead.
const NAMES = [
  ["select#servers", "Servers"],
  ["textarea.body-param__text", "Request body"],
  ["button.close-modal", "Close"],
];

/** @param {HTMLElement} root */
function nameControls(root) {
  const repair = () => {
    for (const [selector, name] of NAMES) {
      for (const control of root.querySelectorAll(`${selector}:not([aria-label])`)) {
        control.setAttribute("aria-label", name);
      }
    }
    // A schema without a title opens and closes by an icon alone.
    const toggles = root.querySelectorAll(".json-schema-2020-12-accordion:not([aria-label])");
    for (const toggle of toggles) {
      if (!toggle.textContent?.trim()) toggle.setAttribute("aria-label", "Schema");
    }
    for (const button of root.querySelectorAll(".auth-btn-wrapper .btn[aria-label]")) {
      button.removeAttribute("aria-label");
    }
  };
  // React sets a label again when the button it reuses changes from Authorize to Logout.
  new MutationObserver(repair).observe(root, {
    childList: true,
    subtree: true,
    attributeFilter: ["aria-label"],
  });
}

const libraries = await loadLibraries();
if (libraries === null) {
  showMissing();
} else {
  const { SwaggerUIBundle, DOMPurify } = libraries;
  sanitizeSinks(DOMPurify);
  const root = /** @type {HTMLElement} */ (document.getElementById("swagger-ui"));
  nameControls(root);
  SwaggerUIBundle({
    url: "openapi.json",
    domNode: root,
    // The document is the service's own: no badge from validator.swagger.io (another origin).
    validatorUrl: null,
    deepLinking: true,
    defaultModelsExpandDepth: 0,
    // Code as plain text, white on dark grey: the highlighting themes' own colours fall short of
    // 4.5:1 on their backgrounds (the default, agate: comments #888, numbers #d36363 on #333).
    syntaxHighlight: { activated: false },
    presets: [SwaggerUIBundle.presets.apis],
    plugins: [summaryPathAsText],
    layout: "BaseLayout",
  });
}
