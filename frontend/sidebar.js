// The conversations sidebar: the caller's chats, most recently active first, with New chat,
// rename (in place: Enter saves, Escape cancels) and delete (after a confirmation in a <dialog>,
// never confirm()). Below 48rem it is a drawer over the page, opened from the header's Chats
// button and closed by Escape, its close button or a click beside it; the page behind it is
// inert meanwhile, so the keyboard stays in the drawer.
//
// It reads and changes the list (GET/POST /chat/conversations, GET/PATCH/DELETE
// /chat/conversations/{id}) through the page's request helper; the page decides which
// conversation is shown and what the URL says, and tells the sidebar (setCurrent). Titles are
// user text: they reach the page through textContent only.

const LIST_PAGE_SIZE = 50;
const TIMEOUT_MS = 15_000;
const UNTITLED = "New chat";
const TITLE_MAX_CHARS = 200;
// Below this width the sidebar is a drawer (the same breakpoint as style.css).
const NARROW = "(max-width: 47.99rem)";
// Feather-style line icons, drawn with the current text colour.
const ICONS = {
  plus: ["M12 5v14", "M5 12h14"],
  close: ["M6 6l12 12", "M18 6 6 18"],
  rename: ["M4 20h4L19 9a2.8 2.8 0 0 0-4-4L4 16v4z", "M13.5 6.5l4 4"],
  delete: ["M4 7h16", "M10 11v6", "M14 11v6", "M6 7l1 13h10l1-13", "M9 7V4h6v3"],
};

export function titleOf(conversation) {
  return conversation?.title?.trim() ? conversation.title : UNTITLED;
}

function isConversation(value) {
  return (
    value !== null &&
    typeof value === "object" &&
    typeof value.id === "string" &&
    (value.title === null || value.title === undefined || typeof value.title === "string") &&
    typeof value.updated_at === "string"
  );
}

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

