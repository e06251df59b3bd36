// @ts-check
// The page's optional settings, config.json: {"jaegerBaseUrl": ""}. Without the file, or with an
// empty jaegerBaseUrl, replies get no trace links.

const TIMEOUT_MS = 15_000;

/**
 * The Jaeger UI's base URL, or "" (no trace links).
 * @returns {Promise<string>}
 */
export async function loadJaegerBaseUrl() {
  try {
    const response = await fetch("config.json", {
      cache: "no-cache",
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    const config = response.ok ? await response.json() : {};
    return safeBaseUrl(config?.jaegerBaseUrl);
  } catch {
    return ""; // a missing or broken config only hides the optional links
  }
}

/**
 * Only http(s) URLs become links, so a bad config cannot inject javascript: URLs.
 * @param {unknown} value
 * @returns {string} the URL without trailing slashes, or ""
 */
export function safeBaseUrl(value) {
  if (typeof value !== "string" || !value.trim()) return "";
  try {
    const url = new URL(value.trim());
    return url.protocol === "http:" || url.protocol === "https:" ? url.href.replace(/\/+$/, "") : "";
  } catch {
    return "";
  }
}
