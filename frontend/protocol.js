// @ts-check
// What the service's answers mean, as pure functions (no DOM, no fetch): exchange ids, the
// history's Link header, the traceresponse header, error bodies. Unit-tested with node --test.

/**
 * An exchange as the history and the live stream carry it; services since issue 25 add when it
 * was stored, the model that replied and the tokens it cost (stamps.js reads them), and history
 * items their id (`id`, the cursor).
 * @typedef {{ user: string, AI: string, turn?: unknown, id?: unknown, created_at?: unknown,
 *   model?: unknown, usage?: unknown }} Exchange
 */
/**
 * An exchange with its id (the live stream's event id).
 * @typedef {Exchange & { id: string }} StoredExchange
 */

// An exchange's id (its history cursor), as the service writes it: "t" and the exchange's turn
// in its conversation, up to 9 digits, and once the conversation has been cut (regenerated or
// edited), "." and its generation: how many cuts the conversation had when the exchange was
// stored. "t5" is "t5.0". Earlier versions of the service sent bare numbers (ids counted across
// every conversation): those are no ids here.
const EXCHANGE_ID = /^t([0-9]{1,9})(?:\.([0-9]{1,9}))?$/;
const TRACERESPONSE = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;

/**
 * The canonical id of an exchange: generation 0 is written without it, as the service does.
 * @param {number} turn
 * @param {number} [generation]
 */
export const idOf = (turn, generation = 0) =>
  generation > 0 ? `t${turn}.${generation}` : `t${turn}`;

/** @param {string} id canonical */
export const turnOf = (id) => Number(id.slice(1).split(".")[0]);

/** @param {string} id canonical */
export const generationOf = (id) => Number(id.split(".")[1] ?? 0);

/**
 * An id as the service writes it, canonical (so equal ids are equal strings), or null.
 * @param {unknown} value
 * @returns {string | null}
 */
export function exchangeId(value) {
  const match = typeof value === "string" ? EXCHANGE_ID.exec(value) : null;
  return match ? idOf(Number(match[1]), Number(match[2] ?? 0)) : null;
}

/**
 * The id of a history item: its `id`, or, from a service that sends only the turn, the turn's.
 * @param {Exchange} exchange
 * @returns {string | null}
 */
export function idOfItem(exchange) {
  const id = exchangeId(exchange.id);
  if (id !== null) return id;
  const turn = exchange.turn;
  return typeof turn === "number" && Number.isInteger(turn) && turn >= 0 ? idOf(turn) : null;
}

/**
 * Whether canonical id `a` comes after `b` in the conversation, by turn. Two ids of one turn and
 * different generations are different exchanges (one replaced the other), neither later.
 * @param {string} a
 * @param {string} b
 */
export function isLater(a, b) {
  return turnOf(a) > turnOf(b);
}

/**
 * The highest generation among the ids of a history page (0 without any): what the page shows
 * is as of that generation, and the live stream resumes knowing it (replayStart).
 * @param {Exchange[]} exchanges
 */
export function generationShown(exchanges) {
  let highest = 0;
  for (const exchange of exchanges) {
    const id = idOfItem(exchange);
    if (id !== null) highest = Math.max(highest, generationOf(id));
  }
  return highest;
}

/**
 * The turn a `cut` event of the live stream erases from (every exchange from it on), or null.
 * @param {unknown} data its parsed data, `{"turn": N}`
 * @returns {number | null}
 */
export function cutTurn(data) {
  if (typeof data !== "object" || data === null) return null;
  const turn = /** @type {Record<string, unknown>} */ (data).turn;
  return typeof turn === "number" && Number.isInteger(turn) && turn >= 1 ? turn : null;
}

/**
 * @param {string} text
 * @returns {unknown} the parsed value, or null when the text is not JSON
 */
export function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

/**
 * @param {unknown} value
 * @returns {value is Exchange}
 */
export function isExchange(value) {
  if (typeof value !== "object" || value === null) return false;
  const fields = /** @type {Record<string, unknown>} */ (value);
  return typeof fields.user === "string" && typeof fields.AI === "string";
}

/**
 * @param {unknown} body
 * @returns {body is Exchange[]}
 */
export function isExchangeList(body) {
  return Array.isArray(body) && body.every(isExchange);
}

/**
 * The target of an RFC 8288 Link header's rel="next", resolved against `base`, or null.
 * @param {string | null} header
 * @param {string} base the URL the header came with
 * @returns {URL | null}
 */
export function nextTarget(header, base) {
  if (!header) return null;
  for (const part of header.split(",")) {
    const match = /<([^>]*)>\s*;(?:.*;)?\s*rel="?next"?/i.exec(part);
    if (match) return new URL(match[1], base);
  }
  return null;
}

/**
 * Where the live stream of a conversation starts, from the Link header of its first history page:
 * the id it resumes after ("t0" is the beginning), or null for "now".
 *
 * Following from "now" once the history is read would miss an exchange committed in between;
 * following first and comparing what arrives meanwhile with the history by text could not tell
 * a new exchange from an older one with the same text. So the stream starts just before the
 * oldest exchange shown (the `before` of the Link header), or at the beginning when the page
 * shows the whole conversation (no Link): the service sends the shown exchanges again, oldest
 * first, then everything newer. Turns only grow within a conversation, so the first events are
 * exactly the exchanges shown, each with its id. The price: the shown page is read twice. A Link
 * header without a usable cursor gives null.
 *
 * The id carries `generation`, the highest of the history shown (generationShown): the service
 * then sends a `cut` only for what was cut after the page read its history, never for what it
 * shows already replaced.
 * @param {string | null} header
 * @param {string} base
 * @param {number} [generation]
 * @returns {string | null}
 */
export function replayStart(header, base, generation = 0) {
  if (!header) return idOf(0, generation);
  const before = exchangeId(nextTarget(header, base)?.searchParams.get("before"));
  return before !== null && turnOf(before) > 0 ? idOf(turnOf(before) - 1, generation) : null;
}

/**
 * The trace id of a W3C traceresponse header, or null (absent, malformed, or all zeros).
 * @param {string | null} header
 * @returns {string | null}
 */
export function traceIdOf(header) {
  const match = TRACERESPONSE.exec(header?.trim() ?? "");
  return match && !/^0+$/.test(match[1]) ? match[1] : null;
}

/**
 * What to tell the reader about an error answer: the service's own message when it sent one
 * (the contract's error shape), else the status.
 * @param {{ status: number, statusText: string }} response
 * @param {unknown} body
 */
export function errorMessage(response, body) {
  const message = typeof body === "object" && body !== null && "message" in body && body.message;
  if (typeof message === "string" && message.trim()) return message;
  const reason = response.statusText ? ` ${response.statusText}` : "";
  return `The service answered with an error (HTTP ${response.status}${reason}).`;
}
