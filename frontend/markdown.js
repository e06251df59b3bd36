// @ts-check
// Assistant replies as Markdown, made safe: marked parses, DOMPurify sanitizes, and the result
// reaches the page as a DocumentFragment, never through an HTML sink of ours.
//
// Both libraries come from npm (frontend/package.json); `npm ci` copies their ES module builds
// to vendor/. Without them (no Node when the page was set up) replies stay plain text.
//
// What a reply can never put in the page: raw HTML (marked's html tokens are rendered as
// text), scripts, styles, event-handler attributes, images (they would load from anywhere),
// or links other than http(s) and mailto (no javascript: or data:). Links open in a new tab
// without access to this page (rel="noopener noreferrer").
//
// Trusted Types: DOMPurify parses with DOMParser, a Trusted Types sink, through its own
// policy named "dompurify", the only policy the Content-Security-Policy allows
// (`trusted-types dompurify`, no 'allow-duplicates'). The policy object stays inside
// DOMPurify, and it is created as soon as the libraries load (setConfig below), so no other
// script can claim the name later. DOMPurify hands back a DocumentFragment
// (RETURN_DOM_FRAGMENT), never a string, so no code here touches an HTML sink.

const ALLOWED_TAGS = [
  "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li",
  "ol", "p", "pre", "s", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
];
const ALLOWED_ATTR = ["href", "title", "start", "align"];
const SAFE_URL = /^(?:https?:|mailto:)/i;
const COPIED_MS = 1500;

/** @param {string} text */
const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// The builds in vendor/ are plain JavaScript: their packages' own declarations (node_modules/)
// say what they are.
/** @typedef {typeof import("marked")} MarkedModule */
/** @typedef {typeof import("dompurify")} PurifyModule */

/**
 * The renderer, or null when the libraries are not there.
 * @returns {Promise<((text: string) => DocumentFragment) | null>}
 */
export async function loadMarkdown() {
  let marked;
  let DOMPurify;
  try {
    const [markedModule, purifyModule] = await Promise.all([
      import("./vendor/marked.js"),
      import("./vendor/purify.js"),
    ]);
    marked = /** @type {MarkedModule} */ (/** @type {unknown} */ (markedModule)).Marked;
    DOMPurify = /** @type {PurifyModule} */ (/** @type {unknown} */ (purifyModule)).default;
  } catch {
    console.info("Replies are shown as plain text: run `npm ci` in frontend/ (needs Node.js) for Markdown.");
    return null;
  }
  const parser = new marked({
    gfm: true,
    breaks: true,
    renderer: {
      // Raw HTML in a reply is shown, not run.
      html: ({ text }) => escapeHtml(text),
      // An image becomes a link to it: the page loads nothing from elsewhere.
      image: ({ href, text }) => `<a href="${escapeHtml(href ?? "")}">${escapeHtml(text || href || "")}</a>`,
    },
  });
  // Runs after DOMPurify dropped unsafe URLs (ALLOWED_URI_REGEXP): what is left is a link.
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName !== "A" || !node.hasAttribute("href")) return;
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  });
  // One configuration for every call; setting it now also creates DOMPurify's policy.
  DOMPurify.setConfig({
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOW_DATA_ATTR: false,
    ALLOWED_URI_REGEXP: SAFE_URL,
    RETURN_DOM_FRAGMENT: true,
  });
  return (text) => {
    // Trimmed: the newline after the last block would be a stray text node.
    const html = parser.parse(text, { async: false }).trim();
    // A fragment, by the configuration set above (RETURN_DOM_FRAGMENT).
    const fragment = /** @type {DocumentFragment} */ (
      /** @type {unknown} */ (DOMPurify.sanitize(html))
    );
    for (const pre of fragment.querySelectorAll("pre")) {
      // A code line longer than the bubble scrolls inside its block: the keyboard can reach
      // and scroll it too (WCAG 2.1.1).
      if (pre instanceof HTMLElement) pre.tabIndex = 0;
    }
    for (const code of fragment.querySelectorAll("pre > code")) addCopyButton(code);
    return fragment;
  };
}

/**
 * A fenced code block gets a Copy button (where the browser lets the page use the clipboard).
 * @param {Element} code
 */
function addCopyButton(code) {
  const pre = code.parentElement;
  if (!navigator.clipboard || !pre) return;
  const block = document.createElement("div");
  block.className = "code-block";
  const button = document.createElement("button");
  button.type = "button";
  button.className = "button button--small code-block__copy";
  // "Copy" on screen, "Copy code" to a screen reader: the name holds the words shown (WCAG
  // 2.5.3), as it does once they say "Copied".
  const ready = () => {
    const what = document.createElement("span");
    what.className = "visually-hidden";
    what.textContent = " code";
    button.replaceChildren("Copy", what);
  };
  ready();
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(code.textContent ?? "");
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(ready, COPIED_MS);
  });
  pre.replaceWith(block);
  block.append(button, pre);
}
