// The chat page: history, streamed replies with Stop, errors with retry, connection state, live
// updates (exchanges committed elsewhere, by another tab or device, any replica, any client,
// appear as they are committed), and the reader's conversations (sidebar.js): the one shown is
// in the URL (?c=<id>; none is the service's "default"), so reload, back and forward keep it.
//
// An ES module (strict mode by definition), no framework, no build step. User text goes into
// the page through textContent / text nodes only; assistant replies are rendered as sanitized
// Markdown (markdown.js) when its libraries are installed, as text otherwise. The
// Content-Security-Policy's Trusted Types directive makes any HTML sink throw, as a backstop.
// URLs are relative ("chat/history"), so the page works behind NGINX and from the service.

// Versioned like the page's other assets (?v= is the file's content hash, checked by
// tests/e2e/test_static_files.py), so NGINX may let browsers cache them for good.
import { loadMarkdown } from "./markdown.js?v=65e0c4b3ec";
import { readEvents } from "./sse.js?v=440dd6f5d3";
import { Sidebar } from "./sidebar.js?v=832e71d941";

const HISTORY_PAGE_SIZE = 50;
const HISTORY_TIMEOUT_MS = 15_000;
// How long the page waits for a reply to start. A real model can be slow to begin; NGINX's
// proxy_read_timeout is the same, so the page never gives up on a reply the proxy still waits
// for. Once the reply streams there is no limit: the service's keep-alive comments and the
// Stop button take over.
const SEND_TIMEOUT_MS = 120_000;
// Within this distance of the bottom the reader is "following" the conversation.
const FOLLOW_THRESHOLD_PX = 80;
// While the service is unreachable, /readyz is polled with this backoff.
const RECONNECT_DELAYS_MS = [2_000, 4_000, 8_000, 15_000, 30_000];
const UNAVAILABLE_STATUSES = new Set([502, 503, 504]);
// Messages that are not (yet) part of the stored conversation: they stay after it.
const UNSETTLED_MESSAGES =
  ".message--failed, .message--pending, .message--thinking, .message--streaming";
const SETTLED_MESSAGES = `.message:not(${UNSETTLED_MESSAGES})`;
const TRACERESPONSE = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/;
// The conversation a URL without ?c= shows: the service's own default, the one clients that
// name no conversation write to.
const DEFAULT_CONVERSATION = "default";
// A conversation id as the service accepts it.
const CONVERSATION_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
// An exchange's id (its history cursor), as the service writes it: up to 18 digits, more than
// a Number holds exactly, so ids stay strings and are compared as BigInts.
const EXCHANGE_ID = /^[0-9]{1,18}$/;
// EventSource retries by itself after a network error or the end of a stream, but gives up on
// an answer that is not a stream, such as NGINX's 502 while the service restarts. Once the
// stream has worked, the page opens it again after these delays.
const LIVE_RETRY_DELAYS_MS = [1_000, 2_000, 4_000, 8_000, 15_000, 30_000];
// Messages from elsewhere that arrive together (a catch-up after a reconnect) are announced
// once, not one over the other.
const ANNOUNCE_BATCH_MS = 150;

const $ = (id) => document.getElementById(id);
const ui = {
  log: $("log"),
  messages: $("messages"),
  empty: $("empty"),
  loadEarlier: $("load-earlier"),
  historyNotice: $("history-notice"),
  jump: $("jump"),
  announcer: $("announcer"),
  connection: $("connection"),
  connectionLabel: $("connection-label"),
  composer: $("composer"),
  input: $("message"),
  send: $("send"),
  stop: $("stop"),
};

const state = {
  jaegerBaseUrl: "",
  // The conversation shown. Each switch starts a new generation: answers that arrive for an
  // earlier one (a history page, a reply still streaming) no longer touch the page.
  conversationId: DEFAULT_CONVERSATION,
  generation: 0,
  historyLoaded: false,
  nextPage: null, // URL of the next older history page, from the Link header
  loadingEarlier: false,
  earlierFailed: false,
  pending: false,
  following: true,
  topObserver: null,
  reconnectTimer: 0,
  reconnectAttempt: 0,
  renderMarkdown: null, // text -> DocumentFragment, once markdown.js has its libraries
  reply: null, // the reply being streamed: { controller, stopped, text }
  live: newLive(),
  sidebar: null, // the conversations (sidebar.js)
};

// What the page knows of the live stream of the conversation shown.
function newLive() {
  return {
    source: null, // the EventSource on chat/events, once the history has loaded
    opened: false, // the stream worked at least once (the service has it)
    after: null, // the id the stream resumes after when the page opens it again
    retry: 0,
    retryTimer: 0,
    known: new Set(), // ids of the exchanges the page shows
    replayed: [], // shown history exchanges still waiting for their id (see followConversation)
    held: [], // events that may be this page's own message, while it is being answered
    unconfirmed: [], // this page's exchanges shown without an id: stopped replies, JSON answers
    batch: { count: 0, last: "", timer: 0 }, // announcements of messages from elsewhere
  };
}

