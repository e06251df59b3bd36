// @ts-check
// Live updates: the conversation shown follows its stream (chat/events), so exchanges committed
// elsewhere (another tab or device, any replica, any client) appear as they are committed. One
// Live per conversation shown; reconcile.js decides which event is which, this module shows it.
//
// The stream is read with fetch() (sse.js), not EventSource, which cannot send the reader's
// credential: a header, never a URL parameter (credentials.js). Like EventSource, it opens the
// stream again when it ends or breaks, resuming after the last exchange it received
// (last_event_id), so nothing is missed and nothing repeated.
import { authorizedFetch } from "./credentials.js?v=b03bf63721";
import { stampExchange } from "./message-stamp.js?v=e50529ef95";
import { shownText, UNSETTLED } from "./messages.js?v=0d39805290";
import { exchangeId, isExchange, isLater, parseJson } from "./protocol.js?v=618811bbaf";
import { Reconciler } from "./reconcile.js?v=5855fda681";
import { readEvents } from "./sse.js?v=27108deb90";

/** @typedef {import("#page/follow.js").Follow} Follow */
/** @typedef {import("#page/history.js").Loaded} Loaded */
/** @typedef {import("#page/messages.js").Messages} Messages */
/** @typedef {import("#page/protocol.js").StoredExchange} StoredExchange */
/**
 * This page's exchange as it shows it: the message, the reply as shown, and their items.
 * @typedef {{ user: string, shown: string, userItem: HTMLElement, aiItem: HTMLElement }} Mine
 */
/** @typedef {import("#page/reconcile.js").Decision<HTMLElement, Mine>} Decision */

// After the stream ends, breaks or is refused (NGINX's 502 while the service restarts), it is
// opened again after these delays, once it has worked: a service that never streamed (an
// older one, without chat/events) is left alone, and so is a reader the service refused (401:
// the page asks them to sign in, and starts again once they have).
const RETRY_DELAYS_MS = [1_000, 2_000, 4_000, 8_000, 15_000, 30_000];
// Messages from elsewhere that arrive together (a catch-up after a reconnect) are announced
// once, not one over the other.
const ANNOUNCE_BATCH_MS = 150;

export class Live {
  /**
   * @param {string} conversationId
   * @param {{
   *   messages: Messages,
   *   follow: Follow,
   *   announce: (text: string) => void,
   *   onStored: (conversationId: string) => void,
   * }} parts onStored: an exchange is stored, from elsewhere or this page's own stopped one (the
   *   sidebar moves the chat up)
   */
  constructor(conversationId, { messages, follow, announce, onStored }) {
    this.conversationId = conversationId;
    this.messages = messages;
    this.follow = follow;
    this.announce = announce;
    this.onStored = onStored;
    /** @type {Reconciler<HTMLElement, Mine>} */
    this.reconciler = new Reconciler();
    /** @type {AbortController | null} ends the stream, open once the history has loaded */
    this.source = null;
    this.opened = false; // the stream worked at least once (the service has it)
    /** @type {string | null} the id the stream resumes after when the page opens it again */
    this.after = null;
    this.retry = 0;
    this.retryTimer = 0;
    this.batch = { count: 0, last: "", timer: 0 }; // announcements of messages from elsewhere
  }

  /**
   * Starts following, from where the history shown begins.
   * @param {Loaded} loaded
   */
  start(loaded) {
    if (this.source) return;
    this.after = loaded.after;
    if (loaded.after !== null) this.reconciler.replay(loaded.shown);
    this.open();
  }

  open() {
    const controller = new AbortController();
    this.source = controller;
    this.stream(controller.signal).catch((error) => {
      if (!controller.signal.aborted) console.error("Live updates stopped:", error);
    });
  }

  /**
   * Reads the stream until it ends, then opens it again after a delay, until `signal` aborts.
   * @param {AbortSignal} signal
   */
  async stream(signal) {
    for (;;) {
      const params = new URLSearchParams({ conversation_id: this.conversationId });
      if (this.after !== null) params.set("last_event_id", this.after);
      try {
        const response = await authorizedFetch(`chat/events?${params}`, {
          headers: { Accept: "text/event-stream" },
          signal,
        });
        const type = response.headers.get("Content-Type") ?? "";
        const streaming = response.ok && type.startsWith("text/event-stream");
        if (!streaming) {
          await response.body?.cancel();
          if (!this.opened || response.status === 401) return;
        } else {
          this.opened = true;
          this.retry = 0;
          for await (const event of readEvents(response)) {
            if (signal.aborted) return; // closed while a read held several events
            this.onEvent(event);
          }
        }
      } catch {
        if (signal.aborted) return;
        if (!this.opened) return; // never streamed: nothing to resume
      }
      if (signal.aborted) return;
      await this.pause(signal);
      if (signal.aborted) return;
    }
  }

