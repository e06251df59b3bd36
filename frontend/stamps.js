// @ts-check
// What a message says of itself, as pure functions (no DOM): when it was stored (a short local
// time, the date too for an earlier day, everything in the tooltip) and, for a reply, the model
// that gave it and the tokens it cost. The service's history items and live events carry these
// as `created_at` (RFC 3339, UTC), `model` and `usage`; older services send none of them.

/**
 * A reply's origin as the service sends it.
 * @typedef {{ input_tokens: number, output_tokens: number }} Usage
 * @typedef {{ created_at?: unknown, model?: unknown, usage?: unknown }} Stamped
 */

/**
 * Formatting choices; the page passes none (the reader's locale and time zone), tests fix them.
 * @typedef {{ locale?: string, timeZone?: string }} Where
 */

/**
 * The time of a `created_at`, or null when it is absent or unreadable.
 * @param {unknown} value
 * @returns {Date | null}
 */
export function timeOf(value) {
  if (typeof value !== "string" || !value) return null;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? null : new Date(ms);
}

/**
 * @param {Date} date
 * @param {Where} where
 */
function dayOf(date, { locale, timeZone }) {
  return new Intl.DateTimeFormat(locale ?? "en-CA", { timeZone, dateStyle: "short" }).format(date);
}

/**
 * The time shown beside a message: "14:05" today, "3 Dec 2026, 14:05" on an earlier day (in the
 * reader's locale's words and order; their clock's "today").
 * @param {Date} date
 * @param {Date} now
 * @param {Where} [where]
 */
export function shortTime(date, now, { locale, timeZone } = {}) {
  const today = dayOf(date, { timeZone }) === dayOf(now, { timeZone });
  /** @type {Intl.DateTimeFormatOptions} */
  const options = today
    ? { timeZone, timeStyle: "short" }
    : { timeZone, dateStyle: "medium", timeStyle: "short" };
  return new Intl.DateTimeFormat(locale, options).format(date);
}

/**
 * The whole date and time, for the tooltip: "Saturday 5 December 2026 at 14:05:09".
 * @param {Date} date
 * @param {Where} [where]
 */
export function fullTime(date, { locale, timeZone } = {}) {
  return new Intl.DateTimeFormat(locale, {
    timeZone,
    dateStyle: "full",
    timeStyle: "medium",
  }).format(date);
}

/**
 * @param {unknown} value
 * @returns {value is Usage}
 */
export function isUsage(value) {
  if (typeof value !== "object" || value === null) return false;
  const fields = /** @type {Record<string, unknown>} */ (value);
  return Number.isInteger(fields.input_tokens) && Number.isInteger(fields.output_tokens);
}

/**
 * What a reply says of its origin: "gpt-4o · 512 in · 48 out", the model alone when the tokens
 * are unknown (a cached or stopped reply), the tokens alone when the model is, or "" for neither.
 * @param {Stamped} stamped
 * @param {string} [locale]
 */
export function originText({ model, usage }, locale) {
  const parts = [];
  if (typeof model === "string" && model) parts.push(model);
  if (isUsage(usage)) {
    const count = new Intl.NumberFormat(locale);
    const [input, output] = [usage.input_tokens, usage.output_tokens].map(count.format);
    parts.push(`${input} in`, `${output} out`);
  }
  return parts.join(" · ");
}

/**
 * What a screen reader hears of it: the same, in words.
 * @param {Stamped} stamped
 * @param {string} [locale]
 */
export function originLabel({ model, usage }, locale) {
  const parts = [];
  if (typeof model === "string" && model) parts.push(`Model ${model}`);
  if (isUsage(usage)) {
    const count = new Intl.NumberFormat(locale);
    parts.push(
      `${count.format(usage.input_tokens)} tokens in, ${count.format(usage.output_tokens)} out`,
    );
  }
  return parts.join(", ");
}