// ---------------------------------------------------------------------------------------------
// Talking to the service

// `unreachable`: no answer from the service itself (network error, or 502/503/504 from NGINX);
// `status`: the HTTP status of an error answer.
class ApiError extends Error {
  constructor(message, { unreachable = false, status = 0 } = {}) {
    super(message);
    this.name = "ApiError";
    this.unreachable = unreachable;
    this.status = status;
  }
}

async function callApi(url, init, timeoutMs) {
  let response;
  try {
    response = await fetch(url, {
      ...init,
      headers: { Accept: "application/json", ...init?.headers },
      signal: AbortSignal.timeout(timeoutMs),
    });
  } catch (error) {
    if (error.name === "TimeoutError") {
      throw new ApiError("The service took too long to answer.");
    }
    throw new ApiError("Can't reach the chat service. Check that it is running, then retry.", {
      unreachable: true,
    });
  }
  const body = await readJson(response);
  if (!response.ok) {
    throw new ApiError(errorMessage(response, body), {
      unreachable: UNAVAILABLE_STATUSES.has(response.status),
      status: response.status,
    });
  }
  setConnection("online");
  return { response, body };
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null; // an empty or non-JSON body; the status decides what to say
  }
}

// The service's own message when it sent one (the contract's error shape), else the status.
function errorMessage(response, body) {
  if (body && typeof body.message === "string" && body.message.trim()) {
    return body.message;
  }
  const reason = response.statusText ? ` ${response.statusText}` : "";
  return `The service answered with an error (HTTP ${response.status}${reason}).`;
}

function isExchangeList(body) {
  return (
    Array.isArray(body) &&
    body.every((e) => e && typeof e.user === "string" && typeof e.AI === "string")
  );
}

// RFC 8288 Link header: the target of rel="next" as a URL, or null.
function nextTarget(response) {
  const header = response.headers.get("Link");
  if (!header) return null;
  for (const part of header.split(",")) {
    const match = /<([^>]*)>\s*;(?:.*;)?\s*rel="?next"?/i.exec(part);
    if (match) return new URL(match[1], response.url);
  }
  return null;
}

// The next older history page, when it is on this origin, or null.
function nextLink(response) {
  const url = nextTarget(response);
  return url && url.origin === location.origin ? url.href : null;
}

// The trace id of the W3C traceresponse header, when the service sent one.
function traceIdOf(response) {
  const match = TRACERESPONSE.exec(response.headers.get("traceresponse")?.trim() ?? "");
  return match && !/^0+$/.test(match[1]) ? match[1] : null;
}

// config.json is optional: without it, or with an empty jaegerBaseUrl, there are no trace links.
async function loadConfig() {
  try {
    const response = await fetch("config.json", {
      cache: "no-cache",
      signal: AbortSignal.timeout(HISTORY_TIMEOUT_MS),
    });
    const config = response.ok ? await response.json() : {};
    state.jaegerBaseUrl = safeBaseUrl(config?.jaegerBaseUrl);
  } catch {
    state.jaegerBaseUrl = ""; // a missing or broken config only hides the optional links
  }
}

// Only http(s) URLs become links, so a bad config cannot inject javascript: URLs.
function safeBaseUrl(value) {
  if (typeof value !== "string" || !value.trim()) return "";
  try {
    const url = new URL(value.trim());
    return url.protocol === "http:" || url.protocol === "https:" ? url.href.replace(/\/+$/, "") : "";
  } catch {
    return "";
  }
}

// ---------------------------------------------------------------------------------------------
// Connection indicator

const CONNECTION_LABELS = {
  connecting: "Connecting…",
  online: "Online",
  offline: "Offline",
};

function setConnection(status) {
  ui.connection.dataset.state = status;
  if (ui.connectionLabel.textContent !== CONNECTION_LABELS[status]) {
    ui.connectionLabel.textContent = CONNECTION_LABELS[status];
  }
  if (status === "offline") {
    scheduleReconnectCheck();
  } else {
    clearTimeout(state.reconnectTimer);
    state.reconnectTimer = 0;
    state.reconnectAttempt = 0;
  }
}

