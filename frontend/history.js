// @ts-check
// The conversation's history: its latest page when the conversation opens, older pages on
// "Load earlier messages" or when the top of the history scrolls into view. Paging follows the
// Link header (rel="next"), so the page never builds a cursor itself.
import { ApiError } from "./api.js?v=fa6542a0b2";
import { errorNotice } from "./dom.js?v=e991253526";
import { generationShown, isExchangeList, replayStart } from "./protocol.js?v=bfc17f51c7";

/** @typedef {import("#page/api.js").Api} Api */
/** @typedef {import("#page/connection.js").Connection} Connection */
/** @typedef {import("#page/follow.js").Follow} Follow */
/** @typedef {import("#page/messages.js").Messages} Messages */
/** @typedef {import("#page/protocol.js").Exchange} Exchange */
/**
 * The conversation shown. Each one the page opens is a new object, so an answer that arrives for
 * one no longer shown (compared by identity) never touches the page.
 * @typedef {{ readonly id: string }} Shown
 */
/**
 * The history the page shows, for the live stream: where it starts (see replayStart), the
 * highest generation of what it shows (an exchange with a lower one was cut), and the exchanges
 * shown, oldest first, each with its user item.
 * @typedef {{ after: string | null, generation: number,
 *   shown: Array<Exchange & { ref: HTMLElement }> }} Loaded
 */

const HISTORY_PAGE_SIZE = 50;
const TIMEOUT_MS = 15_000;
const LOAD_EARLIER = "Load earlier messages";
const UNKNOWN_FORMAT = "The history came in an unknown format.";

export class History {
  /**
   * @param {{
   *   api: Api,
   *   connection: Connection,
   *   messages: Messages,
   *   follow: Follow,
   *   log: HTMLElement,
   *   loadEarlierButton: HTMLButtonElement,
   *   notice: HTMLElement,
   *   onLoaded: (loaded: Loaded) => void,
   * }} parts onLoaded: the latest page is shown
   */
  constructor({ api, connection, messages, follow, log, loadEarlierButton, notice, onLoaded }) {
    this.api = api;
    this.connection = connection;
    this.messages = messages;
    this.follow = follow;
    this.log = log;
    this.button = loadEarlierButton;
    this.notice = notice;
    this.onLoaded = onLoaded;
    /** @type {Shown | null} */
    this.shown = null;
    /** @type {string | null} the URL of the next older page, from the Link header */
    this.nextPage = null;
    this.loadingEarlier = false;
    this.earlierFailed = false;
    /** @type {IntersectionObserver | null} */
    this.topObserver = null;
    this.button.addEventListener("click", () => this.loadEarlier());
  }

  /**
   * Another conversation is shown: start over, then load its latest page.
   * @param {Shown} shown
   */
  show(shown) {
    this.shown = shown;
    this.loadingEarlier = false;
    this.earlierFailed = false;
    this.button.disabled = false;
    this.button.textContent = LOAD_EARLIER;
    this.setNextPage(null);
    this.clearNotice();
  }

  async loadLatest() {
    this.clearNotice();
    const shown = this.shown;
    if (shown === null) return;
    try {
      const params = new URLSearchParams({
        conversation_id: shown.id,
        limit: String(HISTORY_PAGE_SIZE),
      });
      const { response, body } = await this.api.call(`chat/history?${params}`, {}, TIMEOUT_MS);
      if (shown !== this.shown) return; // another conversation is shown now
      if (!isExchangeList(body)) throw new ApiError(UNKNOWN_FORMAT);
      this.messages.removeSettled();
      const items = this.messages.exchangeItems(body);
      const userItems = /** @type {NodeListOf<HTMLElement>} */ (
        items.querySelectorAll(".message--user")
      );
      this.messages.list.prepend(items);
      this.setNextPage(this.api.nextLink(response));
      this.messages.historyLoaded = true;
      this.messages.updateEmptyState();
      this.follow.toBottom();
      this.watchTop();
      const generation = generationShown(body);
      this.onLoaded({
        after: replayStart(response.headers.get("Link"), response.url, generation),
        generation,
        shown: body.map((exchange, index) => ({ ...exchange, ref: userItems[index] })),
      });
    } catch (error) {
      if (shown !== this.shown) return;
      const failure = asApiError(error);
      this.connection.report(failure);
      this.showNotice(`Couldn't load the conversation. ${failure.message}`, () =>
        this.loadLatest(),
      );
    }
  }

  // `automatic` is a load asked for by scrolling; after a failure only the Retry button loads
  // again, so an outage does not turn into a request loop.
  async loadEarlier({ automatic = false } = {}) {
    const shown = this.shown;
    const url = this.nextPage;
    if (!url || this.loadingEarlier || (automatic && this.earlierFailed)) return;
    this.loadingEarlier = true;
    this.button.disabled = true;
    this.button.textContent = "Loading earlier messages…";
    this.clearNotice();
    try {
      const { response, body } = await this.api.call(url, {}, TIMEOUT_MS);
      if (shown !== this.shown) return; // another conversation is shown now
      if (!isExchangeList(body)) throw new ApiError(UNKNOWN_FORMAT);
      // What the reader is looking at stays in place while older messages appear above it.
      this.follow.keepingPlace(() => this.messages.list.prepend(this.messages.exchangeItems(body)));
      this.earlierFailed = false;
      this.setNextPage(this.api.nextLink(response));
    } catch (error) {
      if (shown !== this.shown) return;
      const failure = asApiError(error);
      this.connection.report(failure);
      this.earlierFailed = true;
      this.showNotice(`Couldn't load earlier messages. ${failure.message}`, () =>
        this.loadEarlier(),
      );
    } finally {
      if (shown === this.shown) {
        this.loadingEarlier = false;
        this.button.disabled = false;
        this.button.textContent = LOAD_EARLIER;
      }
    }
  }

  /** @param {string | null} url */
  setNextPage(url) {
    this.nextPage = url;
    this.button.hidden = !url;
  }

  /**
   * @param {string} message
   * @param {() => void} retry
   */
  showNotice(message, retry) {
    this.notice.replaceChildren(errorNotice(message, retry));
  }

  clearNotice() {
    this.notice.replaceChildren();
  }

  // Older pages load by themselves when the top of the history scrolls into view.
  watchTop() {
    if (this.topObserver) return;
    this.topObserver = new IntersectionObserver(
      (entries) => {
        if (entries.some((entry) => entry.isIntersecting)) this.loadEarlier({ automatic: true });
      },
      { root: this.log, rootMargin: "200px 0px 0px 0px" },
    );
    this.topObserver.observe(this.button);
  }
}

/**
 * Api.call throws ApiErrors only; anything else (a bug) is reported the same way.
 * @param {unknown} error
 */
function asApiError(error) {
  if (error instanceof ApiError) return error;
  return new ApiError(error instanceof Error ? error.message : String(error));
}