  /**
   * The next delay before opening the stream again (cut short by `signal`).
   * @param {AbortSignal} signal
   */
  pause(signal) {
    const delays = RETRY_DELAYS_MS;
    const delay = delays[Math.min(this.retry, delays.length - 1)];
    this.retry += 1;
    return new Promise((resolve) => {
      this.retryTimer = setTimeout(resolve, delay);
      signal.addEventListener("abort", () => resolve(undefined), { once: true });
    });
  }

  // The conversation shown changes: its stream, timers and announcements go with it.
  close() {
    this.source?.abort();
    this.source = null;
    clearTimeout(this.retryTimer);
    clearTimeout(this.batch.timer);
  }

  /** @param {import("#page/sse.js").ServerSentEvent} event */
  onEvent(event) {
    const id = exchangeId(event.id);
    // The stream resumes after the last id it sent: an exchange's, or where a restart began.
    if (id !== null) this.after = id;
    if (event.type !== "exchange") return;
    const data = parseJson(event.data);
    if (id === null || !isExchange(data)) return;
    this.apply(this.reconciler.receive({ ...data, id }));
  }

  /**
   * The page is sending a message: live events with the same text wait for its answer.
   * @param {string} text
   */
  startAnswer(text) {
    this.reconciler.startAnswer(text);
  }

  // The answer has ended: the events held meanwhile are placed now.
  endAnswer() {
    this.apply(this.reconciler.endAnswer());
  }

  /**
   * This page's exchange is stored: `id` from its done event, or null (recognised when it
   * comes back).
   * @param {string | null} id
   * @param {Mine} mine
   */
  own(id, mine) {
    this.apply(this.reconciler.own(id, mine, mine.userItem));
  }

  /** @param {Decision[]} decisions */
  apply(decisions) {
    for (const decision of decisions) {
      if (decision.kind === "identified") {
        decision.ref.dataset.exchange = decision.id;
      } else if (decision.kind === "confirmed") {
        const mine = decision.own;
        mine.userItem.dataset.exchange = decision.id;
        stampExchange(mine.userItem, mine.aiItem, decision.exchange);
        // Stored now (a reply stopped or cut off): its chat moves up the list.
        this.onStored(this.conversationId);
        // A stopped reply is stored with every piece the service had sent, which can be more
        // than reached the page before it closed the stream: show what the history will show.
        if (decision.AI === mine.shown) continue;
        this.messages.setText(mine.aiItem, "ai", decision.AI);
        if (this.follow.following) this.follow.toBottom();
      } else {
        this.showFromElsewhere(decision.exchange);
      }
    }
  }

  /**
   * Shown in id order among the stored messages (before any unsent or pending ones), followed
   * by the scrolling, and announced.
   * @param {StoredExchange} exchange
   */
  showFromElsewhere(exchange) {
    const messages = this.messages;
    const userItem = messages.item("user", exchange.user);
    const aiItem = messages.item("ai", exchange.AI);
    userItem.dataset.exchange = exchange.id;
    stampExchange(userItem, aiItem, exchange);
    const identified = /** @type {NodeListOf<HTMLElement>} */ (
      messages.list.querySelectorAll(".message--user[data-exchange]")
    );
    const newer = [...identified].find((item) =>
      isLater(item.dataset.exchange ?? "t0", exchange.id),
    );
    const place = newer ?? messages.list.querySelector(UNSETTLED);
    if (place) place.before(userItem, aiItem);
    else messages.list.append(userItem, aiItem);
    messages.updateEmptyState();
    this.follow.followOrNotify();
    this.announceFromElsewhere(userItem, aiItem);
    // The conversation moved to the top of the list; a first message also gave it a title.
    this.onStored(this.conversationId);
  }

  /**
   * @param {HTMLElement} userItem
   * @param {HTMLElement} aiItem
   */
  announceFromElsewhere(userItem, aiItem) {
    const batch = this.batch;
    batch.count += 1;
    batch.last = `You: ${shownText(userItem)} Assistant: ${shownText(aiItem)}`;
    clearTimeout(batch.timer);
    batch.timer = setTimeout(() => {
      this.announce(
        batch.count === 1
          ? `New message from elsewhere. ${batch.last}`
          : `${batch.count} new messages from elsewhere. The latest: ${batch.last}`,
      );
      batch.count = 0;
    }, ANNOUNCE_BATCH_MS);
  }
}