// While offline, watch /readyz so the indicator turns green again by itself. Nothing is re-sent
// automatically: the reader decides, with the Retry buttons.
function scheduleReconnectCheck() {
  if (state.reconnectTimer) return;
  const delays = RECONNECT_DELAYS_MS;
  const delay = delays[Math.min(state.reconnectAttempt, delays.length - 1)];
  state.reconnectAttempt += 1;
  state.reconnectTimer = setTimeout(async () => {
    state.reconnectTimer = 0;
    if (ui.connection.dataset.state !== "offline") return;
    try {
      const response = await fetch("readyz", { signal: AbortSignal.timeout(5_000) });
      setConnection(response.ok ? "online" : "offline");
    } catch {
      setConnection("offline");
    }
  }, delay);
}

function reportFailure(error) {
  setConnection(error.unreachable ? "offline" : "online");
}

// ---------------------------------------------------------------------------------------------
// Rendering: text only, through textContent

function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function messageItem(role, text, { traceId = null } = {}) {
  const item = element("li", `message message--${role}`);
  if (role === "ai") item.append(avatar());
  const body = element("div", "message__body");
  const bubble = element("div", "bubble");
  // Screen readers hear who spoke; sighted readers see it from side and colour.
  bubble.append(element("span", "visually-hidden", role === "user" ? "You: " : "Assistant: "));
  const content = element("div", "message__text");
  bubble.append(content);
  body.append(bubble);
  if (traceId && state.jaegerBaseUrl) body.append(traceLink(traceId));
  item.append(body);
  setText(item, role, text);
  return item;
}

// The message's text: a reply as Markdown when the page can render it safely, else as text.
function setText(item, role, text) {
  const content = item.querySelector(".message__text");
  if (role === "ai" && state.renderMarkdown) {
    content.classList.add("message__text--markdown");
    content.replaceChildren(state.renderMarkdown(text));
  } else {
    content.textContent = text;
  }
}

// What the reader sees of a message (a reply's Markdown rendered), for announcing it.
function shownText(item) {
  return item.querySelector(".message__text").textContent;
}

// Decoration only: the bubble itself says "Assistant:" to screen readers.
function avatar() {
  const node = element("span", "avatar", "AI");
  node.setAttribute("aria-hidden", "true");
  return node;
}

function traceLink(traceId) {
  const meta = element("div", "message__meta");
  const link = element("a", "trace-link", "trace");
  link.href = `${state.jaegerBaseUrl}/trace/${traceId}`;
  link.target = "_blank";
  link.rel = "noopener noreferrer";
  link.title = `Trace ${traceId} in Jaeger`;
  link.setAttribute("aria-label", "Open the trace of this reply in Jaeger");
  meta.append(link);
  return meta;
}

function exchangeItems(exchanges) {
  const fragment = document.createDocumentFragment();
  for (const exchange of exchanges) {
    fragment.append(messageItem("user", exchange.user), messageItem("ai", exchange.AI));
  }
  return fragment;
}

