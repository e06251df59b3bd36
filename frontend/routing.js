// @ts-check
// Which conversation a URL shows, and the URL that shows one: ?c=<id>, or nothing for the
// service's own "default" conversation (the one clients that name none write to). Pure, so
// unit-tested; the page passes location's parts in.

const DEFAULT_CONVERSATION = "default";
// A conversation id as the service accepts it.
const CONVERSATION_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * The conversation a query string names. `valid` is false for an id the service would refuse;
 * the page then shows the default and says so in the URL.
 * @param {string} search location.search
 * @returns {{ id: string, valid: boolean }}
 */
export function conversationIn(search) {
  const id = new URLSearchParams(search).get("c");
  if (id === null || id === DEFAULT_CONVERSATION) return { id: DEFAULT_CONVERSATION, valid: true };
  return CONVERSATION_ID.test(id) ? { id, valid: true } : { id: DEFAULT_CONVERSATION, valid: false };
}

/**
 * The page's URL for a conversation.
 * @param {string} id
 * @param {string} pathname location.pathname
 */
export function urlFor(id, pathname) {
  if (id === DEFAULT_CONVERSATION) return pathname;
  return `${pathname}?${new URLSearchParams({ c: id })}`;
}
