// @ts-check
// The name of a downloaded file, pure (no DOM): the one the service's Content-Disposition gives
// (RFC 6266: filename*=UTF-8''… first, else filename="…"), else one made from the chat's title.

// eslint-disable-next-line no-control-regex -- control characters are what it takes out
const UNSAFE = /[\u0000-\u001f\u007f/\\:*?"<>|]+/g;

/**
 * @param {string} name
 * @returns {string} without path separators and characters file systems refuse
 */
function safe(name) {
  return name.replace(UNSAFE, "_").trim().replace(/^\.+/, "");
}

/**
 * The file name a Content-Disposition header gives, or null.
 * @param {string | null} header
 * @returns {string | null}
 */
export function dispositionName(header) {
  if (!header) return null;
  const extended = /filename\*\s*=\s*([^']*)'[^']*'([^;]+)/i.exec(header);
  if (extended) {
    try {
      const name = safe(decodeURIComponent(extended[2].trim()));
      if (name) return name;
    } catch {
      // a broken encoding: the plain name, if any
    }
  }
  const plain = /filename\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^;\s]+))/i.exec(header);
  if (!plain) return null;
  const name = safe((plain[1] ?? plain[2]).replace(/\\(.)/g, "$1"));
  return name || null;
}

/**
 * A name from the chat's title when the service gave none: "My chat.md", "chat.json".
 * @param {string | null | undefined} title
 * @param {"markdown" | "json"} format
 */
export function fallbackName(title, format) {
  const base = safe(title ?? "").slice(0, 100) || "chat";
  return `${base}.${format === "json" ? "json" : "md"}`;
}