function thinkingItem() {
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

// An in-place error: what went wrong and a button to try again.
function errorNotice(message, onRetry) {
  const notice = element("div", "notice notice--error");
  notice.setAttribute("role", "alert");
  notice.append(element("span", "notice__text", message));
  const retry = element("button", "button button--small", "Retry");
  retry.type = "button";
  retry.addEventListener("click", onRetry);
  notice.append(retry);
  return notice;
}

function updateEmptyState() {
  const empty = state.historyLoaded && ui.messages.childElementCount === 0;
  ui.empty.hidden = !empty;
}

function announce(text) {
  ui.announcer.textContent = text;
}

// ---------------------------------------------------------------------------------------------
// Scrolling that follows the conversation but not a reader who scrolled up

function distanceFromBottom() {
  return ui.log.scrollHeight - ui.log.scrollTop - ui.log.clientHeight;
}

function scrollToBottom() {
  ui.log.scrollTop = ui.log.scrollHeight;
  state.following = true;
  ui.jump.hidden = true;
}

function followOrNotify() {
  if (state.following) {
    scrollToBottom();
  } else {
    ui.jump.hidden = false;
  }
}

function onScroll() {
  state.following = distanceFromBottom() <= FOLLOW_THRESHOLD_PX;
  if (state.following) ui.jump.hidden = true;
}

// ---------------------------------------------------------------------------------------------
// History

async function loadLatest() {
  clearHistoryNotice();
  const generation = state.generation;
  try {
    const params = new URLSearchParams({
      conversation_id: state.conversationId,
      limit: HISTORY_PAGE_SIZE,
    });
    const { response, body } = await callApi(`chat/history?${params}`, {}, HISTORY_TIMEOUT_MS);
    if (generation !== state.generation) return; // another conversation is shown now
    if (!isExchangeList(body)) throw new ApiError("The history came in an unknown format.");
    // On a retry, messages sent meanwhile are part of this history now; unsent and pending
    // ones are not, and stay after it.
    for (const item of ui.messages.querySelectorAll(SETTLED_MESSAGES)) item.remove();
    const items = exchangeItems(body);
    const userItems = items.querySelectorAll(".message--user");
    ui.messages.prepend(items);
    setNextPage(nextLink(response));
    state.historyLoaded = true;
    updateEmptyState();
    scrollToBottom();
    watchTopOfHistory();
    // The list of chats, once the service has answered (not while it is away: a page opened
    // during an outage asks once, for the history, and its Retry brings both).
    if (!state.sidebar.loaded) state.sidebar.load();
    followConversation(
      replayStart(response),
      body.map((exchange, index) => ({ ...exchange, item: userItems[index] })),
    );
  } catch (error) {
    if (generation !== state.generation) return;
    reportFailure(error);
    showHistoryNotice(`Couldn't load the conversation. ${error.message}`, loadLatest);
  }
}

// `automatic` is a load asked for by scrolling; after a failure only the Retry button loads again,
// so an outage does not turn into a request loop.
async function loadEarlier({ automatic = false } = {}) {
  if (!state.nextPage || state.loadingEarlier || (automatic && state.earlierFailed)) return;
  state.loadingEarlier = true;
  ui.loadEarlier.disabled = true;
  ui.loadEarlier.textContent = "Loading earlier messages…";
  clearHistoryNotice();
  const generation = state.generation;
  try {
    const { response, body } = await callApi(state.nextPage, {}, HISTORY_TIMEOUT_MS);
    if (generation !== state.generation) return; // another conversation is shown now
    if (!isExchangeList(body)) throw new ApiError("The history came in an unknown format.");
    // Keep what the reader is looking at in place while older messages appear above it.
    const fromBottom = ui.log.scrollHeight - ui.log.scrollTop;
    ui.messages.prepend(exchangeItems(body));
    ui.log.scrollTop = ui.log.scrollHeight - fromBottom;
    state.earlierFailed = false;
    setNextPage(nextLink(response));
  } catch (error) {
    if (generation !== state.generation) return;
    reportFailure(error);
    state.earlierFailed = true;
    showHistoryNotice(`Couldn't load earlier messages. ${error.message}`, () => loadEarlier());
  } finally {
    if (generation === state.generation) {
      state.loadingEarlier = false;
      ui.loadEarlier.disabled = false;
      ui.loadEarlier.textContent = "Load earlier messages";
    }
  }
}

function setNextPage(url) {
  state.nextPage = url;
  ui.loadEarlier.hidden = !url;
}

function showHistoryNotice(message, retry) {
  ui.historyNotice.replaceChildren(errorNotice(message, retry));
}

function clearHistoryNotice() {
  ui.historyNotice.replaceChildren();
}

// Older pages load by themselves when the top of the history scrolls into view.
function watchTopOfHistory() {
  if (state.topObserver) return;
  state.topObserver = new IntersectionObserver(
    (entries) => {
      if (entries.some((entry) => entry.isIntersecting)) loadEarlier({ automatic: true });
    },
    { root: ui.log, rootMargin: "200px 0px 0px 0px" },
  );
  state.topObserver.observe(ui.loadEarlier);
}

// ---------------------------------------------------------------------------------------------
// Sending

// A reply goes on streaming when the reader switches to another conversation meanwhile: the
// service stores it whole, and it is there when they come back. From then on it no longer
// touches the page (`shown()` is false).
async function send(text) {
  if (state.pending) return;
  const conversationId = state.conversationId;
  const generation = state.generation;
  const shown = () => generation === state.generation;
  const reply = { controller: new AbortController(), stopped: false, text };
  state.reply = reply;
  setPending(true);
  const userItem = messageItem("user", text);
  userItem.classList.add("message--pending");
  const thinking = thinkingItem();
  ui.messages.append(userItem, thinking);
  updateEmptyState();
  scrollToBottom(); // the reader just sent this, so they want to see it
  const streamed = { item: null, text: "", frame: 0 };
  let stored = false; // the exchange is in the conversation now
  try {
    const response = await startReply(text, conversationId, reply.controller);
    const traceId = traceIdOf(response);
    const showPiece = (piece) => {
      if (!streamed.item) {
        streamed.item = messageItem("ai", "", { traceId });
        streamed.item.classList.add("message--streaming");
        thinking.replaceWith(streamed.item);
      }
      streamed.text += piece;
      scheduleRender(streamed);
    };
    const { text: whole, id } = await readReply(response, showPiece);
    cancelAnimationFrame(streamed.frame);
    userItem.classList.remove("message--pending");
    const item = streamed.item ?? messageItem("ai", "", { traceId });
    if (!streamed.item) thinking.replaceWith(item);
    item.classList.remove("message--streaming");
    setText(item, "ai", whole);
    stored = true;
    if (!shown()) return;
    ownExchange(id, { user: text, shown: whole, userItem, aiItem: item });
    announce(`Assistant: ${shownText(item)}`);
    followOrNotify();
  } catch (error) {
    cancelAnimationFrame(streamed.frame);
    thinking.remove();
    // Stopped, the part sent is stored. (Cut off, it may be too, but the service may be away:
    // the list learns of it later.)
    stored = Boolean(streamed.item) && reply.stopped;
    if (!shown()) return;
    if (streamed.item && (reply.stopped || error.cutOff)) {
      // The service stores what it sent when a stream ends early: keep it, as it will be.
      if (error.cutOff) reportFailure(error);
      userItem.classList.remove("message--pending");
      keepPartial(streamed, reply.stopped ? "Stopped" : "Connection lost: the reply was cut off");
      ownExchange(null, { user: text, shown: streamed.text, userItem, aiItem: streamed.item });
    } else {
      streamed.item?.remove();
      if (!reply.stopped) reportFailure(error);
      markFailed(
        userItem,
        text,
        reply.stopped ? "Stopped before the reply began." : error.message,
      );
    }
  } finally {
    if (shown()) {
      state.reply = null;
      setPending(false);
      releaseHeld();
    }
    // Its place in the list (first), and the title the service gave a new conversation.
    if (stored) state.sidebar.touched(conversationId);
  }
}

// POST the message asking for a stream; resolves once the reply has started (or failed).
async function startReply(text, conversationId, controller) {
  const timer = setTimeout(() => controller.abort(new DOMException("", "TimeoutError")), SEND_TIMEOUT_MS);
  let response;
  try {
    response = await fetch("chat/message", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({ message: text, conversation_id: conversationId }),
      signal: controller.signal,
    });
  } catch (error) {
    throw requestError(error, controller);
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) {
    const body = await readJson(response);
    throw new ApiError(errorMessage(response, body), {
      unreachable: UNAVAILABLE_STATUSES.has(response.status),
    });
  }
  setConnection("online");
  return response;
}

