// @ts-check
// Which live event is which: the pure part of live updates (live.js does the DOM). Every
// exchange committed to the conversation comes on its live stream with its id, whoever sent it,
// this page included, and the page shows each id once:
// - the history the page loaded: the stream starts with it (protocol.js, replayStart), which
//   tells the page the ids of what it shows;
// - this page's own messages: the done event of a streamed reply carries the exchange's id. An
//   exchange may arrive before that done event, so one whose message is the one being answered
//   right now is held until the answer ends, then looked at again. A reply that ended early
//   (Stop, a cut-off stream) is stored but gets no done event: it is recognised as the exchange
//   with the same message whose reply starts with what the page showed;
// - everything else is from elsewhere: the page shows it, in id order.
// A `cut` (an exchange regenerated or edited, here or elsewhere) erases every exchange from its
// turn on: the page forgets their ids, and the exchanges that replace them come next, with ids
// of a higher generation. The page's own replacement may be known already (its done event came
// first): its generation is above any the stream has sent, and it stays.
// No DOM here: what the page shows for an exchange is an opaque `ref`, so node --test covers it.

import { generationOf, turnOf } from "./protocol.js?v=bfc17f51c7";

/** @typedef {import("#page/protocol.js").StoredExchange} StoredExchange */

/**
 * This page's own exchange, shown without an id yet (a stopped reply, a JSON answer).
 * @typedef {{ user: string, shown: string }} Own the message, and the reply as the page showed it
 */

/**
 * What the page does with a live event:
 * - "identified": an exchange it shows (`ref`) has this id;
 * - "confirmed": its own exchange `own`, shown without an id, has come back stored: `id`, and the
 *   reply `AI` as stored (a stopped reply can hold more than reached the page), in `exchange`;
 * - "new": an exchange from elsewhere, to show.
 * @template R, O
 * @typedef {{ kind: "identified", id: string, ref: R }
 *   | { kind: "confirmed", id: string, own: O, AI: string, exchange: StoredExchange }
 *   | { kind: "new", exchange: StoredExchange }} Decision
 */

/**
 * @template R what the page shows for an exchange of its history (its user item)
 * @template {Own} O what the page keeps of its own exchanges
 */
export class Reconciler {
  constructor() {
    /** @type {Set<string>} ids of the exchanges the page shows */
    this.known = new Set();
    /** @type {Array<{ user: string, AI: string, ref: R }>} history still waiting for its id */
    this.replayed = [];
    /** @type {StoredExchange[]} events that may be the page's own, while it is answered */
    this.held = [];
    /** @type {O[]} own exchanges shown without an id */
    this.unconfirmed = [];
    /** @type {string | null} the message being answered now */
    this.answering = null;
    // The highest generation the page knows the stream to have told it (the history's, then
    // each exchange's): what a cut erases is of that generation or lower.
    this.generation = 0;
  }

  /**
   * The history shown, oldest first, which the stream is about to send again (none when the
   * stream starts from now), and the highest generation among it.
   * @param {Array<{ user: string, AI: string, ref: R }>} shown
   * @param {number} [generation]
   */
  replay(shown, generation = 0) {
    this.replayed = [...shown];
    this.generation = Math.max(this.generation, generation);
  }

  /**
   * A cut: every exchange from `turn` on is erased. Their ids are forgotten (an exchange that
   * replaces one comes with another id anyway), and so are the events held meanwhile. Returns
   * the generation of what goes: exchanges shown with a higher one were stored after the cut.
   * @param {number} turn
   * @returns {number}
   */
  cut(turn) {
    // The replay is over: the stream sends the exchanges shown below the cut first.
    this.replayed = [];
    const erased = (/** @type {string} */ id) =>
      turnOf(id) >= turn && generationOf(id) <= this.generation;
    for (const id of this.known) if (erased(id)) this.known.delete(id);
    this.held = this.held.filter((exchange) => !erased(exchange.id));
    return this.generation;
  }

  /**
   * The page sent a message and waits for its answer.
   * @param {string} message
   */
  startAnswer(message) {
    this.answering = message;
  }

  /**
   * The answer has ended (the page has told `own` about it, if it is stored): the events held
   * meanwhile can be placed now.
   * @returns {Array<Decision<R, O>>}
   */
  endAnswer() {
    this.answering = null;
    const held = this.held;
    this.held = [];
    return held.flatMap((exchange) => this.receive(exchange));
  }

  /**
   * One of the page's own exchanges is stored: `id` from its done event, or null when it has
   * none (then it is recognised when it comes back on the stream).
   * @param {string | null} id
   * @param {O} own
   * @param {R} ref
   * @returns {Array<Decision<R, O>>}
   */
  own(id, own, ref) {
    if (id === null) {
      this.unconfirmed.push(own);
      return [];
    }
    this.known.add(id);
    return [{ kind: "identified", id, ref }];
  }

  /**
   * An exchange from the live stream.
   * @param {StoredExchange} exchange
   * @returns {Array<Decision<R, O>>}
   */
  receive(exchange) {
    this.generation = Math.max(this.generation, generationOf(exchange.id));
    if (this.replayed.length) {
      // The history shown, sent again: its next exchange (or a later one, should some have been
      // deleted meanwhile). Anything else means the replay is over.
      const index = this.replayed.findIndex(
        (shown) => shown.user === exchange.user && shown.AI === exchange.AI,
      );
      if (index !== -1) {
        const { ref } = this.replayed[index];
        this.replayed.splice(0, index + 1);
        this.known.add(exchange.id);
        return [{ kind: "identified", id: exchange.id, ref }];
      }
      this.replayed = [];
    }
    if (this.known.has(exchange.id)) return [];
    if (this.answering === exchange.user) {
      this.held.push(exchange); // perhaps the page's own: decided when its answer ends
      return [];
    }
    this.known.add(exchange.id);
    const index = this.unconfirmed.findIndex(
      (own) => own.user === exchange.user && exchange.AI.startsWith(own.shown),
    );
    if (index !== -1) {
      const [own] = this.unconfirmed.splice(index, 1);
      return [{ kind: "confirmed", id: exchange.id, own, AI: exchange.AI, exchange }];
    }
    return [{ kind: "new", exchange }];
  }
}
