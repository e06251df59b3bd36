// @ts-check
// API keys in the page: the "Use an API key" dialog, and the key this tab keeps. The key is
// kept in sessionStorage (this tab only, gone when it closes), and sent only in the
// Authorization header.
import { readJson } from "./api.js?v=fa6542a0b2";
import { byId } from "./dom.js?v=e991253526";
import { errorMessage } from "./protocol.js?v=bfc17f51c7";
import { keepInTab, readTab } from "./tab-storage.js?v=5b7e2456a0";

const KEY_STORAGE = "chat-service.api-key";
const TIMEOUT_MS = 15_000;

export function storedKey() {
  return readTab(KEY_STORAGE);
}

/** @param {string | null} key null forgets it */
export function storeKey(key) {
  keepInTab(KEY_STORAGE, key);
}

// "Use an API key": a modal <dialog> with a password field. The key is checked with the service
// (chat/me) before it is kept, so a wrong one is told at once and never stored.
export class KeyDialog {
  /** @param {(key: string) => void} onAccepted */
  constructor(onAccepted) {
    this.dialog = byId("key-dialog", HTMLDialogElement);
    this.form = byId("key-form", HTMLFormElement);
    this.input = byId("key-input", HTMLInputElement);
    this.error = byId("key-error", HTMLElement);
    this.submit = byId("key-submit", HTMLButtonElement);
    this.onAccepted = onAccepted;
    byId("key-cancel", HTMLButtonElement).addEventListener("click", () => this.dialog.close());
    // Escape closes the dialog only: not the drawer, and no reply is stopped.
    this.dialog.addEventListener("keydown", (event) => {
      if (event.key === "Escape") event.stopPropagation();
    });
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.check();
    });
    this.dialog.addEventListener("close", () => {
      this.input.value = ""; // not kept in the page once the dialog is gone
      this.showError("");
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  open() {
    this.showError("");
    this.dialog.showModal();
    this.input.focus();
  }

  async check() {
    const key = this.input.value.trim();
    if (!key) {
      this.showError("Enter a key.");
      return;
    }
    this.submit.disabled = true;
    try {
      const response = await fetch("chat/me", {
        headers: { Accept: "application/json", Authorization: `Bearer ${key}` },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      if (response.ok) {
        this.onAccepted(key);
        return;
      }
      const reason = errorMessage(response, await readJson(response));
      this.showError(
        response.status === 401
          ? `That key was not accepted. ${reason}`
          : `The key could not be checked: ${reason}`,
      );
    } catch {
      this.showError("The key could not be checked: the service did not answer. Try again.");
    } finally {
      this.submit.disabled = false;
    }
  }

  /** @param {string} text "" hides it */
  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
    this.input.setAttribute("aria-invalid", text ? "true" : "false");
    if (text) this.input.select();
  }
}