function requestError(error, controller) {
  if (controller.signal.reason?.name === "TimeoutError") {
    return new ApiError("The service took too long to answer.");
  }
  if (error.name === "AbortError") return error; // Stop
  return new ApiError("Can't reach the chat service. Check that it is running, then retry.", {
    unreachable: true,
  });
}

// The reply's events: each delta to showPiece; the result, once stored, is the whole reply
// and the exchange's id (null when the service did not send one).
async function readReply(response, showPiece) {
  if (!response.headers.get("Content-Type")?.startsWith("text/event-stream")) {
    // A whole answer instead of a stream (the contract's JSON): take it as one piece.
    const body = await readJson(response);
    if (body?.status !== "Success" || typeof body.response !== "string") {
      throw new ApiError("The service sent a reply in an unknown format.");
    }
    return { text: body.response, id: null };
  }
  try {
    for await (const event of readEvents(response)) {
      const data = JSON.parse(event.data);
      if (event.type === "delta" && typeof data.text === "string") {
        showPiece(data.text);
      } else if (event.type === "done" && typeof data.response === "string") {
        return { text: data.response, id: exchangeId(event.id) };
      } else if (event.type === "error") {
        throw new ApiError(data.message || "The reply failed.");
      }
    }
  } catch (error) {
    if (error instanceof ApiError || error.name === "AbortError") throw error;
    throw cutOff(); // the connection broke mid-stream
  }
  throw cutOff(); // the stream ended without its done event
}

function cutOff() {
  const error = new ApiError("The reply was cut off.", { unreachable: true });
  error.cutOff = true;
  return error;
}

// Rendering the Markdown of a growing reply once per frame, not once per piece.
function scheduleRender(streamed) {
  if (streamed.frame) return;
  streamed.frame = requestAnimationFrame(() => {
    streamed.frame = 0;
    setText(streamed.item, "ai", streamed.text);
    followOrNotify();
  });
}

function keepPartial(streamed, note) {
  const item = streamed.item;
  item.classList.remove("message--streaming");
  item.classList.add("message--stopped");
  setText(item, "ai", streamed.text);
  item.querySelector(".message__body").append(element("p", "message__note", note));
  announce(`${note}. Assistant: ${shownText(item)}`);
  followOrNotify();
}

// Stop (the button, or Escape): closing the request stops the model; the service keeps the
// part of the reply it sent.
function stopReply() {
  if (!state.reply) return;
  state.reply.stopped = true;
  state.reply.controller.abort();
}

