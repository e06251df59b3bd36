// @ts-check
// Searching the reader's chats from the sidebar (GET /chat/search): the field above the list;
// typing (after a pause) or Enter asks the service, and while the field holds a query the results
// take the list's place. Each result shows its chat's title, the snippet (its matches in <mark>)
// and the date; choosing one opens that chat. Escape in the field, or clearing it, brings the list
// back. What a search found, or that it found nothing, is announced politely.
//
// Snippets and titles are user text: built from text nodes only, never parsed as HTML.
// data-state on the results says where the search stands: searching, results, empty or failed
// (tests wait for it).
import { titleOf } from "./conversations.js?v=239fb18723";
import { byId, element, errorNotice } from "./dom.js?v=e991253526";
import {
  indexOfTurn,
  matchesText,
  queryOf,
  searchPath,
  searchResults,
  shortDate,
} from "./search-results.js?v=17c6a55688";

/** @typedef {import("#page/api.js").Api} Api */
/** @typedef {import("#page/history.js").Loaded} Loaded */
/** @typedef {{ id: string, turn: number, field: string }} Found a result chosen */
/** @typedef {import("#page/search-results.js").SearchResult} SearchResult */

const DEBOUNCE_MS = 300;
const RESULT_LIMIT = 20;
const TIMEOUT_MS = 15_000;

export class SidebarSearch {
  /**
   * @param {{
   *   api: Api,
   *   announce: (text: string) => void,
   *   hrefFor: (id: string) => string,
   *   onSelect: (id: string) => void,
   * }} parts onSelect: the reader chose a result's chat
   */
  constructor({ api, announce, hrefFor, onSelect }) {
    this.api = api;
    this.announce = announce;
    this.hrefFor = hrefFor;
    this.onSelect = onSelect;
    this.sidebar = byId("sidebar", HTMLElement);
    this.form = byId("chat-search", HTMLFormElement);
    this.input = byId("chat-search-input", HTMLInputElement);
    this.results = byId("search-results", HTMLElement);
    this.status = byId("search-status", HTMLElement);
    this.list = byId("search-list", HTMLOListElement);
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.timer = undefined;
    this.asked = 0; // searches asked for: an answer to an earlier one is dropped
    /** @type {string | null} the query shown */
    this.query = null;
    /** @type {Found | null} a result chosen, to point at once its chat's history is shown */
    this.pending = null;
    /** @type {{ id: string, loaded: Loaded } | null} the latest history page shown */
    this.latest = null;
    this.wire();
  }

  wire() {
    this.input.addEventListener("input", () => {
      clearTimeout(this.timer);
      if (queryOf(this.input.value) === null) this.clear();
      else this.timer = setTimeout(() => this.search(), DEBOUNCE_MS);
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      clearTimeout(this.timer);
      this.search();
    });
    this.input.addEventListener("keydown", (event) => {
      // Escape empties the field and brings the list back; with nothing to clear it goes on to
      // the drawer (which closes).
      if (event.key !== "Escape" || (!this.input.value && this.query === null)) return;
      event.preventDefault();
      event.stopPropagation();
      this.input.value = "";
      this.clear();
    });
    this.list.addEventListener("click", (event) => {
      if (!(event.target instanceof Element)) return;
      const link = event.target.closest("a");
      if (!(link instanceof HTMLAnchorElement) || link.dataset.id === undefined) return;
      if (!plainClick(event)) return; // with a modifier, the browser opens the link
      event.preventDefault();
      const found = {
        id: link.dataset.id,
        turn: Number(link.dataset.turn),
        field: link.dataset.field ?? "user",
      };
      this.pending = found;
      this.onSelect(found.id);
      // The chat was shown already: its history is not read again.
      if (this.pending === found && this.latest?.id === found.id) {
        this.historyShown(found.id, this.latest.loaded);
      }
    });
  }

