// @ts-check
// Assistant replies as Markdown, made safe: marked parses, DOMPurify sanitizes, and the result
// reaches the page as a DocumentFragment, never through an HTML sink of ours.
//
// Code blocks are highlighted by highlight.js (code-blocks.js): its HTML of a block, the code
// escaped inside <span class="hljs-…">, is sanitized by the same DOMPurify, once per block.
//
// The libraries come from npm (frontend/package.json); `npm ci` copies their ES module builds
// to vendor/. Without them (no Node when the page was set up) replies stay plain text; without
// highlight.js alone, code blocks stay uncoloured.
//
// What a reply can never put in the page: raw HTML (marked's html tokens are rendered as
// text), scripts, styles, event-handler attributes, class names other than highlight.js's,
// images (they would load from anywhere), or links other than http(s) and mailto (no
// javascript: or data:). Links open in a new tab without access to this page
// (rel="noopener noreferrer").
//
// Trusted Types: DOMPurify parses with DOMParser, a Trusted Types sink, through its own
// policy named "dompurify", the only policy the Content-Security-Policy allows
// (`trusted-types dompurify`, no 'allow-duplicates'). The policy object stays inside
// DOMPurify, and it is created as soon as the libraries load (setConfig below), so no other
// script can claim the name later. DOMPurify hands back a DocumentFragment
// (RETURN_DOM_FRAGMENT), never a string, so no code here touches an HTML sink.

import {
  allowedClasses,
  closedFence,
  escapeHtml,
  fenceLanguage,
  highlighter,
  languageOf,
  plain,
} from "./code-blocks.js?v=a1d88af3f5";
import { copyButton } from "./copy-button.js?v=fe998d82ab";

// "span" and "class" for highlight.js's token spans alone: the class names are filtered to
// its own (code-blocks.js), and raw HTML in a reply never becomes elements (see above).
const ALLOWED_TAGS = [
  "a", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "li",
  "ol", "p", "pre", "s", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "ul",
];
const ALLOWED_ATTR = ["href", "title", "start", "align", "class"];
const SAFE_URL = /^(?:https?:|mailto:)/i;

// The builds in vendor/ are plain JavaScript: their packages' own declarations (node_modules/)
// say what they are; highlight.js ships none (code-blocks.js says what the page uses of it).
/** @typedef {typeof import("marked")} MarkedModule */
/** @typedef {typeof import("dompurify")} PurifyModule */
/** @typedef {import("#page/code-blocks.js").Hljs} Hljs */
/** @typedef {import("#page/code-blocks.js").Highlight} Highlight */
/** @typedef {import("#page/code-blocks.js").Highlighted} Highlighted */
/**
 * Renders a reply; `complete` is false while it is still being streamed.
 * @typedef {(text: string, options?: { complete?: boolean }) => DocumentFragment} RenderMarkdown
 */

