// @ts-check
// The chat page: history, streamed replies with Stop, errors with retry, connection state, live
// updates (exchanges committed elsewhere appear as they are committed), and the reader's
// conversations in the sidebar. This module only puts the parts together and decides which
// conversation is shown: the one in the URL (?c=<id>; none is the service's "default"), so
// reload, back and forward keep it.
//
// An ES module (strict mode by definition), no framework, no build step. User text goes into the
// page through textContent / text nodes only; assistant replies are rendered as sanitized
// Markdown (markdown.js) when its libraries are installed, as text otherwise. The
// Content-Security-Policy's Trusted Types directive makes any HTML sink throw, as a backstop.
//
// Imports are versioned like the page's other assets (?v= is the file's content hash, written by
// `npm run stamp`), so NGINX may let browsers cache them for good.
import { Api } from "./api.js?v=fa6542a0b2";
import { ChatTools } from "./chat-tools.js?v=29845b50c8";
import { Composer } from "./composer.js?v=92e1b8b325";
import { loadJaegerBaseUrl } from "./config.js?v=3fd5858778";
import { Connection } from "./connection.js?v=0a5a74b341";
import { byId } from "./dom.js?v=e991253526";
import { Draft } from "./draft.js?v=d603fbc87d";
import { Follow } from "./follow.js?v=18f3ad6df5";
import { History } from "./history.js?v=41f4200137";
import { ListLive } from "./list-live.js?v=bb3b73bef4";
import { Live } from "./live.js?v=ab3f53b4d4";
import { loadMarkdown } from "./markdown.js?v=ca35ce558a";
import { Messages } from "./messages.js?v=2247cbb84c";
import { Revise } from "./revise.js?v=958608266c";
import { conversationIn, urlFor } from "./routing.js?v=03817483de";
import { Sidebar } from "./sidebar.js?v=6e54255e0a";
import { SignIn } from "./signin.js?v=87f6e3f008";

/** @typedef {import("#page/history.js").Loaded} Loaded */
/** @typedef {import("#page/history.js").Shown} Shown */

/** @param {string} id */
const hrefFor = (id) => urlFor(id, location.pathname);

class ChatPage {
  constructor() {
    const log = byId("log", HTMLElement);
    const input = byId("message", HTMLTextAreaElement);
    const announcer = byId("announcer", HTMLElement);
    /** @param {string} text */
    const announce = (text) => {
      announcer.textContent = text;
    };
    /** @param {string} id */
    const onStored = (id) => {
      this.sidebar.touched(id);
      this.tools.stored(id);
    };
    this.input = input;
    this.announce = announce;
    this.connection = new Connection(
      byId("connection", HTMLElement),
      byId("connection-label", HTMLElement),
    );
    this.api = new Api(this.connection);
    this.tools = new ChatTools({ api: this.api, announce });
    this.messages = new Messages(byId("messages", HTMLOListElement), byId("empty", HTMLElement));
    this.follow = new Follow(log, byId("jump", HTMLButtonElement));
    this.liveParts = { messages: this.messages, follow: this.follow, announce, onStored };
    this.history = new History({
      api: this.api,
      connection: this.connection,
      messages: this.messages,
      follow: this.follow,
      log,
      loadEarlierButton: byId("load-earlier", HTMLButtonElement),
      notice: byId("history-notice", HTMLElement),
      onLoaded: (loaded) => this.historyLoaded(loaded),
    });
    const stop = byId("stop", HTMLButtonElement);
    this.revise = new Revise({
      list: this.messages.list,
      input,
      editing: byId("editing", HTMLElement),
      cancel: byId("edit-cancel", HTMLButtonElement),
      stop,
      follow: this.follow,
      announce,
      send: (text, replace) => this.composer.send(text, replace),
    });
    this.composer = new Composer({
      form: byId("composer", HTMLFormElement),
      input,
      send: byId("send", HTMLButtonElement),
      stop,
      log,
      messages: this.messages,
      follow: this.follow,
      connection: this.connection,
      announce,
      onStored,
      ...this.tools.composerParts(),
      onPending: (pending) => this.revise.setPending(pending),
      takeReplace: () => this.revise.take(),
      // A regenerate or edit that cut nothing: the page shows the service's history again.
      onReplaceFailed: () => this.history.loadLatest(),
    });
    // Before the sidebar's own Escape handler (its drawer closes on Escape), so that this one
    // still sees the drawer open and leaves the reply alone.
    document.addEventListener("keydown", (event) => {
      // While the drawer is open or a dialog asks, Escape closes that first.
      if (event.key === "Escape" && this.composer.reply && !this.sidebar.ownsEscape()) {
        event.preventDefault();
        this.composer.stopReply();
      }
    });
    this.sidebar = new Sidebar({
      api: this.api,
      announce,
      hrefFor,
      onSelect: (id) => this.select(id),
      onNewChat: () => this.newChat(),
      onDeleted: (id, neighbour) => this.deleted(id, neighbour),
      onLoaded: () => this.listLive.start(),
    });
    this.listLive = new ListLive(this.sidebar);
    // The conversation shown: a new object for each, so answers for another are told apart.
    /** @type {Shown} */
    this.shown = { id: conversationIn(location.search).id };
    this.live = new Live(this.shown.id, this.liveParts);
    this.history.show(this.shown);
    this.composer.show(this.shown, this.live);
    this.sidebar.setCurrent(this.shown.id);
    this.draft = new Draft(input);
    this.signIn = new SignIn({
      connection: this.connection,
      draft: this.draft,
      conversationId: () => this.shown.id,
    });
    this.wire();
  }

