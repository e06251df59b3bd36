// @ts-check
// Sending: the message box, Send and Stop, the message shown at once, the reply as it streams,
// and what stays when it fails (the message, marked, with a Retry) or stops early (the part
// shown, as the service stores it).
import { ApiError } from "./api.js?v=fa6542a0b2";
import { errorNotice } from "./dom.js?v=e991253526";
import { shownText } from "./messages.js?v=2247cbb84c";
import { readReply, startReply } from "./reply.js?v=414609c080";
import { traceIdOf } from "./protocol.js?v=bfc17f51c7";

/** @typedef {import("#page/connection.js").Connection} Connection */
/** @typedef {import("#page/follow.js").Follow} Follow */
/** @typedef {import("#page/history.js").Shown} Shown */
/** @typedef {import("#page/live.js").Live} Live */
/** @typedef {import("#page/messages.js").Messages} Messages */
/** @typedef {{ controller: AbortController, stopped: boolean }} Reply the reply streaming now */
/** @typedef {{ item: HTMLElement | null, text: string, frame: number }} Streamed */
/**
 * A message sent in place of the exchange at `turn` and every later one (Regenerate: its own
 * text; Edit: a new one, `edited`).
 * @typedef {{ turn: number, edited: boolean }} Replace
 */

export class Composer {
  /**
   * @param {{
   *   form: HTMLFormElement,
   *   input: HTMLTextAreaElement,
   *   send: HTMLButtonElement,
   *   stop: HTMLButtonElement,
   *   log: HTMLElement,
   *   messages: Messages,
   *   follow: Follow,
   *   connection: Connection,
   *   announce: (text: string) => void,
   *   onStored: (conversationId: string) => void,
   *   messageModel?: () => string | null,
   *   onReplied?: (conversationId: string, id: string | null, user: HTMLElement,
   *     ai: HTMLElement) => void,
   *   onPending?: (pending: boolean) => void,
   *   takeReplace?: () => Replace | null,
   *   onReplaceFailed?: (replace: Replace) => void,
   * }} parts onStored: an exchange is stored in that conversation (the sidebar moves it up);
   *   messageModel: the model to name in a message, if any; onReplied: a streamed reply is
   *   stored whole, with its id from the done event; onPending: a reply is awaited, or no
   *   longer; takeReplace: what the message in the box replaces (an Edit), if anything;
   *   onReplaceFailed: a regenerate or edit cut nothing (the page shows the history again)
   */
  constructor(parts) {
    const { form, input, send, stop, log, messages, follow, connection, announce, onStored } =
      parts;
    this.messageModel = parts.messageModel ?? (() => null);
    this.onReplied = parts.onReplied ?? (() => {});
    this.onPending = parts.onPending ?? (() => {});
    this.takeReplace = parts.takeReplace ?? (() => null);
    this.onReplaceFailed = parts.onReplaceFailed ?? (() => {});
    this.input = input;
    this.sendButton = send;
    this.stopButton = stop;
    this.log = log;
    this.messages = messages;
    this.follow = follow;
    this.connection = connection;
    this.announce = announce;
    this.onStored = onStored;
    /** @type {{ shown: Shown, live: Live } | null} the conversation shown, and its live stream */
    this.target = null;
    this.pending = false;
    /** @type {Reply | null} */
    this.reply = null;
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    input.addEventListener("keydown", (event) => {
      // Enter sends, Shift+Enter is a new line; never interrupt an IME composition.
      if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
      event.preventDefault();
      this.submit();
    });
    stop.addEventListener("click", () => this.stopReply());
  }

  /**
   * Another conversation is shown. A reply still streaming belongs to the one left behind: it goes
   * on in the background (the service stores it whole) and no longer touches the page.
   * @param {Shown} shown
   * @param {Live} live
   */
  show(shown, live) {
    this.target = { shown, live };
    this.reply = null;
    if (this.pending) this.setPending(false);
  }

  // The message in the box, unless one is being answered; in place of the one being edited.
  submit() {
    const text = this.input.value;
    if (this.pending || !text.trim()) return;
    const replace = this.takeReplace();
    this.input.value = "";
    this.dropFailedCopies(text);
    this.send(text, replace);
  }

