// @ts-check
// The confirmation before a chat is deleted: a modal <dialog> in the page (never confirm()),
// Cancel focused, so Enter alone deletes nothing.
import { byId } from "./dom.js?v=e991253526";

export class DeleteDialog {
  /** @param {(id: string) => void} onConfirm the reader chose Delete for this chat */
  constructor(onConfirm) {
    this.dialog = byId("delete-dialog", HTMLDialogElement);
    this.name = byId("delete-dialog-name", HTMLElement);
    /** @type {string | null} the chat it asks about */
    this.asking = null;
    const dialog = this.dialog;
    const cancelButton = byId("delete-cancel", HTMLButtonElement);
    const deleteButton = byId("delete-confirm", HTMLButtonElement);
    cancelButton.addEventListener("click", () => dialog.close("cancel"));
    deleteButton.addEventListener("click", () => dialog.close("delete"));
    // Escape in the dialog cancels it (the browser does that); it must not also close the drawer
    // or stop a reply.
    dialog.addEventListener("keydown", (event) => {
      if (event.key === "Escape") event.stopPropagation();
    });
    dialog.addEventListener("close", () => {
      const id = this.asking;
      this.asking = null;
      if (dialog.returnValue === "delete" && id !== null) onConfirm(id);
    });
  }

  get open() {
    return this.dialog.open;
  }

  /**
   * @param {string} id
   * @param {string} title the chat's title, as text
   */
  ask(id, title) {
    this.asking = id;
    this.name.textContent = title;
    this.dialog.returnValue = "";
    this.dialog.showModal(); // Cancel has autofocus
  }
}