function setPending(pending) {
  state.pending = pending;
  const sendHadFocus = document.activeElement === ui.send;
  const stopHadFocus = document.activeElement === ui.stop;
  ui.send.hidden = pending;
  ui.stop.hidden = !pending;
  ui.log.setAttribute("aria-busy", String(pending));
  // A hidden button drops keyboard focus: hand it to the one that takes its place, or back to
  // the message box.
  if (pending && sendHadFocus) ui.stop.focus();
  if (!pending && (stopHadFocus || document.activeElement === document.body || !document.activeElement)) {
    ui.input.focus();
  }
}

// The failed message stays in the log, marked, with a Retry; its text also goes back into the box
// (unless the reader has started another one), so nothing typed is ever lost.
function markFailed(userItem, text, message) {
  userItem.classList.replace("message--pending", "message--failed");
  const notice = errorNotice(`Not sent. ${message}`, () => {
    if (state.pending) return; // one message at a time; this one keeps its Retry
    userItem.remove();
    if (ui.input.value === text) ui.input.value = "";
    send(text);
  });
  notice.classList.add("message__error");
  userItem.querySelector(".message__body").append(notice);
  if (!ui.input.value) ui.input.value = text;
  followOrNotify();
}

// Sending the same text again from the box replaces its failed copy in the log.
function dropFailedCopies(text) {
  for (const item of ui.messages.querySelectorAll(".message--failed")) {
    if (item.querySelector(".message__text")?.textContent === text) item.remove();
  }
}

function submitFromBox() {
  const text = ui.input.value;
  if (state.pending || !text.trim()) return;
  ui.input.value = "";
  dropFailedCopies(text);
  send(text);
}

// ---------------------------------------------------------------------------------------------
// Live updates: every exchange committed to the conversation, from chat/events
//
// Each exchange comes with its id, and the page shows each id once. Exchanges come back on the
// stream whoever sent them, this page included:
// - the history the page loaded: the stream starts with it (see replayStart), which tells the
//   page the ids of what it shows;
// - this page's own messages: the done event of a streamed reply carries the exchange's id.
//   An exchange may arrive before that done event, so one whose message is the one being
//   answered right now is held until the answer ends, then looked at again. A reply that
//   ended early (Stop, a cut-off stream) is stored but gets no done event: it is recognised
//   as the exchange with the same message whose reply starts with what the page showed;
// - everything else is from elsewhere: shown in id order among the stored messages (before
//   any unsent or pending ones), followed by the scrolling, and announced.

// Where the stream starts. History items carry no ids, so the page cannot ask for what comes
// after the newest one it shows. Following from "now" once the history is read would miss an
// exchange committed in between; following first and comparing what arrives meanwhile with
// the history by text could not tell a new exchange from an older one with the same text.
// So the stream starts just before the oldest exchange shown (the `before` of the Link
// header), or at the beginning when the page shows the whole conversation (no Link): the
// service sends the shown exchanges again, oldest first, then everything newer. Ids only
// grow within a conversation, so the first events are exactly the exchanges shown, each
// with its id. The price: the shown page (HISTORY_PAGE_SIZE exchanges at most) is read twice.
// A Link header without a usable cursor gives null: the stream then starts "now".
function replayStart(response) {
  if (!response.headers.get("Link")) return "0";
  const before = exchangeId(nextTarget(response)?.searchParams.get("before"));
  return before !== null && before !== "0" ? String(BigInt(before) - 1n) : null;
}

// `shown`: the exchanges of the loaded history, oldest first, each with its user item.
function followConversation(after, shown) {
  const live = state.live;
  if (live.source) return;
  live.after = after;
  live.replayed = after === null ? [] : shown;
  openStream();
}

function openStream() {
  const live = state.live;
  const params = new URLSearchParams({ conversation_id: state.conversationId });
  if (live.after !== null) params.set("last_event_id", live.after);
  const source = new EventSource(`chat/events?${params}`);
  live.source = source;
  source.addEventListener("open", () => {
    live.opened = true;
    live.retry = 0;
  });
  source.addEventListener("exchange", onExchange);
  source.addEventListener("error", () => {
    // Reconnecting by itself (CONNECTING) needs no help. A service that never streamed (an
    // older one, without chat/events) is left alone: the page works as it did before.
    if (source.readyState !== EventSource.CLOSED || !live.opened || source !== live.source) {
      return;
    }
    const delays = LIVE_RETRY_DELAYS_MS;
    live.retryTimer = setTimeout(openStream, delays[Math.min(live.retry, delays.length - 1)]);
    live.retry += 1;
  });
}

// The conversation shown changes: its stream, timers and announcements go with it.
function stopFollowing() {
  const live = state.live;
  live.source?.close();
  clearTimeout(live.retryTimer);
  clearTimeout(live.batch.timer);
  state.live = newLive();
}

