// @ts-check
// The conversation's messages as the page shows them: the items (text only, through textContent;
// replies as sanitized Markdown once markdown.js has its libraries), the list they sit in, and
// whether its empty state shows.
import { copyButton } from "./copy-button.js?v=fe998d82ab";
import { actionButton, element } from "./dom.js?v=e991253526";
import { stampExchange } from "./message-stamp.js?v=8f8a8af74a";
import { generationOf, idOfItem, turnOf } from "./protocol.js?v=bfc17f51c7";

/** @typedef {"user" | "ai"} Role */
/** @typedef {import("#page/protocol.js").Exchange} Exchange */
/** @typedef {import("#page/markdown.js").RenderMarkdown} RenderMarkdown */

// Messages that are not (yet) part of the stored conversation: they stay after it.
export const UNSETTLED =
  ".message--failed, .message--pending, .message--thinking, .message--streaming";
const SETTLED = `.message:not(${UNSETTLED})`;

/**
 * What the reader sees of a message (a reply's Markdown rendered), for announcing it.
 * @param {HTMLElement} item
 */
export function shownText(item) {
  return item.querySelector(".message__text")?.textContent ?? "";
}

// Decoration only: the bubble itself says "Assistant:" to screen readers.
function avatar() {
  const node = element("span", "avatar", "AI");
  node.setAttribute("aria-hidden", "true");
  return node;
}

/**
 * The row of buttons under a message's bubble.
 * @param {HTMLElement} button
 */
function actionsOf(button) {
  const actions = element("div", "message__actions");
  actions.append(button);
  return actions;
}

/**
 * Both items of a stored exchange carry its id, so that a cut finds them, and the page knows
 * which turn a Regenerate or an Edit replaces.
 * @param {HTMLElement} userItem
 * @param {HTMLElement | null} aiItem
 * @param {string} id canonical
 */
export function setExchange(userItem, aiItem, id) {
  userItem.dataset.exchange = id;
  if (aiItem) aiItem.dataset.exchange = id;
}

export class Messages {
  /**
   * @param {HTMLOListElement} list
   * @param {HTMLElement} empty the "Start a conversation" empty state
   */
  constructor(list, empty) {
    this.list = list;
    this.empty = empty;
    // The history of the conversation shown has loaded: only then may the empty state show.
    this.historyLoaded = false;
    /** @type {RenderMarkdown | null} */
    this.renderMarkdown = null;
    this.jaegerBaseUrl = "";
    /** @type {WeakMap<HTMLElement, string>} each reply's Markdown, as written, for its Copy */
    this.sources = new WeakMap();
  }

  /**
   * Settings that arrive after start-up: the Markdown renderer, the Jaeger UI for trace links.
   * @param {{ renderMarkdown: RenderMarkdown | null, jaegerBaseUrl: string }} settings
   */
  configure({ renderMarkdown, jaegerBaseUrl }) {
    this.renderMarkdown = renderMarkdown;
    this.jaegerBaseUrl = jaegerBaseUrl;
  }

  /**
   * @param {Role} role
   * @param {string} text
   * @param {{ traceId?: string | null }} [options]
   */
  item(role, text, { traceId = null } = {}) {
    const item = element("li", `message message--${role}`);
    if (role === "ai") item.append(avatar());
    const body = element("div", "message__body");
    const bubble = element("div", "bubble");
    // Screen readers hear who spoke; sighted readers see it from side and colour.
    bubble.append(element("span", "visually-hidden", role === "user" ? "You: " : "Assistant: "));
    bubble.append(element("div", "message__text"));
    body.append(bubble);
    if (role === "ai") this.addCopy(item, body);
    // Shown once the message is stored (it has its exchange's id: style.css); there from the
    // start, so that a page of older messages is as tall when it is placed as it stays.
    if (role === "user") body.append(actionsOf(actionButton("Edit", "message", "message__edit")));
    if (traceId && this.jaegerBaseUrl) body.append(this.traceLink(traceId));
    item.append(body);
    this.setText(item, role, text);
    return item;
  }

