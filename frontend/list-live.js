// @ts-check
// The list of chats, live: the sidebar follows the reader's conversations
// (chat/conversation-events), so a chat started, renamed, written to or deleted in another tab or
// on another device (any replica, any client) appears, changes, moves up or goes as it happens.
//
// The stream's first event, `ready`, says that no change is missed from then on: the list is
// loaded again then (the sidebar merges it into what it shows), so what happened while the stream
// was closed is not missed either. It comes again when the service may have missed changes. The
// stream reopens after an outage like the conversation's (event-stream.js). The chat shown stays
// listed when it is deleted elsewhere, as when the list is read again: the reader is in it.
import { listChange } from "./conversations.js?v=239fb18723";
import { EventStream } from "./event-stream.js?v=518a5167dc";

/** @typedef {import("#page/sidebar.js").Sidebar} Sidebar */

export class ListLive {
  /** @param {Sidebar} sidebar */
  constructor(sidebar) {
    this.sidebar = sidebar;
    this.events = new EventStream(
      "Live list of chats",
      () => "chat/conversation-events",
      (event) => this.onEvent(event),
    );
    this.reloading = false;
    this.again = false; // a `ready` came while the list was being loaded
  }

  // Once the list has loaded (a service without conversations has no list to follow).
  start() {
    this.events.open();
  }

  /** @param {import("#page/sse.js").ServerSentEvent} event */
  onEvent(event) {
    const change = listChange(event);
    const sidebar = this.sidebar;
    if (change?.kind === "ready") {
      this.reload();
    } else if (change?.kind === "conversation") {
      sidebar.upsert(change.conversation);
      sidebar.render();
    } else if (change?.kind === "deleted" && change.id !== sidebar.current) {
      sidebar.drop(change.id);
    }
  }

  // The first page again; a load under way may have been asked for before the `ready`, so
  // another follows it.
  async reload() {
    if (this.reloading) {
      this.again = true;
      return;
    }
    this.reloading = true;
    try {
      do {
        this.again = false;
        await this.sidebar.load();
      } while (this.again);
    } finally {
      this.reloading = false;
    }
  }
}
