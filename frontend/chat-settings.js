// @ts-check
// The open chat's settings as the service keeps them: its record (GET chat/conversations/{id}:
// model, system_prompt, title), the models it may choose from (GET chat/models) and the model
// picker. Changes are PATCHed; instructions-dialog.js and export-menu.js use the same record.
//
// A chat may not exist on the service yet: the page's "default" one, or an address naming a new
// id, starts with its first message (POST chat/conversations chooses its own ids, so the page
// cannot create it under its id). Until then a model chosen here is sent with each message, and
// once the first exchange is stored it is PATCHed onto the chat, so it stays after a reload.
import { ApiError } from "./api.js?v=fa6542a0b2";
import { byId, element } from "./dom.js?v=e991253526";

/** @typedef {import("#page/api.js").Api} Api */
/** @typedef {import("#page/history.js").Shown} Shown */
/**
 * @typedef {{ id: string, title?: string | null, model?: string | null,
 *   system_prompt?: string | null }} Record
 * @typedef {{ title?: string, model?: string | null, system_prompt?: string | null }} Change
 */

const TIMEOUT_MS = 15_000;

/**
 * @param {unknown} body
 * @returns {body is Record}
 */
function isRecord(body) {
  return typeof body === "object" && body !== null && typeof Reflect.get(body, "id") === "string";
}

/**
 * The ids `GET chat/models` offers, the default first, or null for an answer of another shape.
 * @param {unknown} body
 * @returns {{ default: string, ids: string[] } | null}
 */
export function offeredModels(body) {
  if (typeof body !== "object" || body === null) return null;
  const fields = /** @type {{ default?: unknown, models?: unknown }} */ (body);
  if (typeof fields.default !== "string" || !Array.isArray(fields.models)) return null;
  const ids = fields.models
    .map((model) => (typeof model === "object" && model !== null ? model.id : null))
    .filter((id) => typeof id === "string");
  const first = fields.default;
  return { default: first, ids: ids.includes(first) ? ids : [first, ...ids] };
}

export class ChatSettings {
  /**
   * @param {{ api: Api, announce: (text: string) => void }} parts
   */
  constructor({ api, announce }) {
    this.api = api;
    this.announce = announce;
    this.field = byId("model-field", HTMLElement);
    this.select = byId("model-select", HTMLSelectElement);
    this.status = byId("chat-tools-status", HTMLElement);
    /** @type {Array<(ready: boolean) => void>} the other tools, told when the record is known */
    this.listeners = [];
    /** @type {Promise<{ default: string, ids: string[] } | null> | null} */
    this.models = null;
    /** @type {Shown | null} */
    this.shown = null;
    /** @type {Record | null} the chat as the service has it; null while unknown or absent */
    this.record = null;
    /** @type {string | null} the model chosen for a chat that does not exist yet */
    this.pendingModel = null;
    /** @type {Set<string>} chats this page created: they exist before their first message */
    this.created = new Set();
    /** @type {string | null} the deployment's model, which a chat's null stands for */
    this.defaultModel = null;
    this.select.addEventListener("change", () => this.choose(this.select.value));
  }

  /** @param {(ready: boolean) => void} listener */
  onReady(listener) {
    this.listeners.push(listener);
  }

  /**
   * Another chat is shown: its tools wait for its history.
   * @param {Shown} shown
   */
  show(shown) {
    if (shown === this.shown) return;
    this.shown = shown;
    this.record = null;
    this.pendingModel = null;
    this.tell("");
    this.setReady();
  }

  /**
   * The chat's history is there: its record, and the picker for it. Only a chat with messages,
   * or one this page created, is asked for: any other may not exist yet, and asking would be a
   * 404 (which the browser reports as an error); it is asked for once its first exchange is
   * stored (`stored`).
   * @param {Shown} shown
   * @param {boolean} hasMessages
   */
  async loaded(shown, hasMessages) {
    this.show(shown);
    this.models ??= this.loadModels();
    const exists = hasMessages || this.created.has(shown.id);
    const [models, record] = await Promise.all([
      this.models,
      exists ? this.fetchRecord(shown.id) : Promise.resolve(null),
    ]);
    if (shown !== this.shown) return;
    this.record = record;
    this.fill(models);
    this.setReady();
  }