  /**
   * The message's text: a reply as Markdown when the page can render it safely, else as text.
   * @param {HTMLElement} item
   * @param {Role} role
   * @param {string} text
   */
  setText(item, role, text) {
    const content = item.querySelector(".message__text");
    if (!content) return;
    if (role === "ai") this.sources.set(item, text);
    if (role === "ai" && this.renderMarkdown) {
      content.classList.add("message__text--markdown");
      // While it streams, only its finished code blocks are highlighted (markdown.js).
      const complete = !item.classList.contains("message--streaming");
      content.replaceChildren(this.renderMarkdown(text, { complete }));
    } else {
      content.textContent = text;
    }
  }

  /**
   * A reply's Copy button, under it: the reply's Markdown as the model wrote it (what the page
   * shows is that rendered), the whole of it as shown now. Hidden while the reply streams.
   * @param {HTMLElement} item
   * @param {HTMLElement} body
   */
  addCopy(item, body) {
    const copy = copyButton("reply", () => this.sources.get(item) ?? "", "message__copy");
    if (!copy) return;
    body.append(actionsOf(copy));
  }

  /**
   * A note under a message ("Stopped", "Connection lost…").
   * @param {HTMLElement} item
   * @param {string} note
   */
  addNote(item, note) {
    item.querySelector(".message__body")?.append(element("p", "message__note", note));
  }

  /** @param {string} traceId */
  traceLink(traceId) {
    const meta = element("div", "message__meta");
    const link = element("a", "trace-link", "trace");
    link.href = `${this.jaegerBaseUrl}/trace/${traceId}`;
    link.target = "_blank";
    link.rel = "noopener noreferrer";
    link.title = `Trace ${traceId} in Jaeger`;
    link.setAttribute("aria-label", "Open the trace of this reply in Jaeger");
    meta.append(link);
    return meta;
  }

  /** @param {Exchange[]} exchanges */
  exchangeItems(exchanges) {
    const fragment = document.createDocumentFragment();
    for (const exchange of exchanges) {
      const userItem = this.item("user", exchange.user);
      const aiItem = this.item("ai", exchange.AI);
      stampExchange(userItem, aiItem, exchange);
      const id = idOfItem(exchange);
      if (id !== null) setExchange(userItem, aiItem, id);
      fragment.append(userItem, aiItem);
    }
    return fragment;
  }

  thinkingItem() {
    const item = element("li", "message message--ai message--thinking");
    item.append(avatar());
    const bubble = element("div", "bubble");
    const dots = element("span", "dots");
    dots.setAttribute("aria-hidden", "true");
    dots.append(element("span", "dot"), element("span", "dot"), element("span", "dot"));
    bubble.append(dots, element("span", "thinking__label", "Thinking…"));
    item.append(bubble);
    return item;
  }

  get count() {
    return this.list.childElementCount;
  }

  // Another conversation is shown: nothing of this one stays.
  clear() {
    this.historyLoaded = false;
    this.list.replaceChildren();
    this.updateEmptyState();
  }

  // On a retry of the history, messages sent meanwhile are part of it now; unsent and pending
  // ones are not, and stay after it.
  removeSettled() {
    for (const item of this.list.querySelectorAll(SETTLED)) item.remove();
  }

  /**
   * The stored exchanges shown from `turn` on, of generation `generation` or lower, go (a cut:
   * the conversation was regenerated or edited there). Returns how many exchanges went.
   * @param {number} turn
   * @param {number} [generation] an exchange of a higher one was stored after the cut: it stays
   */
  removeFrom(turn, generation = Infinity) {
    let removed = 0;
    for (const item of /** @type {NodeListOf<HTMLElement>} */ (
      this.list.querySelectorAll(".message[data-exchange]")
    )) {
      const id = item.dataset.exchange ?? "";
      if (turnOf(id) < turn || generationOf(id) > generation) continue;
      if (item.classList.contains("message--user")) removed += 1;
      item.remove();
    }
    return removed;
  }

  updateEmptyState() {
    this.empty.hidden = !(this.historyLoaded && this.count === 0);
  }
}
