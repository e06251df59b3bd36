// Reading a reply (reply.js): its pieces, its end, and the ways it can fail. Errors are matched
// by name: reply.js imports api.js by its versioned URL, another module instance than "../api.js".
import assert from "node:assert/strict";
import { test } from "node:test";

import { readReply } from "../reply.js";

const stream = (text) =>
  new Response(text, { headers: { "Content-Type": "text/event-stream; charset=utf-8" } });

async function read(response) {
  const pieces = [];
  const result = await readReply(response, (piece) => pieces.push(piece));
  return { pieces, ...result };
}

test("the pieces as they come, then the whole reply and the exchange's id", async () => {
  const response = stream(
    'event: delta\ndata: {"text":"Hel"}\n\n: keep-alive\n\n' +
      'event: delta\ndata: {"text":"lo"}\n\n' +
      'event: done\nid: t0012\ndata: {"status":"Success","response":"Hello"}\n\n',
  );
  assert.deepEqual(await read(response), { pieces: ["Hel", "lo"], text: "Hello", id: "t12" });
});

test("a done event without an id gives none", async () => {
  const response = stream('event: done\ndata: {"response":"Hi"}\n\n');
  assert.deepEqual(await read(response), { pieces: [], text: "Hi", id: null });
});

test("a done event with an earlier version's bare-number id gives none", async () => {
  const response = stream('event: done\nid: 12\ndata: {"response":"Hi"}\n\n');
  assert.deepEqual(await read(response), { pieces: [], text: "Hi", id: null });
});

test("an error event fails with the service's message", async () => {
  const response = stream('event: delta\ndata: {"text":"a"}\n\nevent: error\ndata: {"message":"Model down."}\n\n');
  await assert.rejects(read(response), { name: "ApiError", message: "Model down.", cutOff: false });
});

test("a stream that ends without its done event was cut off", async () => {
  const response = stream('event: delta\ndata: {"text":"a"}\n\n');
  await assert.rejects(read(response), { name: "ApiError", cutOff: true, unreachable: true });
});

test("an event that is not JSON means a broken stream", async () => {
  await assert.rejects(read(stream("event: delta\ndata: {oops\n\n")), { cutOff: true });
});

test("a JSON answer instead of a stream is the whole reply", async () => {
  const response = Response.json({ status: "Success", response: "Whole" });
  assert.deepEqual(await read(response), { pieces: [], text: "Whole", id: null });
});

test("a JSON answer of another shape is refused", async () => {
  await assert.rejects(read(Response.json({ status: "Error" })), {
    message: "The service sent a reply in an unknown format.",
    cutOff: false,
  });
});