export function icon(name) {
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("icon");
  for (const d of ICONS[name]) {
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

const byId = (id) => document.getElementById(id);
const conversationPath = (id) => `chat/conversations/${encodeURIComponent(id)}`;

export class Sidebar {
  // api(url, init, timeoutMs) -> { response, body }, throwing errors with .message and .status;
  // hrefFor(id): the page's URL for a conversation; onSelect(id): the reader chose one;
  // onNewChat(): the New chat button; onDeleted(id, neighbour): a conversation is gone.
  constructor({ api, nextLink, errorNotice, announce, hrefFor, onSelect, onNewChat, onDeleted }) {
    Object.assign(this, { api, nextLink, errorNotice, announce, hrefFor });
    this.callbacks = { onSelect, onNewChat, onDeleted };
    this.ui = {
      sidebar: byId("sidebar"),
      toggle: byId("drawer-toggle"),
      close: byId("drawer-close"),
      scrim: byId("scrim"),
      newChat: byId("new-chat"),
      list: byId("conversations"),
      empty: byId("conversations-empty"),
      more: byId("more-conversations"),
      notice: byId("conversations-notice"),
      dialog: byId("delete-dialog"),
      dialogName: byId("delete-dialog-name"),
      dialogCancel: byId("delete-cancel"),
      dialogConfirm: byId("delete-confirm"),
    };
    this.items = new Map(); // id -> { data, node, link, title, rename, remove }
    this.current = null;
    this.nextPage = null;
    this.loaded = false;
    this.refreshing = new Set(); // ids being read again
    this.deleting = null; // the id the confirmation dialog asks about
    this.narrow = matchMedia(NARROW);
    this.wire();
  }

  // ------------------------------------------------------------------------------------------
  // The list

  // The first page of the list; again later (the page calls it when it becomes visible), the
  // first page is merged into what is shown. data-state on the sidebar says where it stands:
  // loading, ready, failed or off (tests wait for it).
  async load() {
    const state = this.ui.sidebar.dataset.state;
    if (state === "off" || state === "loading") return;
    this.ui.sidebar.dataset.state = "loading";
    try {
      const { response, body } = await this.api(
        `chat/conversations?limit=${LIST_PAGE_SIZE}`,
        {},
        TIMEOUT_MS,
      );
      if (!Array.isArray(body) || !body.every(isConversation)) {
        throw new Error("The list of chats came in an unknown format.");
      }
      this.clearNotice();
      const next = this.nextLink(response);
      if (this.loaded) this.prune(body, next !== null);
      for (const conversation of body) this.upsert(conversation);
      if (!this.loaded) this.setNextPage(next);
      this.loaded = true;
      this.render();
      this.ui.sidebar.dataset.state = "ready";
    } catch (error) {
      if (error.status === 404 || error.status === 405) {
        this.unavailable();
        return;
      }
      this.ui.sidebar.dataset.state = "failed";
      this.showNotice(`Couldn't load your chats. ${error.message}`, () => this.load());
    }
  }

  async loadMore() {
    if (!this.nextPage || this.ui.more.disabled) return;
    this.ui.more.disabled = true;
    try {
      const { response, body } = await this.api(this.nextPage, {}, TIMEOUT_MS);
      if (!Array.isArray(body) || !body.every(isConversation)) {
        throw new Error("The list of chats came in an unknown format.");
      }
      this.clearNotice();
      for (const conversation of body) this.upsert(conversation);
      this.setNextPage(this.nextLink(response));
      this.render();
    } catch (error) {
      this.showNotice(`Couldn't load more chats. ${error.message}`, () => this.loadMore());
    } finally {
      this.ui.more.disabled = false;
    }
  }

  // Something was stored in a conversation (a reply, a message from elsewhere): it moves to
  // the top. It is read again only when the list cannot name it: new to the list, or untitled
  // (the service titles a conversation after its first message).
  touched(id) {
    if (!this.loaded) return;
    const item = this.items.get(id);
    if (!item?.data.title) {
      this.refresh(id);
      return;
    }
    const times = [...this.items.values()].map((known) => Date.parse(known.data.updated_at) || 0);
    const newest = Math.max(Date.now(), Math.max(...times) + 1);
    const exchanges = (item.data.exchanges ?? 0) + 1;
    item.data = { ...item.data, updated_at: new Date(newest).toISOString(), exchanges };
    this.render();
  }

  async refresh(id) {
    if (this.refreshing.has(id)) return;
    this.refreshing.add(id);
    try {
      const { body } = await this.api(conversationPath(id), {}, TIMEOUT_MS);
      if (!isConversation(body)) return;
      this.upsert(body);
      this.render();
    } catch {
      // The list stays as it was; the next load corrects it.
    } finally {
      this.refreshing.delete(id);
    }
  }

  // A new conversation on the service; its id, or null (the sidebar says what went wrong).
  async create() {
    this.ui.newChat.disabled = true;
    try {
      const { body } = await this.api("chat/conversations", { method: "POST" }, TIMEOUT_MS);
      if (!isConversation(body)) throw new Error("The new chat came in an unknown format.");
      this.clearNotice();
      this.upsert(body);
      this.render();
      return body.id;
    } catch (error) {
      this.showNotice(`Couldn't start a new chat. ${error.message}`, () =>
        this.callbacks.onNewChat(),
      );
      return null;
    } finally {
      this.ui.newChat.disabled = false;
    }
  }

  // Untitled and without exchanges: New chat can reuse it rather than make another.
  isFresh(id) {
    const data = this.items.get(id)?.data;
    return Boolean(data) && !data.title && !data.exchanges;
  }

  setCurrent(id) {
    this.current = id;
    for (const [itemId, item] of this.items) {
      if (itemId === id) item.link.setAttribute("aria-current", "page");
      else item.link.removeAttribute("aria-current");
    }
  }

  upsert(conversation) {
    const known = this.items.get(conversation.id);
    if (known) {
      known.data = conversation;
      if (!known.node.classList.contains("conversation--renaming")) this.label(known);
      return;
    }
    const item = this.itemFor(conversation);
    this.items.set(conversation.id, item);
  }

  // The first page read again: a chat it should hold but does not was deleted elsewhere (the
  // page holds every chat newer than its last one, or all of them when there is no next page).
  // The chat shown stays: the reader is in it.
  prune(page, more) {
    const ids = new Set(page.map((conversation) => conversation.id));
    const oldest = more ? Date.parse(page.at(-1)?.updated_at) || Infinity : -Infinity;
    for (const [id, item] of this.items) {
      const gone = !ids.has(id) && (Date.parse(item.data.updated_at) || 0) >= oldest;
      if (gone && id !== this.current) this.drop(id);
    }
  }

  drop(id) {
    this.items.get(id)?.node.remove();
    this.items.delete(id);
    this.render();
  }

  // Newest activity first. Only nodes out of place move, so focus stays where it is.
  render() {
    const time = (item) => Date.parse(item.data.updated_at) || 0;
    const ordered = [...this.items.values()].sort((a, b) => time(b) - time(a));
    ordered.forEach((item, index) => {
      if (this.ui.list.children[index] !== item.node) {
        this.ui.list.insertBefore(item.node, this.ui.list.children[index] ?? null);
      }
    });
    this.ui.empty.hidden = !this.loaded || this.items.size > 0;
  }

  ordered() {
    return [...this.ui.list.children].map((node) => node.dataset.id);
  }

  itemFor(conversation) {
    const node = element("li", "conversation");
    node.dataset.id = conversation.id;
    const link = element("a", "conversation__link");
    link.href = this.hrefFor(conversation.id);
    const title = element("span", "conversation__title");
    link.append(title);
    const actions = element("div", "conversation__actions");
    const rename = element("button", "icon-button conversation__action");
    rename.type = "button";
    rename.dataset.action = "rename";
    rename.title = "Rename";
    rename.append(icon("rename"));
    const remove = element("button", "icon-button conversation__action");
    remove.type = "button";
    remove.dataset.action = "delete";
    remove.title = "Delete";
    remove.append(icon("delete"));
    actions.append(rename, remove);
    node.append(link, actions);
    const item = { data: conversation, node, link, title, rename, remove };
    this.label(item);
    if (conversation.id === this.current) link.setAttribute("aria-current", "page");
    return item;
  }

  label(item) {
    const name = titleOf(item.data);
    item.title.textContent = name;
    item.link.title = name;
    item.node.classList.toggle("conversation--untitled", !item.data.title?.trim());
    item.rename.setAttribute("aria-label", `Rename “${name}”`);
    item.remove.setAttribute("aria-label", `Delete “${name}”`);
  }

  setNextPage(url) {
    this.nextPage = url;
    this.ui.more.hidden = !url;
  }

  showNotice(message, retry) {
    this.ui.notice.replaceChildren(this.errorNotice(message, retry));
  }

  clearNotice() {
    this.ui.notice.replaceChildren();
  }

  // A service without conversations (older than them): the page is the one conversation it
  // was before, without the sidebar.
  unavailable() {
    this.ui.sidebar.dataset.state = "off";
    this.closeDrawer({ restoreFocus: false });
    this.ui.sidebar.hidden = true;
    this.ui.toggle.hidden = true;
  }

  // ------------------------------------------------------------------------------------------
  // Rename, in place

  startRename(id) {
    const item = this.items.get(id);
    if (!item || item.node.classList.contains("conversation--renaming")) return;
    const input = element("input", "conversation__input");
    input.type = "text";
    input.value = item.data.title ?? "";
    input.maxLength = TITLE_MAX_CHARS;
    input.setAttribute("aria-label", `New title for “${titleOf(item.data)}”`);
    input.autocomplete = "off";
    item.node.classList.add("conversation--renaming");
    item.link.hidden = true;
    item.node.prepend(input);
    input.focus();
    input.select();
    let done = false;
    const finish = (save) => {
      if (done) return;
      done = true;
      this.finishRename(item, input, save);
    };
    input.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.isComposing) {
        event.preventDefault();
        finish(true);
      } else if (event.key === "Escape") {
        // The rename only: the drawer stays open and a reply keeps streaming.
        event.preventDefault();
        event.stopPropagation();
        finish(false);
      }
    });
    input.addEventListener("blur", () => finish(true));
  }

  async finishRename(item, input, save) {
    const title = input.value.trim();
    const hadFocus = document.activeElement === input;
    const unchanged = title === (item.data.title ?? "").trim();
    if (save && title && !unchanged) {
      input.disabled = true;
      try {
        const { body } = await this.api(
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
        this.showNotice(`Couldn't rename “${name}”. ${error.message}`, () =>
          this.startRename(item.data.id),
        );
      }
    }
    input.remove();
    item.node.classList.remove("conversation--renaming");
    item.link.hidden = false;
    this.label(item);
    this.render();
    // Back where the reader was, unless they went somewhere else (the blur that saved).
    if (hadFocus || document.activeElement === document.body) item.rename.focus();
  }

  // ------------------------------------------------------------------------------------------
  // Delete, after a confirmation in the page

  confirmDelete(id) {
    const item = this.items.get(id);
    if (!item) return;
    this.deleting = id;
    this.ui.dialogName.textContent = titleOf(item.data);
    this.ui.dialog.returnValue = "";
    this.ui.dialog.showModal(); // Cancel has autofocus: Enter alone deletes nothing
  }

  async remove(id) {
    const item = this.items.get(id);
    if (!item) return;
    const name = titleOf(item.data);
    const order = this.ordered();
    const index = order.indexOf(id);
    const neighbour = order[index + 1] ?? order[index - 1] ?? null;
    item.rename.disabled = true;
    item.remove.disabled = true;
    try {
      await this.api(conversationPath(id), { method: "DELETE" }, TIMEOUT_MS);
    } catch (error) {
      item.rename.disabled = false;
      item.remove.disabled = false;
      if (error.status !== 404) {
        this.showNotice(`Couldn't delete “${name}”. ${error.message}`, () => this.remove(id));
        return;
      }
      // Already gone (deleted from another tab): remove it here too.
    }
    const hadFocus = item.node.contains(document.activeElement) || !document.activeElement ||
      document.activeElement === document.body;
    this.clearNotice();
    this.drop(id);
    this.announce(`Deleted “${name}”`);
    if (hadFocus) (this.items.get(neighbour)?.link ?? this.ui.newChat).focus();
    await this.callbacks.onDeleted(id, neighbour);
  }

  // ------------------------------------------------------------------------------------------
  // The drawer (narrow screens)

  get drawerOpen() {
    return this.ui.sidebar.classList.contains("sidebar--open");
  }

  openDrawer() {
    if (this.drawerOpen || !this.narrow.matches) return;
    this.ui.sidebar.classList.add("sidebar--open");
    this.ui.scrim.hidden = false;
    this.ui.toggle.setAttribute("aria-expanded", "true");
    for (const node of this.behind()) node.inert = true;
    const current = this.items.get(this.current)?.link;
    (current ?? this.ui.newChat).focus();
  }

  // restoreFocus: back to the Chats button that opened it (not when the page moves focus
  // itself, or the drawer closes because the window became wide).
  closeDrawer({ restoreFocus = true } = {}) {
    if (!this.drawerOpen) return;
    this.ui.sidebar.classList.remove("sidebar--open");
    this.ui.scrim.hidden = true;
    this.ui.toggle.setAttribute("aria-expanded", "false");
    for (const node of this.behind()) node.inert = false;
    if (restoreFocus) this.ui.toggle.focus();
  }

  // What the open drawer covers, out of reach of the keyboard and screen readers: the page's
  // main content and everything around it (not the dialogs, which open above the drawer).
  behind() {
    const around = [...document.body.children].filter(
      (node) => !node.contains(this.ui.sidebar) && !(node instanceof HTMLDialogElement),
    );
    return [...around, document.querySelector("main")];
  }

  // Escape belongs to the sidebar while the drawer is open or the dialog asks.
  ownsEscape() {
    return this.drawerOpen || this.ui.dialog.open;
  }

  // ------------------------------------------------------------------------------------------
  // Wiring

  wire() {
    const ui = this.ui;
    ui.newChat.addEventListener("click", () => this.callbacks.onNewChat());
    ui.more.addEventListener("click", () => this.loadMore());
    ui.toggle.addEventListener("click", () =>
      this.drawerOpen ? this.closeDrawer() : this.openDrawer(),
    );
    ui.close.addEventListener("click", () => this.closeDrawer());
    ui.scrim.addEventListener("click", () => this.closeDrawer());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.drawerOpen && !ui.dialog.open) {
        event.preventDefault();
        this.closeDrawer();
      }
    });
    this.narrow.addEventListener("change", () => {
      if (!this.narrow.matches) this.closeDrawer({ restoreFocus: false });
    });
    ui.list.addEventListener("click", (event) => {
      const node = event.target.closest(".conversation");
      if (!node) return;
      const id = node.dataset.id;
      const action = event.target.closest("button")?.dataset.action;
      if (action === "rename") this.startRename(id);
      else if (action === "delete") this.confirmDelete(id);
      else if (event.target.closest("a") && plainClick(event)) {
        // A plain click opens the chat here; with a modifier, the browser opens the link.
        event.preventDefault();
        this.callbacks.onSelect(id);
      }
    });
    ui.dialogCancel.addEventListener("click", () => ui.dialog.close("cancel"));
    ui.dialogConfirm.addEventListener("click", () => ui.dialog.close("delete"));
    // Escape in the dialog cancels it (the browser does that); it must not also close the
    // drawer or stop a reply.
    ui.dialog.addEventListener("keydown", (event) => {
      if (event.key === "Escape") event.stopPropagation();
    });
    ui.dialog.addEventListener("close", () => {
      const id = this.deleting;
      this.deleting = null;
      if (ui.dialog.returnValue === "delete" && id !== null) this.remove(id);
    });
  }
}

function plainClick(event) {
  return event.button === 0 && !event.metaKey && !event.ctrlKey && !event.shiftKey && !event.altKey;
}