function onExchange(event) {
  if (event.target !== state.live.source) return;
  const id = exchangeId(event.lastEventId);
  const data = parseJson(event.data);
  if (id === null || typeof data?.user !== "string" || typeof data.AI !== "string") return;
  state.live.after = id; // where the page resumes if it has to open the stream again
  receive({ id, user: data.user, AI: data.AI });
}

function parseJson(text) {
  try {
    return JSON.parse(text);
  } catch {
    return null;
  }
}

// An id as the service writes it, canonical (so equal ids are equal strings), or null.
function exchangeId(value) {
  return typeof value === "string" && EXCHANGE_ID.test(value) ? String(BigInt(value)) : null;
}

function receive(exchange) {
  const live = state.live;
  if (live.replayed.length) {
    // The history shown, sent again: its next exchange (or a later one, should some have
    // been deleted meanwhile). Anything else means the replay is over.
    const index = live.replayed.findIndex(
      (shown) => shown.user === exchange.user && shown.AI === exchange.AI,
    );
    if (index !== -1) {
      remember(exchange.id, live.replayed[index].item);
      live.replayed.splice(0, index + 1);
      return;
    }
    live.replayed = [];
  }
  if (live.known.has(exchange.id)) return;
  if (state.reply?.text === exchange.user) {
    live.held.push(exchange); // perhaps this page's own: decided when its answer ends
    return;
  }
  const own = live.unconfirmed.findIndex(
    (mine) => mine.user === exchange.user && exchange.AI.startsWith(mine.shown),
  );
  if (own !== -1) {
    confirmOwn(live.unconfirmed.splice(own, 1)[0], exchange);
    return;
  }
  showFromElsewhere(exchange);
}

function remember(id, userItem) {
  state.live.known.add(id);
  userItem.dataset.exchange = id;
}

// This page's exchange, stored: by its id when the done event gave one, else to recognise
// when it comes back. `mine`: { user, shown (the reply as shown), userItem, aiItem }.
function ownExchange(id, mine) {
  if (id !== null) remember(id, mine.userItem);
  else state.live.unconfirmed.push(mine);
}

function confirmOwn(mine, exchange) {
  remember(exchange.id, mine.userItem);
  // A stopped reply is stored with every piece the service had sent, which can be more than
  // reached the page before it closed the stream: show what the history will show.
  if (exchange.AI === mine.shown) return;
  setText(mine.aiItem, "ai", exchange.AI);
  if (state.following) scrollToBottom();
}

// The answer to this page's message has ended: the events held meanwhile can be placed now.
function releaseHeld() {
  const held = state.live.held;
  state.live.held = [];
  for (const exchange of held) receive(exchange);
}

function showFromElsewhere(exchange) {
  const userItem = messageItem("user", exchange.user);
  const aiItem = messageItem("ai", exchange.AI);
  remember(exchange.id, userItem);
  const id = BigInt(exchange.id);
  const newer = [...ui.messages.querySelectorAll(".message--user[data-exchange]")].find(
    (item) => BigInt(item.dataset.exchange) > id,
  );
  const place = newer ?? ui.messages.querySelector(UNSETTLED_MESSAGES);
  if (place) place.before(userItem, aiItem);
  else ui.messages.append(userItem, aiItem);
  updateEmptyState();
  followOrNotify();
  announceFromElsewhere(userItem, aiItem);
  // The conversation moved to the top of the list; a first message also gave it a title.
  state.sidebar.touched(state.conversationId);
}

function announceFromElsewhere(userItem, aiItem) {
  const batch = state.live.batch;
  batch.count += 1;
  batch.last = `You: ${shownText(userItem)} Assistant: ${shownText(aiItem)}`;
  clearTimeout(batch.timer);
  batch.timer = setTimeout(() => {
    announce(
      batch.count === 1
        ? `New message from elsewhere. ${batch.last}`
        : `${batch.count} new messages from elsewhere. The latest: ${batch.last}`,
    );
    batch.count = 0;
  }, ANNOUNCE_BATCH_MS);
}

// ---------------------------------------------------------------------------------------------
// Conversations: which one is shown, and the URL that says so

// The conversation a URL names: ?c=<id>, else the default. `valid` is false for an id the
// service would refuse; the page then shows the default and says so in the URL.
function conversationInUrl() {
  const id = new URLSearchParams(location.search).get("c");
  if (id === null || id === DEFAULT_CONVERSATION) return { id: DEFAULT_CONVERSATION, valid: true };
  return CONVERSATION_ID.test(id) ? { id, valid: true } : { id: DEFAULT_CONVERSATION, valid: false };
}

function urlFor(id) {
  if (id === DEFAULT_CONVERSATION) return location.pathname;
  return `${location.pathname}?${new URLSearchParams({ c: id })}`;
}