  async loadModels() {
    try {
      return offeredModels((await this.api.call("chat/models", {}, TIMEOUT_MS)).body);
    } catch {
      this.models = null; // asked again with the next chat shown
      return null;
    }
  }

  /**
   * @param {string} id
   * @returns {Promise<Record | null>} null when the chat does not exist (yet) or cannot be read
   */
  async fetchRecord(id) {
    try {
      const { body } = await this.api.call(this.url(id), {}, TIMEOUT_MS);
      return isRecord(body) ? body : null;
    } catch {
      return null;
    }
  }

  /** @param {string} id */
  url(id) {
    return `chat/conversations/${encodeURIComponent(id)}`;
  }

  /**
   * The picker: every model offered, the chat's own selected (the default for null). Hidden
   * when there is nothing to choose: one model, or none known.
   * @param {{ default: string, ids: string[] } | null} models
   */
  fill(models) {
    this.defaultModel = models?.default ?? null;
    const chosen = this.record ? this.record.model : this.pendingModel;
    const current = chosen ?? models?.default ?? "";
    const ids = models ? [...models.ids] : [];
    // A model no longer offered is still the chat's: shown as it is.
    if (current && !ids.includes(current)) ids.push(current);
    this.select.replaceChildren(
      ...ids.map((id) => {
        const text = id === models?.default ? `${id} (default)` : id;
        const option = element("option", undefined, text);
        option.value = id;
        return option;
      }),
    );
    this.select.value = current;
    this.field.hidden = ids.length < 2;
  }

  // The other tools need a chat the service has.
  setReady() {
    for (const listener of this.listeners) listener(this.record !== null);
  }

  /**
   * The model to name in a message: the one chosen while the chat does not exist yet.
   * @returns {string | null}
   */
  messageModel() {
    return this.record === null ? this.pendingModel : null;
  }

  /**
   * An exchange was stored in `id`: a chat that did not exist does now. Its record is read, and
   * the model chosen meanwhile is made its own.
   * @param {string} id
   */
  async stored(id) {
    const shown = this.shown;
    if (shown === null || shown.id !== id || this.record !== null) return;
    const record = await this.fetchRecord(id);
    if (shown !== this.shown || record === null || this.record !== null) return;
    this.record = record;
    const pending = this.pendingModel;
    this.pendingModel = null;
    if (pending !== null && pending !== (record.model ?? this.defaultModel)) {
      await this.changeModel(pending);
    }
    this.setReady();
  }

  /** @param {string} model the option chosen */
  async choose(model) {
    // The default is the deployment's: null, so the chat follows it should it change.
    const value = model === this.defaultModel ? null : model;
    if (this.record === null) {
      this.pendingModel = value;
      this.announce(`Model ${model} for this chat`);
      return;
    }
    await this.changeModel(value);
  }

  /** @param {string | null} model */
  async changeModel(model) {
    this.select.disabled = true;
    try {
      await this.patch({ model });
      this.tell("");
      this.announce(`Model ${this.select.value} for this chat`);
    } catch (error) {
      const message = error instanceof ApiError ? error.message : String(error);
      this.tell(`Couldn't change the model. ${message}`);
    } finally {
      this.select.disabled = false;
      this.select.value = this.record?.model ?? this.defaultModel ?? this.select.value;
    }
  }

  /**
   * Changes the chat shown; throws an ApiError the caller shows.
   * @param {Change} change
   * @returns {Promise<Record>}
   */
  async patch(change) {
    const shown = this.shown;
    if (shown === null || this.record === null) {
      throw new ApiError("This chat has no messages yet.");
    }
    const { body } = await this.api.call(
      this.url(shown.id),
      {
        method: "PATCH",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(change),
      },
      TIMEOUT_MS,
    );
    if (!isRecord(body)) throw new ApiError("The service answered in an unknown format.");
    if (shown === this.shown) this.record = body;
    return body;
  }

  /** @param {string} text "" clears it */
  tell(text) {
    this.status.textContent = text;
    this.status.hidden = !text;
  }
}
