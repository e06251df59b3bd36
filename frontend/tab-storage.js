// @ts-check
// What this tab keeps across its own reloads and redirects, in sessionStorage: gone when the tab
// closes, never shared with another. Storage can be refused (full, or disabled by the browser):
// then nothing is kept, and the page goes on with what it holds in memory.

/**
 * @param {string} name
 * @returns {string | null} what the tab keeps under `name`, if anything
 */
export function readTab(name) {
  try {
    return sessionStorage.getItem(name);
  } catch {
    return null;
  }
}

/**
 * @param {string} name
 * @param {string | null} value null (or "") forgets it
 */
export function keepInTab(name, value) {
  try {
    if (value) sessionStorage.setItem(name, value);
    else sessionStorage.removeItem(name);
  } catch {
    // Refused: see above.
  }
}
