// The pure readings of the service's answers (protocol.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  cutTurn,
  errorMessage,
  exchangeId,
  generationOf,
  generationShown,
  idOf,
  idOfItem,
  isExchangeList,
  isLater,
  nextTarget,
  replayStart,
  traceIdOf,
  turnOf,
} from "../protocol.js";

const BASE = "http://chat.test/chat/history?conversation_id=default&limit=50";

test("exchange ids are t and a turn of up to 9 digits, canonical", () => {
  assert.equal(exchangeId("t42"), "t42");
  assert.equal(exchangeId("t0042"), "t42");
  assert.equal(exchangeId("t0"), "t0");
  assert.equal(exchangeId("t999999999"), "t999999999");
  for (const bad of ["", "t", "T4", "t-1", "t1.", "t1e3", " t1", "t1234567890", null, 7]) {
    assert.equal(exchangeId(bad), null, String(bad));
  }
});

test("once the conversation was cut, ids carry a generation after a dot, canonical", () => {
  assert.equal(exchangeId("t3.1"), "t3.1");
  assert.equal(exchangeId("t0003.0002"), "t3.2", "numbers, not text");
  assert.equal(exchangeId("t3.0"), "t3", "generation 0 is the id without one");
  assert.equal(exchangeId("t999999999.999999999"), "t999999999.999999999");
  for (const bad of ["t3.", "t.1", "t3.1.2", "t3.-1", "t3.1a", "t3,1", "t3.1234567890", "3.1"]) {
    assert.equal(exchangeId(bad), null, bad);
  }
  assert.equal(turnOf("t3.2"), 3);
  assert.equal(generationOf("t3.2"), 2);
  assert.equal(turnOf("t12"), 12);
  assert.equal(generationOf("t12"), 0);
  assert.equal(idOf(4), "t4");
  assert.equal(idOf(4, 0), "t4");
  assert.equal(idOf(4, 7), "t4.7");
});

test("a history item's id is its id, else its turn's", () => {
  assert.equal(idOfItem({ user: "a", AI: "b", id: "t5.2", turn: 5 }), "t5.2");
  assert.equal(idOfItem({ user: "a", AI: "b", id: "t5.0", turn: 5 }), "t5");
  assert.equal(idOfItem({ user: "a", AI: "b", turn: 5 }), "t5", "a service without ids");
  assert.equal(idOfItem({ user: "a", AI: "b", id: "bad", turn: 5 }), "t5");
  for (const turn of [undefined, "5", 1.5, -1, null]) {
    assert.equal(idOfItem({ user: "a", AI: "b", turn }), null, String(turn));
  }
});

test("an earlier version's bare-number ids are no ids", () => {
  for (const earlier of ["42", "0", "999999999999999999"]) {
    assert.equal(exchangeId(earlier), null, earlier);
  }
});

test("ids compare by turn", () => {
  assert.ok(isLater("t10", "t9"), "as numbers, not as text");
  assert.ok(!isLater("t9", "t10"));
  assert.ok(!isLater("t5", "t5"));
  assert.ok(isLater("t1", "t0"));
  assert.ok(isLater("t10.1", "t9.3"), "by turn, whatever the generations");
  assert.ok(isLater("t10", "t9.3"));
  assert.ok(!isLater("t9.3", "t10"));
});

test("ids of one turn and different generations are different exchanges, neither later", () => {
  assert.notEqual(exchangeId("t5.1"), exchangeId("t5"));
  assert.notEqual(exchangeId("t5.1"), exchangeId("t5.2"));
  assert.ok(!isLater("t5.2", "t5.1"));
  assert.ok(!isLater("t5.1", "t5.2"));
});

test("the generation shown is the highest of the history's ids", () => {
  assert.equal(generationShown([]), 0);
  assert.equal(generationShown([{ user: "a", AI: "b", turn: 1 }]), 0, "no ids: never cut");
  const items = [
    { user: "a", AI: "b", id: "t1", turn: 1 },
    { user: "a", AI: "b", id: "t2.3", turn: 2 },
    { user: "a", AI: "b", id: "t3.2", turn: 3 },
  ];
  assert.equal(generationShown(items), 3);
});

