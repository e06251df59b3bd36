// @ts-check
// "Instructions": a modal <dialog> (the pattern of key-dialog.js) for the open chat's
// system_prompt. Save PATCHes what is written ("" for no instructions at all), "Use the default"
// sets null (the deployment's CHAT_SYSTEM_PROMPT). The box holds at most the service's default
// message limit; a service set lower answers 400, which the dialog shows.
import { ApiError } from "./api.js?v=fa6542a0b2";
import { byId } from "./dom.js?v=e991253526";

/** @typedef {import("#page/chat-settings.js").ChatSettings} ChatSettings */

// CHAT_MAX_MESSAGE_CHARS's default: instructions may be as long as a message.
export const MAX_INSTRUCTIONS = 4000;

export class InstructionsDialog {
  /**
   * @param {{ settings: ChatSettings, announce: (text: string) => void }} parts
   */
  constructor({ settings, announce }) {
    this.settings = settings;
    this.announce = announce;
    this.dialog = byId("instructions-dialog", HTMLDialogElement);
    this.form = byId("instructions-form", HTMLFormElement);
    this.input = byId("instructions-input", HTMLTextAreaElement);
    this.state = byId("instructions-state", HTMLElement);
    this.count = byId("instructions-count", HTMLElement);
    this.error = byId("instructions-error", HTMLElement);
    this.openButton = byId("instructions-open", HTMLButtonElement);
    this.buttons = [
      byId("instructions-save", HTMLButtonElement),
      byId("instructions-default", HTMLButtonElement),
    ];
    this.input.maxLength = MAX_INSTRUCTIONS;
    this.openButton.addEventListener("click", () => this.open());
    byId("instructions-cancel", HTMLButtonElement).addEventListener("click", () =>
      this.dialog.close(),
    );
    byId("instructions-default", HTMLButtonElement).addEventListener("click", () =>
      this.save(null),
    );
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save(this.input.value);
    });
    this.input.addEventListener("input", () => this.showCount());
    // Escape closes the dialog only: not the drawer, and no reply is stopped.
    this.dialog.addEventListener("keydown", (event) => {
      if (event.key === "Escape") event.stopPropagation();
    });
    this.dialog.addEventListener("close", () => {
      this.showError("");
      this.openButton.focus();
    });
    settings.onReady((ready) => {
      this.openButton.disabled = !ready;
      this.openButton.title = ready ? "" : "A chat has instructions once it has a message";
      if (!ready && this.dialog.open) this.dialog.close();
    });
  }

  get isOpen() {
    return this.dialog.open;
  }

  open() {
    const record = this.settings.record;
    if (record === null) return;
    const own = record.system_prompt;
    this.input.value = own ?? "";
    this.state.textContent =
      own === null || own === undefined
        ? "This chat follows the service's default instructions."
        : own === ""
          ? "This chat has no instructions: not even the default ones."
          : "This chat has its own instructions.";
    this.showCount();
    this.showError("");
    this.dialog.showModal();
    this.input.focus();
  }

  showCount() {
    this.count.textContent = `${this.input.value.length} of ${MAX_INSTRUCTIONS} characters`;
  }

  /** @param {string | null} text null: the deployment's default */
  async save(text) {
    if (text !== null && text.length > MAX_INSTRUCTIONS) {
      this.showError(`Instructions can be at most ${MAX_INSTRUCTIONS} characters.`);
      return;
    }
    for (const button of this.buttons) button.disabled = true;
    try {
      await this.settings.patch({ system_prompt: text });
      this.dialog.close();
      this.announce(text === null ? "Default instructions" : "Instructions saved");
    } catch (error) {
      const message = error instanceof ApiError ? error.message : String(error);
      this.showError(`Couldn't save the instructions. ${message}`);
    } finally {
      for (const button of this.buttons) button.disabled = false;
    }
  }

  /** @param {string} text "" hides it */
  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
    this.input.setAttribute("aria-invalid", text ? "true" : "false");
  }
}
