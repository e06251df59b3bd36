// @ts-check
// A Copy button (a code block's, a whole reply's): "Copy" on screen, "Copy code" or "Copy reply"
// to a screen reader, since the name holds the words shown (WCAG 2.5.3), then "Copied" for a
// moment, or "Copy failed" when the browser refused.

const COPIED_MS = 1500;

/**
 * A button that copies `text()` (read when pressed), or null where the browser gives the page
 * no clipboard (an insecure origin).
 * @param {string} what the hidden end of its name: "code", "reply"
 * @param {() => string} text
 * @param {string} className
 * @returns {HTMLButtonElement | null}
 */
export function copyButton(what, text, className) {
  if (!navigator.clipboard) return null;
  const button = document.createElement("button");
  button.type = "button";
  button.className = `button button--small ${className}`;
  const ready = () => {
    const hidden = document.createElement("span");
    hidden.className = "visually-hidden";
    hidden.textContent = ` ${what}`;
    button.replaceChildren("Copy", hidden);
  };
  ready();
  button.addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(text());
      button.textContent = "Copied";
    } catch {
      button.textContent = "Copy failed";
    }
    setTimeout(ready, COPIED_MS);
  });
  return button;
}