test("a cut event names the turn it erases from, a whole number from 1", () => {
  assert.equal(cutTurn({ turn: 3 }), 3);
  assert.equal(cutTurn({ turn: 1 }), 1);
  for (const bad of [{ turn: 0 }, { turn: -2 }, { turn: 1.5 }, { turn: "3" }, {}, null, 3, []]) {
    assert.equal(cutTurn(bad), null, JSON.stringify(bad));
  }
});

test("a history is a list of exchanges with a user and an AI text", () => {
  assert.ok(isExchangeList([]));
  assert.ok(isExchangeList([{ user: "a", AI: "b", extra: 1 }]));
  assert.ok(!isExchangeList([{ user: "a" }]));
  assert.ok(!isExchangeList([null]));
  assert.ok(!isExchangeList({ user: "a", AI: "b" }));
});

test("the next page is the Link header's rel=next, resolved against the answer's URL", () => {
  const link = '<?conversation_id=default&before=t41>; rel="next"';
  assert.equal(nextTarget(link, BASE)?.href, "http://chat.test/chat/history?conversation_id=default&before=t41");
  const several = '</chat/a>; rel="prev", </chat/b>; title="x"; rel=next';
  assert.equal(nextTarget(several, BASE)?.pathname, "/chat/b");
  assert.equal(nextTarget('</chat/a>; rel="prev"', BASE), null);
  assert.equal(nextTarget(null, BASE), null);
});

test("the live stream replays from just before the oldest exchange shown", () => {
  assert.equal(replayStart(null, BASE), "t0", "the whole conversation is shown");
  assert.equal(replayStart('<?before=t41>; rel="next"', BASE), "t40");
  assert.equal(replayStart('<?before=t1>; rel="next"', BASE), "t0");
  assert.equal(replayStart('<?before=t0>; rel="next"', BASE), null);
  assert.equal(replayStart('<?after=t3>; rel="next"', BASE), null, "no usable cursor: now");
  assert.equal(replayStart('<?before=41>; rel="next"', BASE), null, "an earlier version's: now");
});

test("the live stream resumes knowing the generation of the history shown", () => {
  assert.equal(replayStart(null, BASE, 0), "t0", "never cut: the id as before");
  assert.equal(replayStart(null, BASE, 2), "t0.2");
  assert.equal(replayStart('<?before=t41.2>; rel="next"', BASE, 3), "t40.3", "the page's own");
  assert.equal(replayStart('<?before=t41.2>; rel="next"', BASE, 0), "t40");
  assert.equal(replayStart('<?before=t1.4>; rel="next"', BASE, 4), "t0.4");
  assert.equal(replayStart('<?before=t0.4>; rel="next"', BASE, 4), null);
  assert.equal(replayStart('<?before=t4.>; rel="next"', BASE, 4), null, "no usable cursor");
});

test("a trace id comes from a well-formed, non-zero traceresponse", () => {
  const id = "4bf92f3577b34da6a3ce929d0e0e4736";
  assert.equal(traceIdOf(`00-${id}-00f067aa0ba902b7-01`), id);
  assert.equal(traceIdOf(` 00-${id}-00f067aa0ba902b7-01 `), id);
  assert.equal(traceIdOf(`00-${"0".repeat(32)}-00f067aa0ba902b7-01`), null);
  assert.equal(traceIdOf(`00-${id.toUpperCase()}-00f067aa0ba902b7-01`), null);
  assert.equal(traceIdOf(null), null);
});

test("an error answer says the service's message, else its status", () => {
  const response = { status: 503, statusText: "Service Unavailable" };
  assert.equal(errorMessage(response, { message: "Busy." }), "Busy.");
  assert.equal(
    errorMessage(response, { message: "  " }),
    "The service answered with an error (HTTP 503 Service Unavailable).",
  );
  assert.equal(
    errorMessage({ status: 500, statusText: "" }, null),
    "The service answered with an error (HTTP 500).",
  );
});
