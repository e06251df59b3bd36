// Written by stamp.mjs (npm run stamp), not by hand: lets the type check (jsconfig.json)
// resolve the versioned import specifiers of the page's modules to the modules themselves.
declare module "./api.js?v=*" {
  export * from "#page/api.js";
}
declare module "./app.js?v=*" {
  export * from "#page/app.js";
}
declare module "./chat-groups.js?v=*" {
  export * from "#page/chat-groups.js";
}
declare module "./chat-settings.js?v=*" {
  export * from "#page/chat-settings.js";
}
declare module "./chat-tools.js?v=*" {
  export * from "#page/chat-tools.js";
}
declare module "./code-blocks.js?v=*" {
  export * from "#page/code-blocks.js";
}
declare module "./composer.js?v=*" {
  export * from "#page/composer.js";
}
declare module "./config.js?v=*" {
  export * from "#page/config.js";
}
declare module "./connection.js?v=*" {
  export * from "#page/connection.js";
}
declare module "./conversation-item.js?v=*" {
  export * from "#page/conversation-item.js";
}
declare module "./conversations.js?v=*" {
  export * from "#page/conversations.js";
}
declare module "./copy-button.js?v=*" {
  export * from "#page/copy-button.js";
}
declare module "./credentials.js?v=*" {
  export * from "#page/credentials.js";
}
declare module "./date-groups.js?v=*" {
  export * from "#page/date-groups.js";
}
declare module "./delete-dialog.js?v=*" {
  export * from "#page/delete-dialog.js";
}
declare module "./disposition.js?v=*" {
  export * from "#page/disposition.js";
}
declare module "./docs.js?v=*" {
  export * from "#page/docs.js";
}
declare module "./dom.js?v=*" {
  export * from "#page/dom.js";
}
declare module "./draft.js?v=*" {
  export * from "#page/draft.js";
}
declare module "./drawer.js?v=*" {
  export * from "#page/drawer.js";
}
declare module "./event-stream.js?v=*" {
  export * from "#page/event-stream.js";
}
declare module "./export-menu.js?v=*" {
  export * from "#page/export-menu.js";
}
declare module "./follow.js?v=*" {
  export * from "#page/follow.js";
}
declare module "./history.js?v=*" {
  export * from "#page/history.js";
}
declare module "./instructions-dialog.js?v=*" {
  export * from "#page/instructions-dialog.js";
}
declare module "./key-dialog.js?v=*" {
  export * from "#page/key-dialog.js";
}
declare module "./list-live.js?v=*" {
  export * from "#page/list-live.js";
}
declare module "./live.js?v=*" {
  export * from "#page/live.js";
}
declare module "./markdown.js?v=*" {
  export * from "#page/markdown.js";
}
declare module "./message-stamp.js?v=*" {
  export * from "#page/message-stamp.js";
}
declare module "./messages.js?v=*" {
  export * from "#page/messages.js";
}
declare module "./oidc.js?v=*" {
  export * from "#page/oidc.js";
}
declare module "./protocol.js?v=*" {
  export * from "#page/protocol.js";
}
declare module "./reconcile.js?v=*" {
  export * from "#page/reconcile.js";
}
declare module "./rename.js?v=*" {
  export * from "#page/rename.js";
}
declare module "./reply.js?v=*" {
  export * from "#page/reply.js";
}
declare module "./revise.js?v=*" {
  export * from "#page/revise.js";
}
declare module "./routing.js?v=*" {
  export * from "#page/routing.js";
}
declare module "./search-results.js?v=*" {
  export * from "#page/search-results.js";
}
declare module "./sidebar-search.js?v=*" {
  export * from "#page/sidebar-search.js";
}
declare module "./sidebar.js?v=*" {
  export * from "#page/sidebar.js";
}
declare module "./signin.js?v=*" {
  export * from "#page/signin.js";
}
declare module "./sse.js?v=*" {
  export * from "#page/sse.js";
}
declare module "./stamps.js?v=*" {
  export * from "#page/stamps.js";
}
declare module "./tab-storage.js?v=*" {
  export * from "#page/tab-storage.js";
}
