// @ts-check
// The conversations sidebar: the caller's chats, most recently active first, with New chat,
// rename in place (rename.js), delete after a confirmation (delete-dialog.js), and the drawer on
// narrow screens (drawer.js).
//
// It reads and changes the list (GET/POST /chat/conversations, GET/PATCH/DELETE
// /chat/conversations/{id}) through the page's Api; the page decides which conversation is shown
// and what the URL says, and tells the sidebar (setCurrent). Titles are user text: they reach
// the page through textContent only.
import { ChatGroups } from "./chat-groups.js?v=2635f6e07f";
import { conversationItem, label } from "./conversation-item.js?v=8bfcc0cc8d";
import {
  byActivity,
  goneIds,
  isConversation,
  isConversationList,
  titleOf,
  touchedAt,
} from "./conversations.js?v=239fb18723";
import { DeleteDialog } from "./delete-dialog.js?v=0b8bbdbdd3";
import { byId, errorNotice } from "./dom.js?v=e991253526";
import { Drawer } from "./drawer.js?v=948baf2731";
import { isRenaming, startRename } from "./rename.js?v=925b167b12";
import { SidebarSearch } from "./sidebar-search.js?v=f5eb158757";

/** @typedef {import("#page/api.js").Api} Api */
/** @typedef {import("#page/conversation-item.js").Item} Item */
/** @typedef {import("#page/conversations.js").Conversation} Conversation */

const LIST_PAGE_SIZE = 50;
const TIMEOUT_MS = 15_000;
const UNKNOWN_LIST = "The list of chats came in an unknown format.";

/** @param {string} id */
const conversationPath = (id) => `chat/conversations/${encodeURIComponent(id)}`;

/**
 * @param {unknown} error
 * @returns {{ message: string, status?: number }}
 */
const failure = (error) => (error instanceof Error ? error : { message: String(error) });

export class Sidebar {
  /**
   * @param {{
   *   api: Api,
   *   announce: (text: string) => void,
   *   hrefFor: (id: string) => string,
   *   onSelect: (id: string) => void,
   *   onNewChat: () => void,
   *   onDeleted: (id: string, neighbour: string | null) => Promise<void>,
   *   onLoaded: () => void,
   * }} parts hrefFor: the page's URL for a conversation; onSelect: the reader chose one;
   *   onNewChat: the New chat button; onDeleted: a conversation is gone; onLoaded: the list is
   *   there (the page follows its changes from then on)
   */
  constructor({ api, announce, hrefFor, onSelect, onNewChat, onDeleted, onLoaded }) {
    this.api = api;
    this.announce = announce;
    this.hrefFor = hrefFor;
    this.onSelect = onSelect;
    this.onNewChat = onNewChat;
    this.onDeleted = onDeleted;
    this.onLoaded = onLoaded;
    this.sidebar = byId("sidebar", HTMLElement);
    this.newChat = byId("new-chat", HTMLButtonElement);
    this.list = byId("conversations", HTMLOListElement);
    this.groups = new ChatGroups(this.list);
    this.empty = byId("conversations-empty", HTMLElement);
    this.more = byId("more-conversations", HTMLButtonElement);
    this.notice = byId("conversations-notice", HTMLElement);
    /** @type {Map<string, Item>} */
    this.items = new Map();
    /** @type {string | null} */
    this.current = null;
    /** @type {string | null} */
    this.nextPage = null;
    this.loaded = false;
    this.refreshing = new Set(); // ids being read again
    this.dialog = new DeleteDialog((id) => this.remove(id));
    this.search = new SidebarSearch({ api, announce, hrefFor, onSelect });
    this.drawer = new Drawer(this.sidebar, {
      // While a search is shown, the list is hidden: its field has focus.
      focusTarget: () =>
        (this.search.query === null
          ? this.current && this.items.get(this.current)?.link
          : this.search.input) || this.newChat,
      escapeTaken: () => this.dialog.open,
    });
    this.wire();
  }