  wire() {
    byId("jump", HTMLButtonElement).addEventListener("click", () => {
      this.follow.toBottom();
      this.input.focus();
    });
    for (const chip of document.querySelectorAll("[data-suggestion]")) {
      if (!(chip instanceof HTMLElement)) continue;
      chip.addEventListener("click", () => {
        this.input.value = chip.dataset.suggestion ?? "";
        this.composer.submit();
        this.input.focus();
      });
    }
    window.addEventListener("popstate", () => {
      this.sidebar.drawer.close({ restoreFocus: false });
      const { id, valid } = conversationIn(location.search);
      this.open(id, { history: valid ? "none" : "replace" });
    });
    // Back in a tab left open: other tabs and devices may have changed the list meanwhile.
    document.addEventListener("visibilitychange", () => {
      if (document.visibilityState === "visible" && this.sidebar.loaded) this.sidebar.load();
    });
  }

  /**
   * The latest page of the history of the conversation shown is there.
   * @param {Loaded} loaded
   */
  historyLoaded(loaded) {
    // The list of chats, once the service has answered (not while it is away: a page opened
    // during an outage asks once, for the history, and its Retry brings both). Once loaded, it
    // follows what other tabs and devices do to it.
    if (!this.sidebar.loaded) this.sidebar.load();
    this.sidebar.search.historyShown(this.shown.id, loaded);
    this.live.start(loaded);
    this.tools.loaded(this.shown, loaded.shown.length > 0);
  }

  /**
   * Shows another conversation: its history, its live stream, its place in the sidebar.
   * @param {string} id
   * @param {{ history?: "push" | "replace" | "none" }} [options] "push" when the reader chose it
   *   (a new history entry), "none" for back/forward
   */
  open(id, { history = "push" } = {}) {
    if (history === "push") window.history.pushState({ c: id }, "", hrefFor(id));
    else if (history === "replace") window.history.replaceState({ c: id }, "", hrefFor(id));
    this.sidebar.setCurrent(id);
    if (id === this.shown.id && this.messages.historyLoaded) return;
    this.live.close();
    this.shown = { id };
    this.tools.show(this.shown);
    this.live = new Live(id, this.liveParts);
    this.composer.show(this.shown, this.live);
    this.history.show(this.shown);
    this.messages.clear();
    this.follow.toBottom();
    this.history.loadLatest();
  }

  /** @param {string} id the reader chose it in the sidebar */
  select(id) {
    if (id !== this.shown.id) this.open(id);
    this.sidebar.drawer.close();
  }

  // New chat: a new conversation on the service, shown at once. The one shown is reused when it
  // is a new chat itself, still empty, so that pressing it twice makes one chat, not two.
  async newChat() {
    const messages = this.messages;
    const empty = messages.historyLoaded && !this.composer.pending && messages.count === 0;
    if (empty && this.sidebar.isFresh(this.shown.id)) {
      this.sidebar.drawer.close({ restoreFocus: false });
      this.input.focus();
      return;
    }
    const id = await this.sidebar.create();
    if (id === null) return;
    this.tools.created(id);
    this.open(id);
    this.sidebar.drawer.close({ restoreFocus: false });
    this.input.focus();
    this.announce("New chat");
  }

  /**
   * A conversation was deleted: when it is the one shown, the page moves to its neighbour in the
   * list, or to a new chat when it was the last.
   * @param {string} id
   * @param {string | null} neighbour
   */
  async deleted(id, neighbour) {
    if (id !== this.shown.id) return;
    if (neighbour !== null) this.open(neighbour, { history: "replace" });
    else await this.newChat();
  }

  // Who the reader is first (signin.js: coming back from the provider puts the conversation
  // back in the URL); then the first conversation: the one in the URL, which says so if it
  // named one the service would refuse. Replies in the history render as Markdown too, so the
  // libraries load first (they are local). Until someone is signed in, nothing loads.
  async start() {
    this.draft.restore();
    const [signedIn, jaegerBaseUrl, renderMarkdown] = await Promise.all([
      this.signIn.start(),
      loadJaegerBaseUrl(),
      loadMarkdown(),
    ]);
    this.messages.configure({ renderMarkdown, jaegerBaseUrl });
    const { id, valid } = conversationIn(location.search);
    if (!valid) history.replaceState({ c: id }, "", hrefFor(id));
    if (!signedIn) return;
    if (id !== this.shown.id) this.open(id, { history: "none" });
    else await this.history.loadLatest();
  }
}

await new ChatPage().start();
