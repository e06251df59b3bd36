// Which conversation a URL shows, and back (routing.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { conversationIn, urlFor } from "../routing.js";

test("no ?c= is the service's default conversation", () => {
  assert.deepEqual(conversationIn(""), { id: "default", valid: true });
  assert.deepEqual(conversationIn("?c=default"), { id: "default", valid: true });
});

test("?c= names a conversation", () => {
  assert.deepEqual(conversationIn("?c=abc-1.2:x_y"), { id: "abc-1.2:x_y", valid: true });
  assert.deepEqual(conversationIn(`?c=${"a".repeat(128)}`), { id: "a".repeat(128), valid: true });
});

test("an id the service would refuse falls back to the default, marked invalid", () => {
  for (const search of ["?c=", "?c=-a", "?c=a%20b", `?c=${"a".repeat(129)}`, "?c=%2Fetc"]) {
    assert.deepEqual(conversationIn(search), { id: "default", valid: false }, search);
  }
});

test("the URL of a conversation, and of the default", () => {
  assert.equal(urlFor("default", "/"), "/");
  assert.equal(urlFor("abc", "/frontend.html"), "/frontend.html?c=abc");
  assert.equal(urlFor("a:b", "/"), "/?c=a%3Ab");
  assert.deepEqual(conversationIn(new URL(urlFor("a:b", "/"), "http://x").search).id, "a:b");
});
