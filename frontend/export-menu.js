// @ts-check
// "Export": the open chat as a file, Markdown or JSON (GET chat/conversations/{id}/export). The
// request carries the reader's credential in a header (credentials.js), so it cannot be a plain
// link: the file is fetched, then saved from a Blob through an <a download>, named as the
// service's Content-Disposition says (else after the chat's title).
import { ApiError } from "./api.js?v=fa6542a0b2";
import { authorizedFetch } from "./credentials.js?v=b03bf63721";
import { dispositionName, fallbackName } from "./disposition.js?v=c317b96d92";
import { byId } from "./dom.js?v=e991253526";

/** @typedef {import("#page/chat-settings.js").ChatSettings} ChatSettings */

const TIMEOUT_MS = 30_000;

export class ExportMenu {
  /**
   * @param {{ settings: ChatSettings, announce: (text: string) => void }} parts
   */
  constructor({ settings, announce }) {
    this.settings = settings;
    this.announce = announce;
    this.menu = byId("export-menu", HTMLDetailsElement);
    this.summary = /** @type {HTMLElement} */ (this.menu.querySelector("summary"));
    this.status = byId("chat-tools-status", HTMLElement);
    /** @type {Array<[HTMLButtonElement, "markdown" | "json"]>} */
    this.buttons = [
      [byId("export-markdown", HTMLButtonElement), "markdown"],
      [byId("export-json", HTMLButtonElement), "json"],
    ];
    for (const [button, format] of this.buttons) {
      button.addEventListener("click", () => this.download(format));
    }
    // Escape, or a click elsewhere, folds the menu.
    this.menu.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || !this.menu.open) return;
      event.stopPropagation();
      this.menu.open = false;
      this.summary.focus();
    });
    document.addEventListener("click", (event) => {
      if (event.target instanceof Node && !this.menu.contains(event.target)) this.menu.open = false;
    });
    settings.onReady((ready) => {
      // Hidden, not greyed: a <summary> cannot be disabled (and would fail contrast greyed).
      this.menu.hidden = !ready;
      for (const [button] of this.buttons) button.disabled = !ready;
      if (!ready) this.menu.open = false;
    });
  }

  /** @param {"markdown" | "json"} format */
  async download(format) {
    const shown = this.settings.shown;
    const record = this.settings.record;
    if (shown === null || record === null) return;
    const url = `chat/conversations/${encodeURIComponent(shown.id)}/export?format=${format}`;
    try {
      let response;
      try {
        response = await authorizedFetch(url, { signal: AbortSignal.timeout(TIMEOUT_MS) });
      } catch {
        throw ApiError.unreachable();
      }
      if (!response.ok) throw await ApiError.of(response);
      const blob = await response.blob();
      const name =
        dispositionName(response.headers.get("Content-Disposition")) ??
        fallbackName(record.title, format);
      save(blob, name);
      this.menu.open = false;
      this.summary.focus();
      this.status.hidden = true;
      this.announce(`Downloaded ${name}`);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      this.status.textContent = `Couldn't export the chat. ${message}`;
      this.status.hidden = false;
    }
  }
}

/**
 * Saves `blob` as a download named `name`.
 * @param {Blob} blob
 * @param {string} name
 */
function save(blob, name) {
  const href = URL.createObjectURL(blob);
  const link = document.createElement("a");
  link.href = href;
  link.download = name;
  link.hidden = true;
  document.body.append(link);
  link.click();
  link.remove();
  // The browser has taken the file once the click's task is over.
  setTimeout(() => URL.revokeObjectURL(href), 0);
}
