// @ts-check
// The message being typed survives what takes the page away for a moment: signing in (a
// redirect to the provider and back), a session that ended, a key entered or forgotten, a
// reload. It is kept in sessionStorage, this tab's only, and given back to an empty box when
// the page loads.

import { keepInTab, readTab } from "./tab-storage.js?v=5b7e2456a0";

const STORAGE_KEY = "chat-service.draft";

export class Draft {
  /** @param {HTMLTextAreaElement} input */
  constructor(input) {
    this.input = input;
    input.addEventListener("input", () => this.save());
    // Sending empties the box (composer.js) without an input event: the sent text is no draft.
    input.form?.addEventListener("submit", () => this.save());
    window.addEventListener("pagehide", () => this.save());
  }

  // What the box held when the page was last left, into an empty box.
  restore() {
    const kept = readTab(STORAGE_KEY);
    if (kept && !this.input.value) this.input.value = kept;
  }

  // Keeps what the box holds now (nothing, when it is empty).
  save() {
    keepInTab(STORAGE_KEY, this.input.value);
  }
}
