// @ts-check
// The open chat's toolbar, put together: the model picker and the chat's record
// (chat-settings.js), its instructions (instructions-dialog.js), its export (export-menu.js), and
// the stamps of streamed replies (message-stamp.js). app.js talks to this one object only.
import { ChatSettings } from "./chat-settings.js?v=f0bf4a01ab";
import { ExportMenu } from "./export-menu.js?v=e8c428c249";
import { InstructionsDialog } from "./instructions-dialog.js?v=298cc1eba7";
import { ReplyStamps } from "./message-stamp.js?v=8f8a8af74a";

/** @typedef {import("#page/api.js").Api} Api */
/** @typedef {import("#page/history.js").Shown} Shown */

export class ChatTools {
  /** @param {{ api: Api, announce: (text: string) => void }} parts */
  constructor({ api, announce }) {
    this.settings = new ChatSettings({ api, announce });
    this.instructions = new InstructionsDialog({ settings: this.settings, announce });
    this.exportMenu = new ExportMenu({ settings: this.settings, announce });
    this.stamps = new ReplyStamps(api);
  }

  /** @param {Shown} shown another chat is shown: nothing is known of it yet */
  show(shown) {
    this.settings.show(shown);
  }

  /**
   * @param {Shown} shown its history is there
   * @param {boolean} hasMessages
   */
  loaded(shown, hasMessages) {
    return this.settings.loaded(shown, hasMessages);
  }

  /** @param {string} id the page has just created this chat */
  created(id) {
    this.settings.created.add(id);
  }

  /** @param {string} id an exchange is stored in this chat */
  stored(id) {
    this.settings.stored(id);
  }

  // What the composer asks of the tools: the model a message names, and a reply stored.
  composerParts() {
    const settings = this.settings;
    const stamps = this.stamps;
    return {
      messageModel: () => settings.messageModel(),
      /**
       * @param {string} conversationId
       * @param {string | null} id
       * @param {HTMLElement} userItem
       * @param {HTMLElement} aiItem
       */
      onReplied: (conversationId, id, userItem, aiItem) =>
        stamps.stored(conversationId, id, userItem, aiItem),
    };
  }
}
