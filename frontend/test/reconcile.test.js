// The reconciler (reconcile.js): which live event is the history shown, the page's own message,
// or news from elsewhere, whatever order they arrive in. Refs stand for the page's items.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Reconciler } from "../reconcile.js";

const exchange = (id, user, AI = `re: ${user}`) => ({ id, user, AI });
const shown = (user, AI = `re: ${user}`) => ({ user, AI, ref: `item ${user}` });
const mine = (user, reply) => ({ user, shown: reply, ref: `mine ${user}` });

test("the replayed history gets its ids, then what follows is new", () => {
  const live = new Reconciler();
  live.replay([shown("a"), shown("b")]);
  assert.deepEqual(live.receive(exchange("1", "a")), [{ kind: "identified", id: "1", ref: "item a" }]);
  assert.deepEqual(live.receive(exchange("2", "b")), [{ kind: "identified", id: "2", ref: "item b" }]);
  const news = exchange("3", "c");
  assert.deepEqual(live.receive(news), [{ kind: "new", exchange: news }]);
});

test("an exchange of the history deleted meanwhile is skipped in the replay", () => {
  const live = new Reconciler();
  live.replay([shown("a"), shown("b"), shown("c")]);
  assert.equal(live.receive(exchange("1", "a"))[0].ref, "item a");
  assert.deepEqual(live.receive(exchange("3", "c")), [{ kind: "identified", id: "3", ref: "item c" }]);
  // b is no longer waited for: its text again is another exchange.
  assert.equal(live.receive(exchange("4", "b"))[0].kind, "new");
});

test("two shown exchanges with the same text get their ids in order", () => {
  const live = new Reconciler();
  live.replay([{ ...shown("same"), ref: "first" }, { ...shown("same"), ref: "second" }]);
  assert.equal(live.receive(exchange("1", "same"))[0].ref, "first");
  assert.equal(live.receive(exchange("2", "same"))[0].ref, "second");
});

test("anything not in the history ends the replay", () => {
  const live = new Reconciler();
  live.replay([shown("a"), shown("b")]);
  assert.equal(live.receive(exchange("5", "elsewhere"))[0].kind, "new");
  assert.equal(live.receive(exchange("2", "b"))[0].kind, "new");
});

test("an exchange the page shows already is not shown twice", () => {
  const live = new Reconciler();
  live.replay([shown("a")]);
  live.receive(exchange("1", "a"));
  assert.deepEqual(live.receive(exchange("1", "a")), []);
  assert.equal(live.receive(exchange("2", "b"))[0].kind, "new");
  assert.deepEqual(live.receive(exchange("2", "b")), [], "sent again after a reconnect");
});

test("the page's own exchange, identified by its done event, is not shown again", () => {
  const live = new Reconciler();
  assert.deepEqual(live.own("7", mine("q", "r"), "mine q"), [
    { kind: "identified", id: "7", ref: "mine q" },
  ]);
  assert.deepEqual(live.receive(exchange("7", "q", "r")), []);
});

test("its own exchange arriving before the done event is held, then dropped", () => {
  const live = new Reconciler();
  live.startAnswer("q");
  assert.deepEqual(live.receive(exchange("7", "q", "r")), [], "held");
  live.own("7", mine("q", "r"), "mine q");
  assert.deepEqual(live.endAnswer(), []);
  assert.deepEqual(live.held, []);
});

test("the same message sent elsewhere while the page's is answered is shown after it", () => {
  const live = new Reconciler();
  live.startAnswer("hi");
  const theirs = exchange("7", "hi", "re: theirs");
  assert.deepEqual(live.receive(theirs), []);
  live.own("8", mine("hi", "re: mine"), "mine hi");
  assert.deepEqual(live.endAnswer(), [{ kind: "new", exchange: theirs }]);
});

test("other messages are not held while the page's is answered", () => {
  const live = new Reconciler();
  live.startAnswer("q");
  assert.equal(live.receive(exchange("4", "other"))[0].kind, "new");
});

test("a stopped reply is recognised by its message and what the page showed", () => {
  const live = new Reconciler();
  const own = mine("q", "The first");
  assert.deepEqual(live.own(null, own, "mine q"), []);
  // Stored with every piece the service had sent, more than reached the page.
  const stored = { ...exchange("9", "q", "The first words"), model: "m", usage: null };
  assert.deepEqual(live.receive(stored), [
    { kind: "confirmed", id: "9", own, AI: "The first words", exchange: stored },
  ]);
  assert.deepEqual(live.receive(exchange("9", "q", "The first words")), []);
});

