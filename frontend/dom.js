// @ts-check
// The DOM helpers every view of the page shares. Text is always set as text (textContent), never
// parsed as HTML: user text, titles and replies cannot become markup, and the page's Trusted
// Types policy would refuse an HTML sink anyway.

/**
 * An element frontend.html holds, of the type the code relies on. Missing or of another type, it
 * throws at start-up: a renamed id in the page fails loudly rather than at first use.
 * @template {HTMLElement} T
 * @param {string} id
 * @param {{ new (): T }} type
 * @returns {T}
 */
export function byId(id, type) {
  const node = document.getElementById(id);
  if (!(node instanceof type)) throw new Error(`the page has no #${id} of the expected kind`);
  return node;
}

/**
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text] set as text, never as markup
 * @returns {HTMLElementTagNameMap[K]}
 */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * An in-place error: what went wrong and a button to try again.
 * @param {string} message
 * @param {() => void} onRetry
 */
export function errorNotice(message, onRetry) {
  const notice = element("div", "notice notice--error");
  notice.setAttribute("role", "alert");
  notice.append(element("span", "notice__text", message));
  const retry = element("button", "button button--small", "Retry");
  retry.type = "button";
  retry.addEventListener("click", onRetry);
  notice.append(retry);
  return notice;
}

/**
 * A small button whose name ends in words only screen readers hear ("Edit message"), like a
 * reply's Copy: the visible word begins its name (WCAG 2.5.3).
 * @param {string} shown
 * @param {string} hidden
 * @param {string} className
 */
export function actionButton(shown, hidden, className) {
  const button = element("button", `button button--small ${className}`, shown);
  button.type = "button";
  button.append(element("span", "visually-hidden", ` ${hidden}`));
  return button;
}