  /**
   * @param {string} text
   * @param {Replace | null} [replace] sent in place of that exchange and every later one, which
   *   leave the page at once: the new exchange takes their place
   */
  async send(text, replace = null) {
    const target = this.target;
    if (this.pending || target === null) return;
    const { shown, live } = target;
    if (replace) this.removeFrom(replace.turn);
    const isShown = () => this.target === target;
    const reply = { controller: new AbortController(), stopped: false };
    this.reply = reply;
    live.startAnswer(text);
    this.setPending(true);
    const messages = this.messages;
    const userItem = messages.item("user", text);
    userItem.classList.add("message--pending");
    const thinking = messages.thinkingItem();
    messages.list.append(userItem, thinking);
    messages.updateEmptyState();
    this.follow.toBottom(); // the reader just sent this, so they want to see it
    /** @type {Streamed} */
    const streamed = { item: null, text: "", frame: 0 };
    let stored = false; // the exchange is in the conversation now
    try {
      const model = this.messageModel();
      const response = await startReply(text, shown.id, reply.controller, {
        model,
        replaceTurn: replace?.turn ?? null,
      });
      this.connection.set("online");
      const traceId = traceIdOf(response.headers.get("traceresponse"));
      const { text: whole, id } = await readReply(response, (piece) => {
        if (!streamed.item) {
          streamed.item = messages.item("ai", "", { traceId });
          streamed.item.classList.add("message--streaming");
          thinking.replaceWith(streamed.item);
        }
        streamed.text += piece;
        this.scheduleRender(streamed);
      });
      cancelAnimationFrame(streamed.frame);
      userItem.classList.remove("message--pending");
      const item = streamed.item ?? messages.item("ai", "", { traceId });
      if (!streamed.item) thinking.replaceWith(item);
      item.classList.remove("message--streaming");
      messages.setText(item, "ai", whole);
      stored = true;
      if (!isShown()) return;
      live.own(id, { user: text, shown: whole, userItem, aiItem: item });
      this.onReplied(shown.id, id, userItem, item);
      this.announce(`Assistant: ${shownText(item)}`);
      this.follow.followOrNotify();
    } catch (caught) {
      cancelAnimationFrame(streamed.frame);
      thinking.remove();
      const error = caught instanceof ApiError ? caught : null; // else Stop's AbortError
      // Stopped, the part sent is stored, a moment after the stream closed: the list learns of
      // it when it comes back on the live stream (live.js), so it never asks for a chat the
      // service has not committed yet; here only when this chat is no longer shown. (Cut off,
      // it may be stored too, but the service may be away: the list learns of it later.)
      stored = Boolean(streamed.item) && reply.stopped && !isShown();
      if (!isShown()) return;
      if (streamed.item && (reply.stopped || error?.cutOff)) {
        // The service stores what it sent when a stream ends early: keep it, as it will be.
        if (error) this.connection.report(error);
        userItem.classList.remove("message--pending");
        this.keepPartial(streamed.item, streamed.text, reply.stopped);
        live.own(null, { user: text, shown: streamed.text, userItem, aiItem: streamed.item });
      } else {
        streamed.item?.remove();
        if (!reply.stopped && error) this.connection.report(error);
        const reason = reply.stopped
          ? "Stopped before the reply began."
          : (error?.message ?? String(caught));
        this.markFailed(userItem, text, reason, replace);
        // Nothing was cut (or, refused, the turn was gone): the service's history is the truth.
        if (replace) this.onReplaceFailed(replace);
      }
    } finally {
      if (isShown()) {
        this.reply = null;
        this.setPending(false);
        live.endAnswer();
      }
      // Its place in the list (first), and the title the service gave a new conversation.
      if (stored) this.onStored(shown.id);
    }
  }

  /**
   * Rendering the Markdown of a growing reply once per frame, not once per piece.
   * @param {Streamed} streamed
   */
  scheduleRender(streamed) {
    if (streamed.frame) return;
    streamed.frame = requestAnimationFrame(() => {
      streamed.frame = 0;
      if (streamed.item) this.messages.setText(streamed.item, "ai", streamed.text);
      this.follow.followOrNotify();
    });
  }

  /**
   * @param {HTMLElement} item
   * @param {string} text what reached the page
   * @param {boolean} stopped by the reader, else cut off
   */
  keepPartial(item, text, stopped) {
    const note = stopped ? "Stopped" : "Connection lost: the reply was cut off";
    item.classList.remove("message--streaming");
    item.classList.add("message--stopped");
    this.messages.setText(item, "ai", text);
    this.messages.addNote(item, note);
    this.announce(`${note}. Assistant: ${shownText(item)}`);
    this.follow.followOrNotify();
  }

  // Stop (the button, or Escape): closing the request stops the model; the service keeps the
  // part of the reply it sent.
  stopReply() {
    if (!this.reply) return;
    this.reply.stopped = true;
    this.reply.controller.abort();
  }

  /**
   * The exchange at `turn` and every later one leave the page (a regenerate or an edit of it).
   * @param {number} turn
   */
  removeFrom(turn) {
    this.messages.removeFrom(turn);
    this.messages.updateEmptyState();
  }

  /** @param {boolean} pending */
  setPending(pending) {
    this.pending = pending;
    this.onPending(pending);
    const sendHadFocus = document.activeElement === this.sendButton;
    const stopHadFocus = document.activeElement === this.stopButton;
    this.sendButton.hidden = pending;
    this.stopButton.hidden = !pending;
    this.log.setAttribute("aria-busy", String(pending));
    // A hidden button drops keyboard focus: hand it to the one that takes its place, or back to
    // the message box.
    if (pending && sendHadFocus) this.stopButton.focus();
    const lost = document.activeElement === document.body || !document.activeElement;
    if (!pending && (stopHadFocus || lost)) this.input.focus();
  }

  /**
   * The failed message stays in the log, marked, with a Retry; its text also goes back into the
   * box (unless the reader has started another one), so nothing typed is ever lost.
   * A failed regenerate or edit retries as one (a regenerated message was not typed: it does
   * not go into the box).
   * @param {HTMLElement} userItem
   * @param {string} text
   * @param {string} reason
   * @param {Replace | null} replace
   */
  markFailed(userItem, text, reason, replace) {
    userItem.classList.replace("message--pending", "message--failed");
    const notice = errorNotice(`Not sent. ${reason}`, () => {
      if (this.pending) return; // one message at a time; this one keeps its Retry
      userItem.remove();
      if (this.input.value === text) this.input.value = "";
      this.send(text, replace);
    });
    notice.classList.add("message__error");
    userItem.querySelector(".message__body")?.append(notice);
    if (!this.input.value && (!replace || replace.edited)) this.input.value = text;
    this.follow.followOrNotify();
  }

  /**
   * Sending the same text again from the box replaces its failed copy in the log.
   * @param {string} text
   */
  dropFailedCopies(text) {
    for (const item of this.messages.list.querySelectorAll(".message--failed")) {
      if (item.querySelector(".message__text")?.textContent === text) item.remove();
    }
  }
}