  // The first page of the list; again later (the page calls it when it becomes visible), the
  // first page is merged into what is shown. data-state on the sidebar says where it stands:
  // loading, ready, failed or off (tests wait for it).
  async load() {
    const state = this.sidebar.dataset.state;
    if (state === "off" || state === "loading") return;
    this.sidebar.dataset.state = "loading";
    try {
      const { response, body } = await this.api.call(
        `chat/conversations?limit=${LIST_PAGE_SIZE}`,
        {},
        TIMEOUT_MS,
      );
      if (!isConversationList(body)) throw new Error(UNKNOWN_LIST);
      this.clearNotice();
      const next = this.api.nextLink(response);
      if (this.loaded) this.prune(body, next !== null);
      for (const conversation of body) this.upsert(conversation);
      if (!this.loaded) this.setNextPage(next);
      this.loaded = true;
      this.render();
      this.sidebar.dataset.state = "ready";
      this.onLoaded();
    } catch (error) {
      const { message, status } = failure(error);
      if (status === 404 || status === 405) {
        this.unavailable();
        return;
      }
      this.sidebar.dataset.state = "failed";
      this.showNotice(`Couldn't load your chats. ${message}`, () => this.load());
    }
  }

  async loadMore() {
    if (!this.nextPage || this.more.disabled) return;
    this.more.disabled = true;
    try {
      const { response, body } = await this.api.call(this.nextPage, {}, TIMEOUT_MS);
      if (!isConversationList(body)) throw new Error(UNKNOWN_LIST);
      this.clearNotice();
      for (const conversation of body) this.upsert(conversation);
      this.setNextPage(this.api.nextLink(response));
      this.render();
    } catch (error) {
      this.showNotice(`Couldn't load more chats. ${failure(error).message}`, () => this.loadMore());
    } finally {
      this.more.disabled = false;
    }
  }

  // Something was stored in a conversation (a reply, a message from elsewhere): it moves to the
  // top. It is read again only when the list cannot name it: new to the list, or untitled (the
  // service titles a conversation after its first message).
  /** @param {string} id */
  touched(id) {
    if (!this.loaded) return;
    const item = this.items.get(id);
    if (!item?.data.title) {
      this.refresh(id);
      return;
    }
    const listed = [...this.items.values()].map((known) => known.data);
    const exchanges = (item.data.exchanges ?? 0) + 1;
    item.data = { ...item.data, updated_at: touchedAt(listed, Date.now()), exchanges };
    this.render();
  }

  /** @param {string} id */
  async refresh(id) {
    if (this.refreshing.has(id)) return;
    this.refreshing.add(id);
    try {
      const { body } = await this.api.call(conversationPath(id), {}, TIMEOUT_MS);
      if (!isConversation(body)) return;
      this.upsert(body);
      this.render();
    } catch {
      // The list stays as it was; the next load corrects it.
    } finally {
      this.refreshing.delete(id);
    }
  }

  /**
   * A new conversation on the service.
   * @returns {Promise<string | null>} its id, or null (the sidebar says what went wrong)
   */
  async create() {
    this.newChat.disabled = true;
    try {
      const { body } = await this.api.call("chat/conversations", { method: "POST" }, TIMEOUT_MS);
      if (!isConversation(body)) throw new Error("The new chat came in an unknown format.");
      this.clearNotice();
      this.upsert(body);
      this.render();
      return body.id;
    } catch (error) {
      this.showNotice(`Couldn't start a new chat. ${failure(error).message}`, () =>
        this.onNewChat(),
      );
      return null;
    } finally {
      this.newChat.disabled = false;
    }
  }

  /**
   * Untitled and without exchanges: New chat can reuse it rather than make another.
   * @param {string} id
   */
  isFresh(id) {
    const data = this.items.get(id)?.data;
    return Boolean(data) && !data?.title && !data?.exchanges;
  }

  /** @param {string} id the conversation shown */
  setCurrent(id) {
    this.current = id;
    for (const [itemId, item] of this.items) {
      if (itemId === id) item.link.setAttribute("aria-current", "page");
      else item.link.removeAttribute("aria-current");
    }
  }

  /** @param {Conversation} conversation */
  upsert(conversation) {
    const known = this.items.get(conversation.id);
    if (known) {
      known.data = conversation;
      if (!isRenaming(known)) label(known);
      return;
    }
    const href = this.hrefFor(conversation.id);
    const item = conversationItem(conversation, href, conversation.id === this.current);
    this.items.set(conversation.id, item);
  }

