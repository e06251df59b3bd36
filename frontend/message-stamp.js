// @ts-check
// Each message's time, and each reply's model and tokens, under its bubble: a <time datetime>
// showing the short local time (the date too for an earlier day; everything in its title), and
// "gpt-4o · 512 in · 48 out". What is known only: an older service's items, and messages not
// stored yet, get nothing. A streamed reply is stamped once stored, from the service's own
// record of it (ReplyStamps), not from the page's clock.
import { element } from "./dom.js?v=e991253526";
import { idOfItem, isExchange } from "./protocol.js?v=bfc17f51c7";
import { fullTime, originLabel, originText, shortTime, timeOf } from "./stamps.js?v=896d9e3827";

/** @typedef {import("#page/stamps.js").Stamped} Stamped */
/** @typedef {import("#page/api.js").Api} Api */

const TIMEOUT_MS = 15_000;

/**
 * Puts (or replaces) the line under a message.
 * @param {HTMLElement} item
 * @param {Stamped} stamped
 * @param {{ origin: boolean }} options origin: a reply's, which names its model and tokens
 */
export function stamp(item, stamped, { origin }) {
  const date = timeOf(stamped.created_at);
  const originShown = origin ? originText(stamped) : "";
  if (!date && !originShown) return;
  const line = element("p", "message__stamp");
  if (date) {
    const time = element("time", "message__time", shortTime(date, new Date()));
    time.dateTime = date.toISOString();
    time.title = fullTime(date);
    line.append(time);
  }
  if (originShown) {
    if (date) line.append(element("span", "message__sep", " · "));
    const what = element("span", "message__origin", originShown);
    // The dots and "in"/"out" read poorly aloud: the same said in words.
    what.setAttribute("aria-label", originLabel(stamped));
    what.setAttribute("role", "note");
    line.append(what);
  }
  const body = item.querySelector(".message__body");
  if (!body) return;
  body.querySelector(":scope > .message__stamp")?.remove();
  // Right under the bubble, before a reply's Copy button.
  body.querySelector(":scope > .bubble")?.after(line);
}

/**
 * Stamps both messages of an exchange.
 * @param {HTMLElement} userItem
 * @param {HTMLElement} aiItem
 * @param {Stamped} exchange
 */
export function stampExchange(userItem, aiItem, exchange) {
  stamp(userItem, { created_at: exchange.created_at }, { origin: false });
  stamp(aiItem, exchange, { origin: true });
}

// A streamed reply's done event says only the reply and its id: once it is stored, the newest
// history item is that exchange, with the time the service stored it, the model that replied
// and the tokens it reported.
export class ReplyStamps {
  /** @param {Api} api */
  constructor(api) {
    this.api = api;
  }

  /**
   * @param {string} conversationId
   * @param {string | null} id the exchange's id ("t<turn>" or "t<turn>.<generation>"), from its
   *   done event
   * @param {HTMLElement} userItem
   * @param {HTMLElement} aiItem
   */
  async stored(conversationId, id, userItem, aiItem) {
    if (id === null) return;
    const params = new URLSearchParams({ conversation_id: conversationId, limit: "1" });
    try {
      const { body } = await this.api.call(`chat/history?${params}`, {}, TIMEOUT_MS);
      const newest = Array.isArray(body) ? body.at(-1) : null;
      // Another message may have been stored since (or this one cut and replaced): only this
      // exchange's own record will do.
      if (isExchange(newest) && idOfItem(newest) === id) stampExchange(userItem, aiItem, newest);
    } catch {
      // Only the stamp is missing; the history shows it after a reload.
    }
  }
}
