// @ts-check
// Server-sent events from a fetch() response: the service streams a reply to a POST, which
// EventSource (GET only) cannot send. The parsing follows the HTML standard's event stream
// rules: lines end with CRLF, LF or CR; "event:" names the event, "data:" lines are joined
// with "\n", "id:" sets the last event id (kept for the events after it, as EventSource's
// lastEventId is), a line starting with ":" is a comment (keep-alive), a blank line ends the
// event. Each event comes out as { type, data, id }: id is "" until the stream sent one.

/** @typedef {{ type: string, data: string, id: string }} ServerSentEvent */

/**
 * Aborting the fetch (Stop) errors the body, so the pending read rejects with an AbortError.
 * @param {Response} response
 * @returns {AsyncGenerator<ServerSentEvent, void, undefined>}
 */
export async function* readEvents(response) {
  if (!response.body) return;
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  /** @type {{ type: string, data: string[] }} */
  let event = { type: "message", data: [] };
  let lastEventId = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // A CR at the very end may be the first half of a CRLF: wait for the next chunk.
      const lines = buffer.split(/\r\n|\r(?!$)|\n/);
      buffer = lines.pop() ?? "";
      for (const line of lines) {
        if (line === "") {
          if (event.data.length) {
            yield { type: event.type, data: event.data.join("\n"), id: lastEventId };
          }
          event = { type: "message", data: [] };
          continue;
        }
        if (line.startsWith(":")) continue;
        const colon = line.indexOf(":");
        const field = colon === -1 ? line : line.slice(0, colon);
        let text = colon === -1 ? "" : line.slice(colon + 1);
        if (text.startsWith(" ")) text = text.slice(1);
        if (field === "event") event.type = text;
        else if (field === "data") event.data.push(text);
        else if (field === "id" && !text.includes("\0")) lastEventId = text;
      }
    }
  } finally {
    reader.releaseLock();
  }
}
