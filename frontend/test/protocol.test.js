// The pure readings of the service's answers (protocol.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  errorMessage,
  exchangeId,
  isExchangeList,
  isLater,
  nextTarget,
  replayStart,
  traceIdOf,
} from "../protocol.js";

const BASE = "http://chat.test/chat/history?conversation_id=default&limit=50";

test("exchange ids are t and a turn of up to 9 digits, canonical", () => {
  assert.equal(exchangeId("t42"), "t42");
  assert.equal(exchangeId("t0042"), "t42");
  assert.equal(exchangeId("t0"), "t0");
  assert.equal(exchangeId("t999999999"), "t999999999");
  for (const bad of ["", "t", "T4", "t-1", "t1.5", "t1e3", " t1", "t1234567890", null, 7]) {
    assert.equal(exchangeId(bad), null, String(bad));
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
