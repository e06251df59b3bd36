// @ts-check
// The code blocks of a reply: the language a fence names, whether a block still being streamed
// is finished, its highlighting (highlight.js, cached), and which classes the sanitizer keeps.
// No DOM: markdown.js builds the blocks; this decides what goes into them.
//
// highlight.js returns HTML: the code's text escaped (& < > " '), wrapped in <span class=
// "hljs-…">. markdown.js sanitizes that string with DOMPurify, which keeps only spans and,
// through allowedClasses below, only highlight.js's own class names.

/**
 * What the page uses of highlight.js (vendor/highlight.js, the ES module build of npm's
 * @highlightjs/cdn-assets with its common languages, which ships no type declarations).
 * @typedef {{ value: string, language?: string, relevance: number }} HighlightResult
 * @typedef {{
 *   highlight: (code: string, options: { language: string, ignoreIllegals: boolean })
 *     => HighlightResult,
 *   highlightAuto: (code: string) => HighlightResult,
 *   getLanguage: (name: string) => object | undefined,
 * }} Hljs
 * @typedef {{ html: string | null, language: string | null }} Highlighted highlight.js's HTML
 *   of the code (null: no colours, the code stays text), and the language to show on its block
 *   (the fence's, or the one detected; none when neither)
 * @typedef {(code: string, language: string | null) => Highlighted} Highlight
 */

// A fence's language, as a class name and a label can hold it ("python", "c++", "objective-c").
const LANGUAGE = /^[\w#+.-]{1,32}$/;
const OPENING_FENCE = /^ {0,3}(`{3,}|~{3,})/;
// highlight.js scores a detection by how much of the code its rules recognised. Below this, a
// short snippet's guess is as often wrong as right (`print('hello')` scores 2, as Bash): no
// colours and no label rather than a wrong one.
export const MIN_RELEVANCE = 5;
// Detection runs every language's rules over the code (some 190 ms for 400 lines, on this
// machine): a longer block without a language stays plain.
export const MAX_DETECTED_CHARS = 10_000;
const CACHE_SIZE = 64;

/** @param {string} text */
export const escapeHtml = (text) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/**
 * The language a fence's info string names (its first word), when it is one a label can show.
 * @param {string | undefined} info
 * @returns {string | null}
 */
export function fenceLanguage(info) {
  const word = (info ?? "").trim().split(/\s/, 1)[0];
  return LANGUAGE.test(word) ? word : null;
}

/**
 * Whether a code block's source (marked's `raw`) is a fenced block with its closing fence: a
 * streamed reply's block is complete then, and will not change. An unclosed fence, or an
 * indented block, may still grow.
 * @param {string} raw
 */
export function closedFence(raw) {
  const lines = raw.replace(/\n+$/, "").split("\n");
  const opening = OPENING_FENCE.exec(lines[0] ?? "");
  if (!opening || lines.length < 2) return false;
  const [mark] = opening[1];
  return new RegExp(`^ {0,3}${mark}{${opening[1].length},} *$`).test(lines.at(-1) ?? "");
}

/**
 * No highlighting (no highlight.js, or a block still being streamed): the fence's language kept
 * for the label.
 * @type {Highlight}
 */
export const plain = (code, language) => ({ html: null, language });

/**
 * Highlighting with highlight.js, remembering the last blocks done: a streamed reply renders
 * again on every frame, and its finished blocks come back unchanged each time.
 * @param {Hljs} hljs
 * @returns {Highlight}
 */
export function highlighter(hljs) {
  /** @type {Map<string, Highlighted>} */
  const done = new Map();
  return (code, language) => {
    const key = `${language ?? ""}\n${code}`;
    const known = done.get(key);
    if (known) {
      done.delete(key); // the most recently used last: the first is the one to forget
      done.set(key, known);
      return known;
    }
    const result = highlightOnce(hljs, code, language);
    done.set(key, result);
    if (done.size > CACHE_SIZE) done.delete(/** @type {string} */ (done.keys().next().value));
    return result;
  };
}

/**
 * @param {Hljs} hljs
 * @param {string} code
 * @param {string | null} language
 * @returns {Highlighted}
 */
function highlightOnce(hljs, code, language) {
  if (language) {
    // A language highlight.js does not know is still shown on the label, the code plain.
    if (!hljs.getLanguage(language)) return plain(code, language);
    return { html: hljs.highlight(code, { language, ignoreIllegals: true }).value, language };
  }
  if (code.length > MAX_DETECTED_CHARS) return plain(code, null);
  const detected = hljs.highlightAuto(code);
  if (!detected.language || detected.relevance < MIN_RELEVANCE) return plain(code, null);
  return { html: detected.value, language: detected.language };
}

// highlight.js's classes: "hljs-keyword", "hljs-title function_" (a scope's sub-kinds end in
// "_"), "language-css" (a language embedded in another); the block's "hljs language-x".
const SPAN_CLASS = /^(?:hljs-[a-z_-]+|[a-z]+_+|language-[\w#+.-]+)$/;
const CODE_CLASS = /^(?:hljs|language-[\w#+.-]+)$/;

/**
 * The classes an element of a sanitized reply may keep: highlight.js's on spans and on the
 * code element, nothing anywhere else. Returns "" when none are left.
 * @param {string} tag lower case
 * @param {string} value the class attribute
 */
export function allowedClasses(tag, value) {
  const pattern = tag === "span" ? SPAN_CLASS : tag === "code" ? CODE_CLASS : null;
  if (!pattern) return "";
  return value
    .split(/\s+/)
    .filter((name) => pattern.test(name))
    .join(" ");
}

/**
 * The language a code element's classes name ("language-python"), for its label.
 * @param {string} className
 * @returns {string | null}
 */
export function languageOf(className) {
  const name = className.split(/\s+/).find((c) => c.startsWith("language-"));
  return name ? name.slice("language-".length) : null;
}
