// @ts-check
// The conversations of the sidebar as data, pure (no DOM): what the service's answers must look
// like, the title shown, the order, and which chats a fresh first page says are gone.

const UNTITLED = "New chat";

/**
 * @typedef {{ id: string, title?: string | null, updated_at: string, exchanges?: number }}
 *   Conversation
 */

/**
 * @param {unknown} value
 * @returns {value is Conversation}
 */
export function isConversation(value) {
  if (value === null || typeof value !== "object") return false;
  const fields = /** @type {Record<string, unknown>} */ (value);
  return (
    typeof fields.id === "string" &&
    (fields.title === null || fields.title === undefined || typeof fields.title === "string") &&
    typeof fields.updated_at === "string"
  );
}

/**
 * @param {unknown} body
 * @returns {body is Conversation[]}
 */
export function isConversationList(body) {
  return Array.isArray(body) && body.every(isConversation);
}

/** @param {Conversation | undefined} conversation */
export function titleOf(conversation) {
  return conversation?.title?.trim() ? conversation.title : UNTITLED;
}

/**
 * When it was last active, in ms (0 when the service sent no readable time).
 * @param {Conversation} conversation
 */
function activity(conversation) {
  return Date.parse(conversation.updated_at) || 0;
}

/**
 * Newest activity first.
 * @param {Conversation} a
 * @param {Conversation} b
 */
export function byActivity(a, b) {
  return activity(b) - activity(a);
}

/**
 * The time a conversation that just had an exchange moves to: now, or just after the newest one
 * listed should the clocks disagree, so that it is first.
 * @param {Conversation[]} listed
 * @param {number} now
 */
export function touchedAt(listed, now) {
  return new Date(Math.max(now, Math.max(...listed.map(activity)) + 1)).toISOString();
}

/**
 * The chats listed that a fresh first page says were deleted elsewhere: the page holds every chat
 * newer than its last one, or all of them when there is no next page (`more` false). The chat
 * shown stays: the reader is in it.
 * @param {Conversation[]} listed
 * @param {Conversation[]} page
 * @param {boolean} more
 * @param {string | null} current
 * @returns {string[]}
 */
export function goneIds(listed, page, more, current) {
  const ids = new Set(page.map((conversation) => conversation.id));
  const last = page.at(-1);
  const oldest = more ? (last && Date.parse(last.updated_at)) || Infinity : -Infinity;
  return listed
    .filter((item) => !ids.has(item.id) && activity(item) >= oldest && item.id !== current)
    .map((item) => item.id);
}

/**
 * @typedef {{ kind: "ready" } | { kind: "conversation", conversation: Conversation }
 *   | { kind: "deleted", id: string }} ListChange
 */

/**
 * What an event of the list's stream (chat/conversation-events) says: load the list (again), a
 * conversation as it now stands, or one deleted; null for anything else (a later version's).
 * @param {{ type: string, data: string }} event
 * @returns {ListChange | null}
 */
export function listChange(event) {
  if (event.type === "ready") return { kind: "ready" };
  let data;
  try {
    data = JSON.parse(event.data);
  } catch {
    return null;
  }
  if (event.type === "conversation" && isConversation(data)) {
    return { kind: "conversation", conversation: data };
  }
  if (event.type === "deleted" && typeof data?.id === "string") {
    return { kind: "deleted", id: data.id };
  }
  return null;
}