  /** Asks the service for what the field holds now. */
  async search() {
    const query = queryOf(this.input.value);
    if (query === null) {
      this.clear();
      return;
    }
    const asked = ++this.asked;
    this.query = query;
    this.show("searching");
    this.status.replaceChildren("Searching…");
    try {
      const { body } = await this.api.call(searchPath(query, RESULT_LIMIT), {}, TIMEOUT_MS);
      if (asked !== this.asked) return;
      const results = searchResults(body);
      if (results === null) throw new Error("The search results came in an unknown format.");
      this.render(results);
    } catch (error) {
      if (asked !== this.asked) return;
      const message = error instanceof Error ? error.message : String(error);
      this.list.replaceChildren();
      this.show("failed");
      this.status.replaceChildren(errorNotice(`Couldn't search. ${message}`, () => this.search()));
    }
  }

  /** @param {SearchResult[]} results best first */
  render(results) {
    const now = new Date();
    this.list.replaceChildren(...results.map((result) => this.resultItem(result, now)));
    const text = matchesText(results.length);
    this.status.replaceChildren(text);
    this.show(results.length ? "results" : "empty");
    this.announce(text);
  }

  /**
   * @param {SearchResult} result
   * @param {Date} now
   */
  resultItem(result, now) {
    const item = element("li", "search-result");
    const link = element("a", "search-result__link");
    link.href = this.hrefFor(result.conversation_id);
    link.dataset.id = result.conversation_id;
    link.dataset.turn = String(result.turn);
    link.dataset.field = result.field;
    const title = titleOf({
      id: result.conversation_id,
      title: result.conversation_title,
      updated_at: result.created_at,
    });
    const head = element("span", "search-result__head");
    head.append(element("span", "search-result__title", title));
    const time = element("time", "search-result__date", shortDate(result.created_at, now));
    time.dateTime = result.created_at;
    head.append(time);
    const snippet = element("span", "search-result__snippet");
    const who = result.field === "user" ? "You: " : "Assistant: ";
    snippet.append(element("span", "visually-hidden", who));
    for (const part of result.snippet) {
      snippet.append(part.match ? element("mark", undefined, part.text) : part.text);
    }
    link.append(head, snippet);
    item.append(link);
    return item;
  }

  /**
   * The latest page of a chat's history is shown (the page tells): when it holds the exchange
   * of the result just chosen, that message or reply is scrolled to and highlighted. An older
   * exchange is not paged for: the chat is open, at its latest messages.
   * @param {string} id
   * @param {Loaded} loaded
   */
  historyShown(id, loaded) {
    this.latest = { id, loaded };
    const found = this.pending;
    this.pending = null;
    if (found?.id !== id) return;
    const index = indexOfTurn(found.turn, loaded.after, loaded.shown.length);
    const user = index === null ? undefined : loaded.shown[index]?.ref;
    const target = found.field === "user" ? user : user?.nextElementSibling;
    if (!(target instanceof HTMLElement) || !target.isConnected) return;
    for (const old of document.querySelectorAll(".message--found")) {
      old.classList.remove("message--found");
    }
    target.classList.add("message--found");
    target.scrollIntoView({ block: "center" });
  }

  /**
   * The results in the list's place, in this state.
   * @param {"searching" | "results" | "empty" | "failed"} state
   */
  show(state) {
    this.results.dataset.state = state;
    this.results.hidden = false;
    this.sidebar.dataset.searching = "";
  }

  // No query: the list again, and no answer still on its way is shown.
  clear() {
    clearTimeout(this.timer);
    this.asked += 1;
    if (this.query === null) return;
    this.query = null;
    this.results.hidden = true;
    delete this.results.dataset.state;
    delete this.sidebar.dataset.searching;
    this.list.replaceChildren();
    this.status.replaceChildren();
    this.announce("Showing all chats");
  }
}

/** @param {MouseEvent} event */
function plainClick(event) {
  return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
}
