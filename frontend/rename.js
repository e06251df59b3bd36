// @ts-check
// Renaming a chat in place: its title becomes a text box; Enter (or leaving the box) saves,
// Escape cancels. Saving itself (the PATCH) is the sidebar's.
import { titleOf } from "./conversations.js?v=239fb18723";
import { element } from "./dom.js?v=e991253526";

/** @typedef {import("#page/conversation-item.js").Item} Item */

const RENAMING = "conversation--renaming";
const TITLE_MAX_CHARS = 200;

/** @param {Item} item */
export function isRenaming(item) {
  return item.node.classList.contains(RENAMING);
}

/**
 * @param {Item} item
 * @param {(title: string) => Promise<void>} save called with a new, non-empty title; settles
 *   once the sidebar has saved it or said why not
 * @param {() => void} done the title is shown again
 */
export function startRename(item, save, done) {
  if (isRenaming(item)) return;
  const input = element("input", "conversation__input");
  input.type = "text";
  input.value = item.data.title ?? "";
  input.maxLength = TITLE_MAX_CHARS;
  input.setAttribute("aria-label", `New title for “${titleOf(item.data)}”`);
  input.autocomplete = "off";
  item.node.classList.add(RENAMING);
  item.link.hidden = true;
  item.node.prepend(input);
  input.focus();
  input.select();
  let finished = false;
  /** @param {boolean} keep */
  const finish = async (keep) => {
    if (finished) return;
    finished = true;
    const title = input.value.trim();
    const hadFocus = document.activeElement === input;
    if (keep && title && title !== (item.data.title ?? "").trim()) {
      input.disabled = true;
      await save(title);
    }
    input.remove();
    item.node.classList.remove(RENAMING);
    item.link.hidden = false;
    done();
    // Back where the reader was, unless they went somewhere else (the blur that saved).
    if (hadFocus || document.activeElement === document.body) item.rename.focus();
  };
  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.isComposing) {
      event.preventDefault();
      finish(true);
    } else if (event.key === "Escape") {
      // The rename only: the drawer stays open and a reply keeps streaming.
      event.preventDefault();
      event.stopPropagation();
      finish(false);
    }
  });
  input.addEventListener("blur", () => finish(true));
}
