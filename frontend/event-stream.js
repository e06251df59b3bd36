// @ts-check
// A server-sent event stream of the service, kept open: the conversation shown (live.js) and the
// list of chats (list-live.js) each follow one.
//
// It is read with fetch() (sse.js), not EventSource, which cannot send the reader's credential: a
// header, never a URL parameter (credentials.js). Like EventSource, it is opened again when it
// ends or breaks (NGINX's 502 while the service restarts), after these delays, once it has worked:
// a service that never streamed (an older one, without the route) is left alone, and so is a
// reader the service refused (401: the page asks them to sign in, and starts again once they have).
import { authorizedFetch } from "./credentials.js?v=b03bf63721";
import { readEvents } from "./sse.js?v=27108deb90";

/** @typedef {import("#page/sse.js").ServerSentEvent} ServerSentEvent */

const RETRY_DELAYS_MS = [1_000, 2_000, 4_000, 8_000, 15_000, 30_000];

export class EventStream {
  /**
   * @param {string} name what it follows, for the console ("Live updates")
   * @param {() => string} url where to open it, asked each time (a stream may resume)
   * @param {(event: ServerSentEvent) => void} onEvent
   */
  constructor(name, url, onEvent) {
    this.name = name;
    this.url = url;
    this.onEvent = onEvent;
    /** @type {AbortController | null} ends the stream */
    this.source = null;
    this.opened = false; // the stream worked at least once (the service has it)
    this.retry = 0;
    this.retryTimer = 0;
  }

  open() {
    if (this.source) return;
    const controller = new AbortController();
    this.source = controller;
    this.stream(controller.signal).catch((error) => {
      if (!controller.signal.aborted) console.error(`${this.name} stopped:`, error);
    });
  }

  close() {
    this.source?.abort();
    this.source = null;
    clearTimeout(this.retryTimer);
  }

  /**
   * Reads the stream until it ends, then opens it again after a delay, until `signal` aborts.
   * @param {AbortSignal} signal
   */
  async stream(signal) {
    for (;;) {
      try {
        const response = await authorizedFetch(this.url(), {
          headers: { Accept: "text/event-stream" },
          signal,
        });
        const type = response.headers.get("Content-Type") ?? "";
        const streaming = response.ok && type.startsWith("text/event-stream");
        if (!streaming) {
          await response.body?.cancel();
          if (!this.opened || response.status === 401) return;
        } else {
          this.opened = true;
          this.retry = 0;
          for await (const event of readEvents(response)) {
            if (signal.aborted) return; // closed while a read held several events
            this.onEvent(event);
          }
        }
      } catch {
        if (signal.aborted) return;
        if (!this.opened) return; // never streamed: nothing to resume
      }
      if (signal.aborted) return;
      await this.pause(signal);
      if (signal.aborted) return;
    }
  }

  /**
   * The next delay before opening the stream again (cut short by `signal`).
   * @param {AbortSignal} signal
   */
  pause(signal) {
    const delays = RETRY_DELAYS_MS;
    const delay = delays[Math.min(this.retry, delays.length - 1)];
    this.retry += 1;
    return new Promise((resolve) => {
      this.retryTimer = setTimeout(resolve, delay);
      signal.addEventListener("abort", () => resolve(undefined), { once: true });
    });
  }
}
