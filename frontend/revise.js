// @ts-check
// Regenerate and Edit: the last reply asked for again, or one of the reader's stored messages
// sent again changed, each in place of that exchange and every later one (the service erases
// them once the new reply is stored: `replace_turn`, composer.js sends it).
//
// Every stored message of the reader's (an item with its exchange's id) shows its Edit
// (messages.js makes it with the item). The one Regenerate follows what the list shows, whoever
// changed it (the history, the live stream, the page's own sends): on the newest stored reply.
// Editing is a state of the message box: its text in the box, "Editing a message" above it with
// a Cancel (Escape too); sending then replaces that exchange. While a reply is awaited, neither
// can be used.
import { actionButton, element } from "./dom.js?v=e991253526";
import { shownText } from "./messages.js?v=2247cbb84c";
import { turnOf } from "./protocol.js?v=bfc17f51c7";

/** @typedef {import("#page/composer.js").Replace} Replace */
/** @typedef {import("#page/follow.js").Follow} Follow */

const STORED_USER = ".message--user[data-exchange]";
const STORED_REPLY = ".message--ai[data-exchange]";

/**
 * The row of actions under a message's bubble, made when the message has none yet.
 * @param {HTMLElement} item
 */
function actionsOf(item) {
  const body = item.querySelector(".message__body");
  const existing = body?.querySelector(":scope > .message__actions");
  if (existing instanceof HTMLElement) return existing;
  const actions = element("div", "message__actions");
  body?.append(actions);
  return actions;
}

export class Revise {
  /**
   * @param {{
   *   list: HTMLOListElement,
   *   input: HTMLTextAreaElement,
   *   editing: HTMLElement,
   *   cancel: HTMLButtonElement,
   *   stop: HTMLButtonElement,
   *   follow: Follow,
   *   announce: (text: string) => void,
   *   send: (text: string, replace: Replace) => void,
   * }} parts editing: the "Editing a message" bar above the box, with its Cancel; stop: where
   *   the focus goes when Regenerate, which leaves the page, is pressed; send: the composer's
   */
  constructor({ list, input, editing, cancel, stop, follow, announce, send }) {
    this.list = list;
    this.follower = follow;
    this.input = input;
    this.bar = editing;
    this.stopButton = stop;
    this.announce = announce;
    this.send = send;
    this.pending = false;
    /** @type {{ item: HTMLElement, draft: string } | null} the message edited, the box before */
    this.editing = null;
    this.regenerateButton = actionButton("Regenerate", "reply", "message__regenerate");
    this.regenerateButton.addEventListener("click", () => this.regenerate());
    cancel.addEventListener("click", () => this.cancel());
    list.addEventListener("click", (event) => {
      const target = event.target instanceof Element ? event.target : null;
      const item = target?.closest(".message__edit")?.closest(STORED_USER);
      if (item instanceof HTMLElement) this.edit(item);
    });
    input.addEventListener("keydown", (event) => {
      if (event.isComposing || event.altKey || event.ctrlKey || event.metaKey) return;
      if (event.key === "ArrowUp" && !event.shiftKey && !input.value) {
        // Up in an empty box edits the last message, as in many chats.
        const last = [...list.querySelectorAll(STORED_USER)].at(-1);
        if (!(last instanceof HTMLElement) || this.pending) return;
        event.preventDefault();
        this.edit(last);
      } else if (event.key === "Escape" && this.editing) {
        event.preventDefault();
        this.cancel();
      }
    });
    // Only the list's own items and their ids matter, not a reply's text as it streams.
    new MutationObserver((records) => {
      if (records.some((record) => record.type === "attributes" || record.target === list)) {
        this.place();
      }
    }).observe(list, {
      childList: true,
      subtree: true,
      attributes: true,
      attributeFilter: ["data-exchange"],
    });
  }

