// The sidebar's search as data (search-results.js).
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import {
  indexOfTurn,
  isSearchResult,
  matchesText,
  queryOf,
  searchPath,
  searchResults,
  shortDate,
} from "../search-results.js";

const originalTz = process.env.TZ;
afterEach(() => {
  if (originalTz === undefined) delete process.env.TZ;
  else process.env.TZ = originalTz;
});

const result = {
  conversation_id: "c1",
  conversation_title: "Trip",
  turn: 3,
  created_at: "2026-12-05T10:00:00Z",
  field: "user",
  snippet: [
    { text: "…to ", match: false },
    { text: "Lisbon", match: true },
  ],
};

test("a blank field sends nothing; a query is trimmed and cut at 200 characters", () => {
  assert.equal(queryOf(""), null);
  assert.equal(queryOf("  \t\n "), null);
  assert.equal(queryOf("  lisbon trip "), "lisbon trip");
  assert.equal(queryOf("x".repeat(250)), "x".repeat(200));
  // Characters, as the service counts them, not UTF-16 units: no emoji is cut in half.
  const emoji = "😀".repeat(201);
  assert.equal([...(queryOf(emoji) ?? "")].length, 200);
  assert.equal(queryOf(emoji), "😀".repeat(200));
});

test("the query and the limit go in the query string, encoded", () => {
  assert.equal(searchPath("a&b c", 20), "chat/search?q=a%26b+c&limit=20");
});

test("an answer holds results with a title, turn, time and snippet parts", () => {
  assert.deepEqual(searchResults({ results: [result] }), [result]);
  assert.deepEqual(searchResults({ results: [] }), []);
  assert.ok(isSearchResult({ ...result, conversation_title: null }));
  assert.equal(searchResults({ results: [{ ...result, turn: "3" }] }), null);
  assert.equal(searchResults({ results: [{ ...result, turn: 1.5 }] }), null);
  assert.equal(searchResults({ results: [{ ...result, snippet: "<b>x</b>" }] }), null);
  assert.equal(searchResults({ results: [{ ...result, snippet: [{ text: "x" }] }] }), null);
  assert.equal(searchResults({ results: [{ ...result, conversation_id: 1 }] }), null);
  assert.equal(searchResults({ results: [{ ...result, conversation_title: 2 }] }), null);
  assert.equal(searchResults({ results: [{ ...result, created_at: null }] }), null);
  assert.equal(searchResults({ results: [{ ...result, field: null }] }), null);
  assert.equal(searchResults({ results: [null] }), null);
  assert.equal(searchResults({ results: {} }), null);
  assert.equal(searchResults([result]), null);
  assert.equal(searchResults(null), null);
});

test("what the reader is told of the results", () => {
  assert.equal(matchesText(0), "No chats match");
  assert.equal(matchesText(1), "1 match");
  assert.equal(matchesText(7), "7 matches");
});

test("a result's date is short, with the year only when it is another year's", () => {
  process.env.TZ = "UTC";
  const now = new Date("2026-12-05T13:00:00Z");
  assert.equal(shortDate("2026-12-05T10:00:00Z", now), "5 Dec");
  assert.equal(shortDate("2025-12-05T10:00:00Z", now), "5 Dec 2025");
  assert.equal(shortDate("nonsense", now), "");
  // The reader's day: 23:30 UTC on 31 Dec 2025 is 1 Jan 2026 in Berlin.
  process.env.TZ = "Europe/Berlin";
  assert.equal(shortDate("2025-12-31T23:30:00Z", now), "1 Jan");
});

test("a result's exchange is found on the history page that shows its turn", () => {
  // The whole conversation (after t0): turn 1 is the first exchange shown.
  assert.equal(indexOfTurn(1, "t0", 3), 0);
  assert.equal(indexOfTurn(3, "t0", 3), 2);
  assert.equal(indexOfTurn(4, "t0", 3), null);
  // The latest 50 of 80 (after t30): turn 31 is the first, turn 30 is on an earlier page.
  assert.equal(indexOfTurn(31, "t30", 50), 0);
  assert.equal(indexOfTurn(80, "t30", 50), 49);
  assert.equal(indexOfTurn(30, "t30", 50), null);
  // Where the page starts is unknown: nothing to point at.
  assert.equal(indexOfTurn(1, null, 3), null);
  assert.equal(indexOfTurn(1, "30", 3), null);
});
