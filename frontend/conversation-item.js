// @ts-check
// One chat in the sidebar's list: its link (the page's URL for it) and its Rename and Delete
// buttons, with line icons. The title is user text: textContent only.
import { titleOf } from "./conversations.js?v=239fb18723";
import { element } from "./dom.js?v=e991253526";

/** @typedef {import("#page/conversations.js").Conversation} Conversation */
/**
 * @typedef {{
 *   data: Conversation,
 *   node: HTMLLIElement,
 *   link: HTMLAnchorElement,
 *   title: HTMLSpanElement,
 *   rename: HTMLButtonElement,
 *   remove: HTMLButtonElement,
 * }} Item
 */

const SVG = "http://www.w3.org/2000/svg";
// Feather-style line icons, drawn with the current text colour.
const ICONS = {
  rename: ["M4 20h4L19 9a2.8 2.8 0 0 0-4-4L4 16v4z", "M13.5 6.5l4 4"],
  delete: ["M4 7h16", "M10 11v6", "M14 11v6", "M6 7l1 13h10l1-13", "M9 7V4h6v3"],
};

/** @param {keyof typeof ICONS} name */
function icon(name) {
  const svg = document.createElementNS(SVG, "svg");
  svg.setAttribute("viewBox", "0 0 24 24");
  svg.setAttribute("aria-hidden", "true");
  svg.setAttribute("focusable", "false");
  svg.classList.add("icon");
  for (const d of ICONS[name]) {
    const path = document.createElementNS(SVG, "path");
    path.setAttribute("d", d);
    svg.append(path);
  }
  return svg;
}

/**
 * @param {"rename" | "delete"} action
 * @param {string} title
 */
function actionButton(action, title) {
  const button = element("button", "icon-button conversation__action");
  button.type = "button";
  button.dataset.action = action;
  button.title = title;
  button.append(icon(action));
  return button;
}

/**
 * @param {Conversation} conversation
 * @param {string} href
 * @param {boolean} current the conversation shown
 * @returns {Item}
 */
export function conversationItem(conversation, href, current) {
  const node = element("li", "conversation");
  node.dataset.id = conversation.id;
  const link = element("a", "conversation__link");
  link.href = href;
  const title = element("span", "conversation__title");
  link.append(title);
  const actions = element("div", "conversation__actions");
  const rename = actionButton("rename", "Rename");
  const remove = actionButton("delete", "Delete");
  actions.append(rename, remove);
  node.append(link, actions);
  const item = { data: conversation, node, link, title, rename, remove };
  label(item);
  if (current) link.setAttribute("aria-current", "page");
  return item;
}

/**
 * Shows the item's title, wherever it appears.
 * @param {Item} item
 */
export function label(item) {
  const name = titleOf(item.data);
  item.title.textContent = name;
  item.link.title = name;
  item.node.classList.toggle("conversation--untitled", !item.data.title?.trim());
  item.rename.setAttribute("aria-label", `Rename “${name}”`);
  item.remove.setAttribute("aria-label", `Delete “${name}”`);
}