  // Regenerate on the newest stored reply, every Edit usable or not; editing ends when its
  // message left (cut elsewhere, another chat shown: the text stays in the box).
  place() {
    for (const edit of this.list.querySelectorAll(".message__edit")) {
      if (edit instanceof HTMLButtonElement && edit.disabled !== this.pending) {
        edit.disabled = this.pending;
      }
    }
    const last = [...this.list.querySelectorAll(STORED_REPLY)].at(-1);
    if (!(last instanceof HTMLElement)) {
      this.regenerateButton.remove();
    } else if (!last.contains(this.regenerateButton)) {
      // Without a Copy (no clipboard), its row is new: a reader at the very end stays there.
      // (Read from the log itself: a scroll just made, to a search result, has not been
      // reported to Follow yet.)
      const log = this.follower.log;
      const newRow = !last.querySelector(".message__actions");
      const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight <= 1;
      actionsOf(last).append(this.regenerateButton);
      if (newRow && atEnd) this.follower.toBottom();
    }
    if (this.editing && !this.editing.item.isConnected) this.end();
  }

  /** @param {boolean} pending a reply is awaited: nothing can be regenerated or edited */
  setPending(pending) {
    this.pending = pending;
    this.regenerateButton.disabled = pending;
    for (const edit of this.list.querySelectorAll(".message__edit")) {
      if (edit instanceof HTMLButtonElement) edit.disabled = pending;
    }
  }

  // The newest reply, asked for again: the same message in place of its exchange.
  regenerate() {
    const reply = this.regenerateButton.closest(STORED_REPLY);
    if (this.pending || !(reply instanceof HTMLElement)) return;
    const id = reply.dataset.exchange ?? "";
    const user = [...this.list.querySelectorAll(STORED_USER)].find(
      (item) => item instanceof HTMLElement && item.dataset.exchange === id,
    );
    if (!(user instanceof HTMLElement)) return;
    if (this.editing?.item === user) this.cancel();
    this.send(shownText(user), { turn: turnOf(id), edited: false });
    // The button left with its reply: Stop, which took Send's place, takes the focus.
    this.stopButton.focus();
    this.announce("Regenerating the reply");
  }

  /**
   * Its text into the box, to change and send in its place.
   * @param {HTMLElement} item one of the reader's stored messages
   */
  edit(item) {
    if (this.pending || !item.isConnected) return;
    const draft = this.editing ? this.editing.draft : this.input.value;
    this.editing?.item.classList.remove("message--editing");
    this.editing = { item, draft };
    item.classList.add("message--editing");
    this.bar.hidden = false;
    this.input.setAttribute("aria-describedby", `editing-label ${this.describedBy()}`);
    this.input.value = shownText(item);
    this.input.focus();
    this.input.setSelectionRange(this.input.value.length, this.input.value.length);
    this.announce("Editing a message. Send replaces it and what follows; Escape cancels.");
  }

  // Cancel (or Escape): the box holds again what it held before.
  cancel() {
    if (!this.editing) return;
    const { draft } = this.editing;
    this.end();
    this.input.value = draft;
    this.input.focus();
    this.announce("Editing cancelled");
  }

  /**
   * What the message being sent replaces (composer.js asks as it sends): the message edited, if
   * any, whose editing ends.
   * @returns {Replace | null}
   */
  take() {
    if (!this.editing) return null;
    const id = this.editing.item.dataset.exchange;
    this.end();
    return id ? { turn: turnOf(id), edited: true } : null;
  }

  end() {
    this.editing?.item.classList.remove("message--editing");
    this.editing = null;
    this.bar.hidden = true;
    this.input.setAttribute("aria-describedby", this.describedBy());
    // The Cancel button had the focus: it is hidden now.
    if (document.activeElement === document.body) this.input.focus();
  }

  // The box's own description (its keys), without the editing state's.
  describedBy() {
    const ids = (this.input.getAttribute("aria-describedby") ?? "").split(/\s+/);
    return ids.filter((id) => id && id !== "editing-label").join(" ");
  }
}