/**
 * The renderer, or null when the libraries are not there.
 * @returns {Promise<RenderMarkdown | null>}
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
  const highlight = await loadHighlighter();
  // Whether the reply being rendered is whole: while it streams, a code block is highlighted
  // once its closing fence has arrived (it will not change again), not on every frame before.
  let complete = true;
  // The highlighting of each code block of the reply being rendered, in document order: the
  // blocks go through marked and the reply's sanitizing as plain text, and their tokens are
  // put in afterwards (colour, below).
  /** @type {Highlighted[]} */
  let blocks = [];
  const parser = new marked({
    gfm: true,
    breaks: true,
    renderer: {
      // Raw HTML in a reply is shown, not run.
      html: ({ text }) => escapeHtml(text),
      // An image becomes a link to it: the page loads nothing from elsewhere.
      image: ({ href, text }) => `<a href="${escapeHtml(href ?? "")}">${escapeHtml(text || href || "")}</a>`,
      // The code as text; its language a class name of LANGUAGE's characters only
      // (code-blocks.js), which the label below reads.
      code: ({ text, lang, raw }) => {
        const code = `${text.replace(/\n$/, "")}\n`;
        const fenced = fenceLanguage(lang);
        const block = complete || closedFence(raw) ? highlight(code, fenced) : plain(code, fenced);
        blocks.push(block);
        const classes = block.language ? `hljs language-${block.language}` : "hljs";
        return `<pre><code class="${classes}">${escapeHtml(code)}</code></pre>\n`;
      },
    },
  });
  // Runs after DOMPurify dropped unsafe URLs (ALLOWED_URI_REGEXP): what is left is a link.
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName !== "A" || !node.hasAttribute("href")) return;
    node.setAttribute("target", "_blank");
    node.setAttribute("rel", "noopener noreferrer");
  });
  // Classes are highlight.js's, on its spans and the code element, or none.
  DOMPurify.addHook("uponSanitizeAttribute", (node, data) => {
    if (data.attrName !== "class") return;
    const kept = allowedClasses(node.nodeName.toLowerCase(), data.attrValue);
    if (kept) data.attrValue = kept;
    else data.keepAttr = false;
  });
  // One configuration for every call; setting it now also creates DOMPurify's policy.
  DOMPurify.setConfig({
    ALLOWED_TAGS,
    ALLOWED_ATTR,
    ALLOW_DATA_ATTR: false,
    ALLOWED_URI_REGEXP: SAFE_URL,
    RETURN_DOM_FRAGMENT: true,
  });
  /** @param {string} html */
  const sanitize = (html) =>
    // A fragment, by the configuration set above (RETURN_DOM_FRAGMENT).
    /** @type {DocumentFragment} */ (/** @type {unknown} */ (DOMPurify.sanitize(html)));
  // Each block's tokens, sanitized once: a streamed reply renders again on every frame, with
  // its finished blocks unchanged (the highlighter hands back the same object for them), and
  // copying their elements costs a fraction of parsing and sanitizing them again.
  /** @type {WeakMap<Highlighted, DocumentFragment>} */
  const tokens = new WeakMap();
  /** @param {Highlighted} block @param {string} html */
  const tokensOf = (block, html) => {
    let sanitized = tokens.get(block);
    if (!sanitized) tokens.set(block, (sanitized = sanitize(html)));
    return sanitized.cloneNode(true);
  };
  return (text, options = {}) => {
    complete = options.complete ?? true;
    blocks = [];
    // Trimmed: the newline after the last block would be a stray text node.
    const fragment = sanitize(parser.parse(text, { async: false }).trim());
    const codes = fragment.querySelectorAll("pre > code");
    // One code element per block rendered, in the same order (raw HTML never makes one).
    if (codes.length === blocks.length) {
      codes.forEach((code, n) => {
        const { html } = blocks[n];
        if (html !== null) code.replaceChildren(tokensOf(blocks[n], html));
      });
    }
    for (const pre of fragment.querySelectorAll("pre")) {
      // A code line longer than the bubble scrolls inside its block: the keyboard can reach
      // and scroll it too (WCAG 2.1.1).
      if (pre instanceof HTMLElement) pre.tabIndex = 0;
    }
    for (const code of fragment.querySelectorAll("pre > code")) frameCodeBlock(code);
    return fragment;
  };
}

/**
 * highlight.js, or plain code blocks when it is missing (Markdown still renders).
 * @returns {Promise<Highlight>}
 */
async function loadHighlighter() {
  try {
    const module = /** @type {{ default: Hljs }} */ (
      /** @type {unknown} */ (await import("./vendor/highlight.js"))
    );
    return highlighter(module.default);
  } catch {
    console.info("Code blocks are shown without colours: run `npm ci` in frontend/ for them.");
    return plain;
  }
}

/**
 * A fenced code block gets a bar above it: its language, and a Copy button (where the browser
 * lets the page use the clipboard).
 * @param {Element} code
 */
function frameCodeBlock(code) {
  const pre = code.parentElement;
  if (!pre) return;
  const language = languageOf(code.className);
  const copy = copyButton("code", () => code.textContent ?? "", "code-block__copy");
  if (!language && !copy) return;
  const block = document.createElement("div");
  block.className = "code-block";
  const bar = document.createElement("div");
  bar.className = "code-block__bar";
  if (language) {
    const label = document.createElement("span");
    label.className = "code-block__language";
    label.textContent = language;
    bar.append(label);
  }
  if (copy) bar.append(copy);
  pre.replaceWith(block);
  block.append(bar, pre);
}
