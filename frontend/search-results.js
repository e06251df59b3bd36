// @ts-check
// Pure: the sidebar's search (GET /chat/search) as data: which query to send, what the answer
// must look like, and a result's date as shown. The snippet's parts stay data here; the sidebar
// renders them as text, the matches in <mark>, never as HTML.

export const MAX_QUERY_CHARS = 200;

/**
 * @typedef {{ text: string, match: boolean }} SnippetPart
 * @typedef {{
 *   conversation_id: string,
 *   conversation_title: string | null,
 *   turn: number,
 *   created_at: string,
 *   field: string,
 *   snippet: SnippetPart[],
 * }} SearchResult
 */

/**
 * The query to send for what the field holds, or null when there is none to send: blank (the
 * service refuses it, and the list is shown instead). Longer than the service takes, it is cut
 * at its limit (in characters, not UTF-16 units) rather than refused.
 * @param {string} text
 * @returns {string | null}
 */
export function queryOf(text) {
  const query = text.trim();
  if (!query) return null;
  return [...query].slice(0, MAX_QUERY_CHARS).join("");
}

/**
 * @param {string} query
 * @param {number} limit
 */
export function searchPath(query, limit) {
  return `chat/search?${new URLSearchParams({ q: query, limit: String(limit) })}`;
}

/**
 * @param {unknown} value
 * @returns {value is SnippetPart}
 */
function isSnippetPart(value) {
  if (value === null || typeof value !== "object") return false;
  const part = /** @type {Record<string, unknown>} */ (value);
  return typeof part.text === "string" && typeof part.match === "boolean";
}

/**
 * @param {unknown} value
 * @returns {value is SearchResult}
 */
export function isSearchResult(value) {
  if (value === null || typeof value !== "object") return false;
  const fields = /** @type {Record<string, unknown>} */ (value);
  return (
    typeof fields.conversation_id === "string" &&
    (fields.conversation_title === null || typeof fields.conversation_title === "string") &&
    Number.isInteger(fields.turn) &&
    typeof fields.created_at === "string" &&
    typeof fields.field === "string" &&
    Array.isArray(fields.snippet) &&
    fields.snippet.every(isSnippetPart)
  );
}

/**
 * The results of an answer of GET /chat/search, or null when it is not one.
 * @param {unknown} body
 * @returns {SearchResult[] | null}
 */
export function searchResults(body) {
  if (body === null || typeof body !== "object") return null;
  const results = /** @type {Record<string, unknown>} */ (body).results;
  return Array.isArray(results) && results.every(isSearchResult) ? results : null;
}

/**
 * What the reader is told of a search that answered.
 * @param {number} count
 */
export function matchesText(count) {
  if (count === 0) return "No chats match";
  return count === 1 ? "1 match" : `${count} matches`;
}

/**
 * A result's date, short, in the reader's time zone: "5 Dec", with the year when it is not this
 * year's ("5 Dec 2025"); empty when the service sent no readable time.
 * @param {string} createdAt
 * @param {Date} now
 */
export function shortDate(createdAt, now) {
  const ms = Date.parse(createdAt);
  if (Number.isNaN(ms)) return "";
  const when = new Date(ms);
  /** @type {Intl.DateTimeFormatOptions} */
  const options = { day: "numeric", month: "short" };
  if (when.getFullYear() !== now.getFullYear()) options.year = "numeric";
  return new Intl.DateTimeFormat("en-GB", options).format(when);
}

/**
 * Where the exchange at `turn` is among the exchanges a history page shows (oldest first), or
 * null when the page does not show it. `after` is the exchange just before the page, as
 * history.js's Loaded has it ("t0" when the page starts at the beginning; null: unknown).
 * @param {number} turn
 * @param {string | null} after
 * @param {number} count how many exchanges the page shows
 * @returns {number | null}
 */
export function indexOfTurn(turn, after, count) {
  const match = after === null ? null : /^t([0-9]{1,9})$/.exec(after);
  if (match === null) return null;
  const index = turn - Number(match[1]) - 1;
  return index >= 0 && index < count ? index : null;
}
