// @ts-check
// Live updates: the conversation shown follows its stream (chat/events), so exchanges committed
// elsewhere (another tab or device, any replica, any client) appear as they are committed. One
// Live per conversation shown; reconcile.js decides which event is which, this module shows it.
//
// The stream (event-stream.js) is opened again when it ends or breaks, resuming after the last
// exchange it received (last_event_id), so nothing is missed and nothing repeated.
import { EventStream } from "./event-stream.js?v=518a5167dc";
import { stampExchange } from "./message-stamp.js?v=8f8a8af74a";
import { setExchange, shownText, UNSETTLED } from "./messages.js?v=2247cbb84c";
import { cutTurn, exchangeId, isExchange, isLater, parseJson } from "./protocol.js?v=bfc17f51c7";
import { Reconciler } from "./reconcile.js?v=90f53f5707";

/** @typedef {import("#page/follow.js").Follow} Follow */
/** @typedef {import("#page/history.js").Loaded} Loaded */
/** @typedef {import("#page/messages.js").Messages} Messages */
/** @typedef {import("#page/protocol.js").StoredExchange} StoredExchange */
/**
 * This page's exchange as it shows it: the message, the reply as shown, and their items.
 * @typedef {{ user: string, shown: string, userItem: HTMLElement, aiItem: HTMLElement }} Mine
 */
/** @typedef {import("#page/reconcile.js").Decision<HTMLElement, Mine>} Decision */

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
    /** @type {string | null} the id the stream resumes after when the page opens it again */
    this.after = null;
    // Opened once the history has loaded.
    this.events = new EventStream(
      "Live updates",
      () => {
        const params = new URLSearchParams({ conversation_id: this.conversationId });
        if (this.after !== null) params.set("last_event_id", this.after);
        return `chat/events?${params}`;
      },
      (event) => this.onEvent(event),
    );
    // Announcements of messages from elsewhere, and of a cut made elsewhere (said with the
    // exchanges that replace it, in one announcement).
    this.batch = { count: 0, last: "", cut: "", timer: 0 };
  }

  /**
   * Starts following, from where the history shown begins.
   * @param {Loaded} loaded
   */
  start(loaded) {
    if (this.events.source) return;
    this.after = loaded.after;
    this.reconciler.replay(loaded.after !== null ? loaded.shown : [], loaded.generation);
    this.events.open();
  }

  // The conversation shown changes: its stream, timers and announcements go with it.
  close() {
    this.events.close();
    clearTimeout(this.batch.timer);
  }

  /** @param {import("#page/sse.js").ServerSentEvent} event */
  onEvent(event) {
    const id = exchangeId(event.id);
    // The stream resumes after the last id it sent: an exchange's, or where a restart began.
    if (id !== null) this.after = id;
    if (event.type === "cut") {
      const turn = cutTurn(parseJson(event.data));
      if (turn !== null) this.cut(turn);
      return;
    }
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
    if (id !== null) setExchange(mine.userItem, mine.aiItem, id);
    this.apply(this.reconciler.own(id, mine, mine.userItem));
  }

  /**
   * Every exchange from `turn` on was erased (regenerated or edited here or elsewhere): what the
   * page shows of them goes. The page's own regenerate or edit removed them already; from
   * elsewhere, the reader is told.
   * @param {number} turn
   */
  cut(turn) {
    const removed = this.messages.removeFrom(turn, this.reconciler.cut(turn));
    if (removed === 0) return;
    this.messages.updateEmptyState();
    if (this.follow.following) this.follow.toBottom();
    this.batch.cut = `Messages from turn ${turn} on were removed elsewhere.`;
    this.scheduleAnnouncement();
  }

  /** @param {Decision[]} decisions */
  apply(decisions) {
    for (const decision of decisions) {
      if (decision.kind === "identified") {
        // A history item: its reply is the item after it.
        const aiItem = decision.ref.nextElementSibling;
        const isReply = aiItem instanceof HTMLElement && aiItem.matches(".message--ai");
        setExchange(decision.ref, isReply ? aiItem : null, decision.id);
      } else if (decision.kind === "confirmed") {
        const mine = decision.own;
        setExchange(mine.userItem, mine.aiItem, decision.id);
        stampExchange(mine.userItem, mine.aiItem, decision.exchange);
        // Stored now (a reply stopped or cut off): its chat moves up the list.
        this.onStored(this.conversationId);
        // A stopped reply is stored with every piece the service had sent, which can be more
        // than reached the page before it closed the stream: show what the history will show.
        if (decision.AI !== mine.shown) this.messages.setText(mine.aiItem, "ai", decision.AI);
        // (Its stamp and Edit show now too.)
        if (this.follow.following) this.follow.toBottom();
      } else if (!this.messages.list.querySelector(`[data-exchange="${decision.exchange.id}"]`)) {
        // (Unless a reload of the history shows it already.)
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
    setExchange(userItem, aiItem, exchange.id);
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
    this.scheduleAnnouncement();
  }

  scheduleAnnouncement() {
    const batch = this.batch;
    clearTimeout(batch.timer);
    batch.timer = setTimeout(() => {
      const news =
        batch.count === 0
          ? ""
          : batch.count === 1
            ? `New message from elsewhere. ${batch.last}`
            : `${batch.count} new messages from elsewhere. The latest: ${batch.last}`;
      this.announce([batch.cut, news].filter(Boolean).join(" "));
      batch.count = 0;
      batch.cut = "";
    }, ANNOUNCE_BATCH_MS);
  }
}
