// @ts-check
// The sidebar's chats under date headings (date-groups.js decides the groups): the list
// (#conversations) holds one item per group, a heading (h3, under the sidebar's h2 "Chats") and
// the group's own list of chats, so screen readers can move from group to group by heading.
//
// Rendering moves only the nodes out of place, so a chat that keeps its place keeps focus, and a
// chat that became active moves to its new group as it is rendered again. At local midnight the
// list is rendered again by itself: today's chats become yesterday's.
import { groupByDate, nextMidnight } from "./date-groups.js?v=b562279585";
import { element } from "./dom.js?v=e991253526";

/** @typedef {import("#page/conversation-item.js").Item} Item */
/** @typedef {{ node: HTMLLIElement, heading: HTMLHeadingElement, list: HTMLOListElement }} Group */

export class ChatGroups {
  /** @param {HTMLOListElement} list the sidebar's list of chats */
  constructor(list) {
    this.list = list;
    /** @type {Map<string, Group>} by the group's key */
    this.groups = new Map();
    /** @type {ReturnType<typeof setTimeout> | undefined} */
    this.midnight = undefined;
  }

  /**
   * Shows the chats, in this order, each under its group's heading as of `now`.
   * @param {Item[]} ordered newest activity first
   * @param {Date} now
   */
  render(ordered, now) {
    const rows = ordered.map((item) => ({ updated_at: item.data.updated_at, item }));
    const groups = groupByDate(rows, now);
    groups.forEach(({ key, label, members }, index) => {
      const group = this.group(key, label);
      place(this.list, group.node, index);
      members.forEach(({ item }, position) => place(group.list, item.node, position));
    });
    const keys = new Set(groups.map((group) => group.key));
    for (const [key, group] of this.groups) {
      if (keys.has(key)) continue;
      group.node.remove();
      this.groups.delete(key);
    }
    clearTimeout(this.midnight);
    // A second past midnight, so that the clock has surely turned.
    const wait = nextMidnight(now).getTime() - now.getTime() + 1000;
    this.midnight = setTimeout(() => this.render(ordered, new Date()), wait);
  }

  /**
   * The group of that key, made when it is new.
   * @param {string} key
   * @param {string} label
   */
  group(key, label) {
    const known = this.groups.get(key);
    if (known) return known;
    const node = element("li", "conversation-group");
    node.dataset.group = key;
    const heading = element("h3", "conversation-group__title", label);
    heading.id = `conversation-group-${key}`;
    const list = element("ol", "conversation-group__list");
    list.setAttribute("aria-labelledby", heading.id);
    node.append(heading, list);
    const group = { node, heading, list };
    this.groups.set(key, group);
    return group;
  }

  /** @returns {HTMLElement[]} the chats' items as shown, top to bottom */
  shown() {
    return [...this.list.querySelectorAll(".conversation")].filter(
      (node) => node instanceof HTMLElement,
    );
  }
}

/**
 * Puts `node` at `index` among `parent`'s children, unless it is there already.
 * @param {Element} parent
 * @param {Element} node
 * @param {number} index
 */
function place(parent, node, index) {
  if (parent.children[index] !== node) parent.insertBefore(node, parent.children[index] ?? null);
}
