// The event stream parser (sse.js) on responses cut into chunks the way a network may cut them.
import assert from "node:assert/strict";
import { test } from "node:test";

import { readEvents } from "../sse.js";

/** A streamed response whose body arrives in these chunks. */
function streamOf(...chunks) {
  const encoder = new TextEncoder();
  const body = new ReadableStream({
    start(controller) {
      for (const chunk of chunks) controller.enqueue(encoder.encode(chunk));
      controller.close();
    },
  });
  return new Response(body, { headers: { "Content-Type": "text/event-stream" } });
}

async function eventsOf(...chunks) {
  const events = [];
  for await (const event of readEvents(streamOf(...chunks))) events.push(event);
  return events;
}

test("an event's type, data and the id in force", async () => {
  assert.deepEqual(await eventsOf('event: delta\nid: 7\ndata: {"text":"a"}\n\n'), [
    { type: "delta", data: '{"text":"a"}', id: "7" },
  ]);
});

test("an event without a type is a message", async () => {
  assert.deepEqual(await eventsOf("data: hello\n\n"), [{ type: "message", data: "hello", id: "" }]);
});

test("data lines are joined with newlines, and one space after the colon is dropped", async () => {
  const [event] = await eventsOf("data: one\ndata:two\ndata:  three\n\n");
  assert.equal(event.data, "one\ntwo\n three");
});

test("CRLF, LF and CR all end lines", async () => {
  const events = await eventsOf("data: a\r\n\r\ndata: b\n\ndata: c\r\rdata: d\n\n");
  assert.deepEqual(
    events.map((event) => event.data),
    ["a", "b", "c", "d"],
  );
});

test("a CRLF split between two chunks is one line end", async () => {
  const events = await eventsOf("data: a\r", "\n\r", "\ndata: b\n\n");
  assert.deepEqual(
    events.map((event) => event.data),
    ["a", "b"],
  );
});

test("a line split between chunks is read whole", async () => {
  const events = await eventsOf("event: del", "ta\ndata: {\"te", 'xt":"x"}\n', "\n");
  assert.deepEqual(events, [{ type: "delta", data: '{"text":"x"}', id: "" }]);
});

test("comments (keep-alives) are skipped", async () => {
  const events = await eventsOf(": keep-alive\n\n", "data: a\n: in between\n\n");
  assert.deepEqual(
    events.map((event) => event.data),
    ["a"],
  );
});

test("a blank line without data dispatches nothing, and resets the type", async () => {
  const events = await eventsOf("event: done\n\ndata: x\n\n");
  assert.deepEqual(events, [{ type: "message", data: "x", id: "" }]);
});

test("the last id stays in force for later events; one with NUL is ignored", async () => {
  const events = await eventsOf("id: 1\ndata: a\n\ndata: b\n\nid: 2\0\ndata: c\n\nid: 3\ndata: d\n\n");
  assert.deepEqual(
    events.map((event) => event.id),
    ["1", "1", "1", "3"],
  );
});

test("a field without a colon has an empty value", async () => {
  const [event] = await eventsOf("data\ndata\n\n");
  assert.equal(event.data, "\n");
});

test("an event the stream ends before its blank line is not dispatched", async () => {
  assert.deepEqual(await eventsOf("data: whole\n\ndata: cut"), [
    { type: "message", data: "whole", id: "" },
  ]);
});

test("a body that errors (Stop aborts the fetch) rejects the reading", async () => {
  const body = new ReadableStream({
    start(controller) {
      controller.enqueue(new TextEncoder().encode("data: a\n\n"));
      controller.error(new DOMException("stopped", "AbortError"));
    },
  });
  await assert.rejects(
    async () => {
      for await (const event of readEvents(new Response(body))) assert.ok(event);
    },
    { name: "AbortError" },
  );
});
