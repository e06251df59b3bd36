// The sidebar's conversations as data (conversations.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  byActivity,
  goneIds,
  isConversation,
  listChange,
  titleOf,
  touchedAt,
} from "../conversations.js";

const at = (id, updated, title = "t") => ({ id, title, updated_at: updated });

test("a conversation has an id, an optional title and an update time", () => {
  assert.ok(isConversation({ id: "a", title: null, updated_at: "2024-01-01T00:00:00Z" }));
  assert.ok(isConversation({ id: "a", updated_at: "2024-01-01T00:00:00Z" }));
  assert.ok(!isConversation({ id: "a", title: 5, updated_at: "x" }));
  assert.ok(!isConversation({ id: 1, updated_at: "x" }));
  assert.ok(!isConversation(null));
});

test("an empty or missing title shows as New chat", () => {
  assert.equal(titleOf({ id: "a", title: "Trip", updated_at: "" }), "Trip");
  assert.equal(titleOf({ id: "a", title: "  ", updated_at: "" }), "New chat");
  assert.equal(titleOf({ id: "a", title: null, updated_at: "" }), "New chat");
  assert.equal(titleOf(undefined), "New chat");
});

test("newest activity first; unreadable times last", () => {
  const list = [at("old", "2024-01-01T00:00:00Z"), at("bad", "?"), at("new", "2024-02-01T00:00:00Z")];
  assert.deepEqual(
    list.sort(byActivity).map((c) => c.id),
    ["new", "old", "bad"],
  );
});

test("a touched chat moves to now, or after the newest listed", () => {
  const now = Date.parse("2024-03-01T00:00:00Z");
  assert.equal(touchedAt([at("a", "2024-01-01T00:00:00Z")], now), "2024-03-01T00:00:00.000Z");
  const ahead = at("b", "2024-05-01T00:00:00.000Z"); // another clock
  assert.equal(touchedAt([ahead], now), "2024-05-01T00:00:00.001Z");
});

test("a first page without more: every chat it lacks is gone, but the one shown", () => {
  const listed = [at("a", "2024-01-03"), at("b", "2024-01-02"), at("shown", "2024-01-01")];
  assert.deepEqual(goneIds(listed, [at("a", "2024-01-03")], false, "shown"), ["b"]);
});

test("a first page with more: only chats at least as new as its last are known gone", () => {
  const listed = [at("a", "2024-01-05"), at("b", "2024-01-04"), at("older", "2024-01-01")];
  const page = [at("a", "2024-01-05"), at("c", "2024-01-03")];
  assert.deepEqual(goneIds(listed, page, true, null), ["b"]);
});

test("the list's stream: ready, a conversation as it stands, a deletion; nothing else", () => {
  const listed = { id: "a", title: "Plans", updated_at: "2026-01-01T00:00:00Z", exchanges: 2 };
  assert.deepEqual(listChange({ type: "ready", data: "{}" }), { kind: "ready" });
  assert.deepEqual(listChange({ type: "conversation", data: JSON.stringify(listed) }), {
    kind: "conversation",
    conversation: listed,
  });
  assert.deepEqual(listChange({ type: "deleted", data: '{"id":"a"}' }), {
    kind: "deleted",
    id: "a",
  });
  assert.equal(listChange({ type: "conversation", data: '{"id":"a"}' }), null);
  assert.equal(listChange({ type: "deleted", data: '{"id":5}' }), null);
  assert.equal(listChange({ type: "deleted", data: "null" }), null);
  assert.equal(listChange({ type: "conversation", data: "not json" }), null);
  assert.equal(listChange({ type: "renamed", data: JSON.stringify(listed) }), null);
});