  /**
   * The first page read again: what it says was deleted elsewhere goes.
   * @param {Conversation[]} page
   * @param {boolean} more
   */
  prune(page, more) {
    const listed = [...this.items.values()].map((item) => item.data);
    for (const id of goneIds(listed, page, more, this.current)) this.drop(id);
  }

  /** @param {string} id */
  drop(id) {
    this.items.get(id)?.node.remove();
    this.items.delete(id);
    this.render();
  }

  // Newest activity first, under date headings (chat-groups.js). Only nodes out of place move,
  // so focus stays where it is.
  render() {
    const ordered = [...this.items.values()].sort((a, b) => byActivity(a.data, b.data));
    this.groups.render(ordered, new Date());
    this.empty.hidden = !this.loaded || this.items.size > 0;
  }

  /** @param {string | null} url */
  setNextPage(url) {
    this.nextPage = url;
    this.more.hidden = !url;
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

  // A service without conversations (older than them): the page is the one conversation it was
  // before, without the sidebar.
  unavailable() {
    this.sidebar.dataset.state = "off";
    this.drawer.remove();
    this.sidebar.hidden = true;
  }

  /** @param {string} id */
  rename(id) {
    const item = this.items.get(id);
    if (!item) return;
    startRename(
      item,
      (title) => this.saveTitle(item, title),
      () => {
        label(item);
        this.render();
      },
    );
  }

  /**
   * @param {Item} item
   * @param {string} title
   */
  async saveTitle(item, title) {
    try {
      const { body } = await this.api.call(
        conversationPath(item.data.id),
        {
          method: "PATCH",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ title }),
        },
        TIMEOUT_MS,
      );
      if (isConversation(body)) item.data = body;
      this.clearNotice();
      this.announce(`Renamed to “${titleOf(item.data)}”`);
    } catch (error) {
      const name = titleOf(item.data);
      this.showNotice(`Couldn't rename “${name}”. ${failure(error).message}`, () =>
        this.rename(item.data.id),
      );
    }
  }

  /** @param {string} id */
  confirmDelete(id) {
    const item = this.items.get(id);
    if (item) this.dialog.ask(id, titleOf(item.data));
  }

  /** @param {string} id the reader confirmed it */
  async remove(id) {
    const item = this.items.get(id);
    if (!item) return;
    const name = titleOf(item.data);
    const order = this.groups.shown().map((node) => node.dataset.id);
    const index = order.indexOf(id);
    const neighbour = order[index + 1] ?? order[index - 1] ?? null;
    item.rename.disabled = true;
    item.remove.disabled = true;
    try {
      await this.api.call(conversationPath(id), { method: "DELETE" }, TIMEOUT_MS);
    } catch (error) {
      item.rename.disabled = false;
      item.remove.disabled = false;
      const { message, status } = failure(error);
      if (status !== 404) {
        this.showNotice(`Couldn't delete “${name}”. ${message}`, () => this.remove(id));
        return;
      }
      // Already gone (deleted from another tab): remove it here too.
    }
    const active = document.activeElement;
    const hadFocus = !active || active === document.body || item.node.contains(active);
    this.clearNotice();
    this.drop(id);
    this.announce(`Deleted “${name}”`);
    if (hadFocus) ((neighbour && this.items.get(neighbour)?.link) || this.newChat).focus();
    await this.onDeleted(id, neighbour);
  }

  wire() {
    this.newChat.addEventListener("click", () => this.onNewChat());
    this.more.addEventListener("click", () => this.loadMore());
    this.list.addEventListener("click", (event) => {
      if (!(event.target instanceof Element)) return;
      const node = event.target.closest(".conversation");
      if (!(node instanceof HTMLElement) || node.dataset.id === undefined) return;
      const id = node.dataset.id;
      const action = event.target.closest("button")?.dataset.action;
      if (action === "rename") this.rename(id);
      else if (action === "delete") this.confirmDelete(id);
      else if (event.target.closest("a") && plainClick(event)) {
        // A plain click opens the chat here; with a modifier, the browser opens the link.
        event.preventDefault();
        this.onSelect(id);
      }
    });
  }

  // Escape belongs to the sidebar while the drawer is open or the dialog asks.
  ownsEscape() {
    return this.drawer.isOpen || this.dialog.open;
  }
}

/** @param {MouseEvent} event */
function plainClick(event) {
  return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
}
