// @ts-check
// The sidebar as a drawer on narrow screens (below 48rem): opened from the header's Chats button
// and closed by Escape, its close button or a click beside it. The page behind it is inert
// meanwhile, so the keyboard stays in the drawer.
import { byId } from "./dom.js?v=e991253526";

// The same breakpoint as style.css.
const NARROW = "(max-width: 47.99rem)";
const OPEN = "sidebar--open";

export class Drawer {
  /**
   * @param {HTMLElement} sidebar
   * @param {{ focusTarget: () => HTMLElement, escapeTaken: () => boolean }} parts
   *   focusTarget: what gets focus when it opens; escapeTaken: a dialog above it has Escape
   */
  constructor(sidebar, { focusTarget, escapeTaken }) {
    this.sidebar = sidebar;
    this.focusTarget = focusTarget;
    this.toggle = byId("drawer-toggle", HTMLButtonElement);
    this.scrim = byId("scrim", HTMLElement);
    this.narrow = matchMedia(NARROW);
    this.toggle.addEventListener("click", () => (this.isOpen ? this.close() : this.open()));
    byId("drawer-close", HTMLButtonElement).addEventListener("click", () => this.close());
    this.scrim.addEventListener("click", () => this.close());
    document.addEventListener("keydown", (event) => {
      if (event.key === "Escape" && this.isOpen && !escapeTaken()) {
        event.preventDefault();
        this.close();
      }
    });
    this.narrow.addEventListener("change", () => {
      if (!this.narrow.matches) this.close({ restoreFocus: false });
    });
  }

  get isOpen() {
    return this.sidebar.classList.contains(OPEN);
  }

  open() {
    if (this.isOpen || !this.narrow.matches) return;
    this.sidebar.classList.add(OPEN);
    this.scrim.hidden = false;
    this.toggle.setAttribute("aria-expanded", "true");
    for (const node of this.behind()) node.inert = true;
    this.focusTarget().focus();
  }

  /**
   * @param {{ restoreFocus?: boolean }} [options] restoreFocus: back to the Chats button that
   *   opened it (not when the page moves focus itself, or the window became wide)
   */
  close({ restoreFocus = true } = {}) {
    if (!this.isOpen) return;
    this.sidebar.classList.remove(OPEN);
    this.scrim.hidden = true;
    this.toggle.setAttribute("aria-expanded", "false");
    for (const node of this.behind()) node.inert = false;
    if (restoreFocus) this.toggle.focus();
  }

  // Without a sidebar there is nothing to open.
  remove() {
    this.close({ restoreFocus: false });
    this.toggle.hidden = true;
  }

  /**
   * What the open drawer covers, out of reach of the keyboard and screen readers: the page's
   * main content and everything around it (not the dialogs, which open above the drawer).
   * @returns {HTMLElement[]}
   */
  behind() {
    const around = [...document.body.children].filter(
      (node) => !node.contains(this.sidebar) && !(node instanceof HTMLDialogElement),
    );
    return [...around, document.querySelector("main")].filter(
      (node) => node instanceof HTMLElement,
    );
  }
}