// Show another conversation: its history, its live stream, its place in the sidebar.
// `history`: "push" (the reader chose it: a new entry), "replace" or "none" (back/forward).
function openConversation(id, { history = "push" } = {}) {
  if (history === "push") window.history.pushState({ c: id }, "", urlFor(id));
  else if (history === "replace") window.history.replaceState({ c: id }, "", urlFor(id));
  state.sidebar?.setCurrent(id);
  if (id === state.conversationId && state.historyLoaded) return;
  stopFollowing();
  state.generation += 1;
  state.conversationId = id;
  // A reply still streaming belongs to the conversation left behind (see send).
  state.reply = null;
  if (state.pending) setPending(false);
  state.historyLoaded = false;
  state.loadingEarlier = false;
  state.earlierFailed = false;
  ui.loadEarlier.disabled = false;
  ui.loadEarlier.textContent = "Load earlier messages";
  setNextPage(null);
  clearHistoryNotice();
  ui.messages.replaceChildren();
  updateEmptyState();
  scrollToBottom();
  loadLatest();
}

// The reader chose a conversation in the sidebar.
function selectConversation(id) {
  if (id !== state.conversationId) openConversation(id);
  state.sidebar.closeDrawer();
}

// New chat: a new conversation on the service, shown at once. The one shown is reused when it
// is a new chat itself, still empty, so that pressing it twice makes one chat, not two.
async function newChat() {
  const sidebar = state.sidebar;
  const empty = state.historyLoaded && !state.pending && ui.messages.childElementCount === 0;
  if (empty && sidebar.isFresh(state.conversationId)) {
    sidebar.closeDrawer({ restoreFocus: false });
    ui.input.focus();
    return;
  }
  const id = await sidebar.create();
  if (id === null) return;
  openConversation(id);
  sidebar.closeDrawer({ restoreFocus: false });
  ui.input.focus();
  announce("New chat");
}

// A conversation was deleted: when it is the one shown, the page moves to its neighbour in the
// list, or to a new chat when it was the last.
async function onConversationDeleted(id, neighbour) {
  if (id !== state.conversationId) return;
  if (neighbour !== null) openConversation(neighbour, { history: "replace" });
  else await newChat();
}

function onHistoryMove() {
  state.sidebar.closeDrawer({ restoreFocus: false });
  const { id, valid } = conversationInUrl();
  openConversation(id, { history: valid ? "none" : "replace" });
}

// ---------------------------------------------------------------------------------------------
// Wiring

function wire() {
  ui.composer.addEventListener("submit", (event) => {
    event.preventDefault();
    submitFromBox();
  });
  ui.input.addEventListener("keydown", (event) => {
    // Enter sends, Shift+Enter is a new line; never interrupt an IME composition.
    if (event.key !== "Enter" || event.shiftKey || event.isComposing) return;
    event.preventDefault();
    submitFromBox();
  });
  ui.stop.addEventListener("click", stopReply);
  document.addEventListener("keydown", (event) => {
    // While the drawer is open or a dialog asks, Escape closes that first.
    if (event.key === "Escape" && state.reply && !state.sidebar.ownsEscape()) {
      event.preventDefault();
      stopReply();
    }
  });
  ui.loadEarlier.addEventListener("click", () => loadEarlier());
  ui.jump.addEventListener("click", () => {
    scrollToBottom();
    ui.input.focus();
  });
  ui.log.addEventListener("scroll", onScroll, { passive: true });
  // When the box grows or the window shrinks, a reader following the conversation stays at the end.
  new ResizeObserver(() => {
    if (state.following) ui.log.scrollTop = ui.log.scrollHeight;
  }).observe(ui.log);
  for (const chip of document.querySelectorAll("[data-suggestion]")) {
    chip.addEventListener("click", () => {
      ui.input.value = chip.dataset.suggestion;
      submitFromBox();
      ui.input.focus();
    });
  }
  state.sidebar = new Sidebar({
    api: callApi,
    nextLink,
    errorNotice,
    announce,
    hrefFor: urlFor,
    onSelect: selectConversation,
    onNewChat: newChat,
    onDeleted: onConversationDeleted,
  });
  window.addEventListener("popstate", onHistoryMove);
  // Back in a tab left open: other tabs and devices may have changed the list meanwhile.
  document.addEventListener("visibilitychange", () => {
    if (document.visibilityState === "visible" && state.sidebar.loaded) state.sidebar.load();
  });
}

wire();
const start = conversationInUrl();
state.conversationId = start.id;
state.sidebar.setCurrent(start.id);
if (!start.valid) history.replaceState({ c: start.id }, "", urlFor(start.id));
// Replies in the history render as Markdown too, so the libraries load first (they are local).
await Promise.all([
  loadConfig(),
  loadMarkdown().then((render) => {
    state.renderMarkdown = render;
  }),
]);
await loadLatest();
