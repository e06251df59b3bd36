// Code blocks (code-blocks.js): a fence's language, when a streamed block is finished, the
// highlighting with the real highlight.js (the build npm ci installs), and the sanitizer's
// class filter.
import assert from "node:assert/strict";
import { test } from "node:test";

import hljs from "../node_modules/@highlightjs/cdn-assets/es/highlight.min.js";
import {
  allowedClasses,
  closedFence,
  fenceLanguage,
  highlighter,
  languageOf,
  MAX_DETECTED_CHARS,
  plain,
} from "../code-blocks.js";

const ATTACK = "<img src=x onerror=alert(1)>";

test("a fence's language is the first word of its info string, if a label can show it", () => {
  assert.equal(fenceLanguage("python"), "python");
  assert.equal(fenceLanguage(" c++ {.numberLines}"), "c++");
  assert.equal(fenceLanguage("objective-c"), "objective-c");
  assert.equal(fenceLanguage(""), null);
  assert.equal(fenceLanguage(undefined), null);
  assert.equal(fenceLanguage('x"><img'), null);
  assert.equal(fenceLanguage("a".repeat(33)), null);
});

test("a fenced block is finished once its closing fence is there", () => {
  assert.equal(closedFence("```python\nx = 1\n```"), true);
  assert.equal(closedFence("```python\nx = 1\n```\n\n"), true);
  assert.equal(closedFence("~~~\nx\n~~~~"), true);
  assert.equal(closedFence("````\n```\n````"), true);
  assert.equal(closedFence("```\n```"), true);
  // Still open: no closing line, a shorter or another kind of fence, or no fence at all.
  assert.equal(closedFence("```python\nx = 1\n"), false);
  assert.equal(closedFence("```python"), false);
  assert.equal(closedFence("````\nx\n```"), false);
  assert.equal(closedFence("~~~\nx\n```"), false);
  assert.equal(closedFence("```\nx\n`` "), false);
  assert.equal(closedFence("    indented code\n"), false);
});

test("highlighted code is escaped: an attack in it stays text", () => {
  const highlight = highlighter(hljs);
  for (const language of ["python", "html", "javascript"]) {
    const html = highlight(`x = '${ATTACK}'\n`, language).html ?? "";
    // Markup is highlight.js's spans alone; every other < and > is escaped.
    const text = html.replace(/<span class="[\w -]+">|<\/span>/g, "");
    assert.doesNotMatch(text, /[<>]/, `${language}: ${html}`);
    assert.match(text, /(&lt;|&#60;)img src=x onerror=alert\(1\)(&gt;|&#62;)/);
  }
  assert.deepEqual(plain(`${ATTACK}\n`, "text"), { html: null, language: "text" });
});

test("a named language is highlighted and keeps its name, known or not", () => {
  const highlight = highlighter(hljs);
  const python = highlight("print('hello')\n", "python");
  assert.equal(python.language, "python");
  assert.equal(
    python.html,
    '<span class="hljs-built_in">print</span>(<span class="hljs-string">&#x27;hello&#x27;</span>)\n',
  );
  assert.deepEqual(highlight("a <b>\n", "no-such-language"), {
    html: null,
    language: "no-such-language",
  });
});

test("a block without a language is detected when the guess is sure, else left plain", () => {
  const highlight = highlighter(hljs);
  const code =
    "const items = document.querySelectorAll('li');\n" +
    "for (const item of items) {\n  console.log(item.textContent);\n}\n";
  assert.equal(highlight(code, null).language, "javascript");
  assert.deepEqual(highlight("some words, not code\n", null), { html: null, language: null });
  // Too long to guess at on every language's rules.
  const long = `${code}\n`.repeat(Math.ceil(MAX_DETECTED_CHARS / code.length));
  assert.equal(highlight(long, null).language, null);
});

test("a block highlighted before comes from memory, the same result", () => {
  let calls = 0;
  const counting = { ...hljs, highlight: (...args) => (calls++, hljs.highlight(...args)) };
  const highlight = highlighter(/** @type {any} */ (counting));
  const first = highlight("x = 1\n", "python");
  assert.equal(highlight("x = 1\n", "python"), first);
  assert.equal(calls, 1);
  highlight("x = 1\n", "ruby"); // another language is another block
  assert.equal(calls, 2);
  // Only the last 64 are kept: the first is forgotten after 64 others.
  for (let n = 0; n < 64; n++) highlight(`y = ${n}\n`, "python");
  highlight("x = 1\n", "python");
  assert.equal(calls, 2 + 64 + 1);
});

test("only highlight.js's classes survive, on spans and code elements", () => {
  assert.equal(allowedClasses("span", "hljs-title function_"), "hljs-title function_");
  assert.equal(allowedClasses("span", "hljs-variable language_"), "hljs-variable language_");
  assert.equal(allowedClasses("span", "language-css"), "language-css");
  assert.equal(allowedClasses("code", "hljs language-c++"), "hljs language-c++");
  assert.equal(allowedClasses("span", "visually-hidden hljs-keyword"), "hljs-keyword");
  assert.equal(allowedClasses("span", "skip-link"), "");
  assert.equal(allowedClasses("code", "hljs-keyword"), "");
  assert.equal(allowedClasses("a", "hljs-keyword"), "");
  assert.equal(allowedClasses("p", "message"), "");
});

test("a code element's language is its language- class", () => {
  assert.equal(languageOf("hljs language-python"), "python");
  assert.equal(languageOf("hljs"), null);
  assert.equal(languageOf(""), null);
});