test("a stopped reply's exchange arriving while it is still answered is confirmed after", () => {
  const live = new Reconciler();
  live.startAnswer("q");
  assert.deepEqual(live.receive(exchange("9", "q", "Partial reply")), []);
  const own = mine("q", "Partial");
  live.own(null, own, "mine q");
  assert.deepEqual(live.endAnswer(), [
    {
      kind: "confirmed",
      id: "9",
      own,
      AI: "Partial reply",
      exchange: exchange("9", "q", "Partial reply"),
    },
  ]);
});

test("an exchange whose reply does not start with what the page showed is not its own", () => {
  const live = new Reconciler();
  live.own(null, mine("q", "Mine so far"), "mine q");
  assert.equal(live.receive(exchange("3", "q", "Another reply"))[0].kind, "new");
  assert.equal(live.unconfirmed.length, 1, "still waiting for its own");
});

test("two stopped replies to the same message are confirmed one each", () => {
  const live = new Reconciler();
  const first = mine("q", "A");
  const second = mine("q", "B");
  live.own(null, first, "first");
  live.own(null, second, "second");
  assert.equal(live.receive(exchange("5", "q", "B and more"))[0].own, second);
  assert.equal(live.receive(exchange("6", "q", "A and more"))[0].own, first);
});

// Cuts (a regenerate or an edit, here or elsewhere): ids are "t<turn>.<generation>".

test("a cut forgets the exchanges from its turn on: their replacements are new", () => {
  const live = new Reconciler();
  live.replay([shown("a"), shown("b"), shown("c")]);
  live.receive(exchange("t1", "a"));
  live.receive(exchange("t2", "b"));
  live.receive(exchange("t3", "c"));
  assert.equal(live.cut(2), 0, "what goes is of generation 0");
  assert.deepEqual([...live.known], ["t1"]);
  const replacement = exchange("t2.1", "b2");
  assert.deepEqual(live.receive(replacement), [{ kind: "new", exchange: replacement }]);
  assert.equal(live.generation, 1);
  // Sent again after a reconnect, the replacement is known; so is what came before the cut.
  assert.deepEqual(live.receive(exchange("t2.1", "b2")), []);
  assert.deepEqual(live.receive(exchange("t1", "a")), []);
});

test("the page's own replacement, identified first, outlives the cut making room for it", () => {
  const live = new Reconciler();
  live.replay([shown("a"), shown("b")], 0);
  live.receive(exchange("t1", "a"));
  live.receive(exchange("t2", "b"));
  live.startAnswer("b again");
  live.own("t2.1", mine("b again", "r"), "mine");
  // Its generation is above what the stream told: it was stored after the cut, and stays.
  assert.equal(live.cut(2), 0);
  assert.ok(live.known.has("t2.1"));
  assert.deepEqual(live.endAnswer(), []);
  assert.deepEqual(live.receive(exchange("t2.1", "b again", "r")), []);
});

test("a later cut erases the page's own replacement too", () => {
  const live = new Reconciler();
  live.replay([shown("a"), shown("b"), shown("c")], 0);
  for (const [id, user] of [["t1", "a"], ["t2", "b"], ["t3", "c"]]) {
    live.receive(exchange(id, user));
  }
  live.own("t3.1", mine("c2", "r"), "mine");
  live.cut(3);
  assert.deepEqual(live.receive(exchange("t3.1", "c2", "r")), []);
  // Elsewhere, turn 2 is edited: the page's own exchange at turn 3 goes with it.
  assert.equal(live.cut(2), 1);
  assert.deepEqual([...live.known], ["t1"]);
});

test("a cut drops the events held while the page is answered from its turn on", () => {
  const live = new Reconciler();
  live.startAnswer("q");
  live.receive(exchange("t4", "q", "theirs"));
  live.receive(exchange("t2", "q", "older"));
  live.cut(3);
  assert.deepEqual(live.held.map((held) => held.id), ["t2"]);
  live.own("t3.1", mine("q", "mine"), "mine");
  assert.deepEqual(live.endAnswer(), [{ kind: "new", exchange: exchange("t2", "q", "older") }]);
});

test("a cut ends the replay: what the page shows from there on is gone", () => {
  const live = new Reconciler();
  live.replay([shown("a"), shown("b"), shown("c")], 2);
  assert.equal(live.generation, 2, "the history's generation");
  live.receive(exchange("t1.2", "a"));
  assert.equal(live.cut(2), 2);
  assert.deepEqual(live.replayed, []);
  const replacement = exchange("t2.3", "b");
  assert.deepEqual(live.receive(replacement), [{ kind: "new", exchange: replacement }]);
});
