// @ts-check
// A reply from the service, streamed: the POST that asks for it and the reading of its events
// (delta pieces, then done with the whole reply and the exchange's id, or error). No DOM here:
// composer.js shows what this reads.
import { ApiError, readJson } from "./api.js?v=fa6542a0b2";
import { authorizedFetch } from "./credentials.js?v=b03bf63721";
import { exchangeId, parseJson } from "./protocol.js?v=bfc17f51c7";
import { readEvents } from "./sse.js?v=27108deb90";

// How long the page waits for a reply to start. A real model can be slow to begin; NGINX's
// proxy_read_timeout is the same, so the page never gives up on a reply the proxy still waits
// for. Once the reply streams there is no limit: the service's keep-alive comments and the Stop
// button take over.
const SEND_TIMEOUT_MS = 120_000;

/**
 * POSTs the message asking for a stream; resolves once the reply has started. Aborting
 * `controller` (Stop) rejects with its AbortError; anything else that fails is an ApiError.
 * @param {string} text
 * @param {string} conversationId
 * @param {AbortController} controller
 * @param {{ model?: string | null, replaceTurn?: number | null }} [options] model: for this
 *   message only (a chat not created yet: chat-settings.js); replaceTurn: the exchange this
 *   message is sent in place of (Regenerate, Edit), erased with every later one once the reply
 *   is stored
 */
export async function startReply(
  text,
  conversationId,
  controller,
  { model = null, replaceTurn = null } = {},
) {
  const timer = setTimeout(
    () => controller.abort(new DOMException("", "TimeoutError")),
    SEND_TIMEOUT_MS,
  );
  let response;
  try {
    response = await authorizedFetch("chat/message", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "text/event-stream" },
      body: JSON.stringify({
        message: text,
        conversation_id: conversationId,
        ...(model === null ? {} : { model }),
        ...(replaceTurn === null ? {} : { replace_turn: replaceTurn }),
      }),
      signal: controller.signal,
    });
  } catch (error) {
    throw requestError(error, controller);
  } finally {
    clearTimeout(timer);
  }
  if (!response.ok) throw await ApiError.of(response);
  return response;
}

/**
 * @param {unknown} error what fetch threw
 * @param {AbortController} controller
 */
function requestError(error, controller) {
  if (controller.signal.reason?.name === "TimeoutError") return ApiError.timedOut();
  if (error instanceof Error && error.name === "AbortError") return error; // Stop
  return ApiError.unreachable();
}

/**
 * The reply's events: each delta to `showPiece`. Resolves to the whole reply, once stored, and
 * the exchange's id (null when the service sent none). Rejects with an ApiError (its `cutOff`
 * set when the stream broke off or ended without its done event), or an AbortError (Stop).
 * @param {Response} response
 * @param {(piece: string) => void} showPiece
 * @returns {Promise<{ text: string, id: string | null }>}
 */
export async function readReply(response, showPiece) {
  if (!response.headers.get("Content-Type")?.startsWith("text/event-stream")) {
    // A whole answer instead of a stream (the contract's JSON): take it as one piece.
    const body = /** @type {{ status?: unknown, response?: unknown } | null} */ (
      await readJson(response)
    );
    if (body?.status !== "Success" || typeof body.response !== "string") {
      throw new ApiError("The service sent a reply in an unknown format.");
    }
    return { text: body.response, id: null };
  }
  try {
    for await (const event of readEvents(response)) {
      const data = /** @type {Record<string, unknown> | null} */ (parseJson(event.data));
      if (data === null) throw cutOff(); // not the service's event: the stream is broken
      if (event.type === "delta" && typeof data.text === "string") {
        showPiece(data.text);
      } else if (event.type === "done" && typeof data.response === "string") {
        return { text: data.response, id: exchangeId(event.id) };
      } else if (event.type === "error") {
        const message = typeof data.message === "string" && data.message;
        throw new ApiError(message || "The reply failed.");
      }
    }
  } catch (error) {
    if (error instanceof ApiError || (error instanceof Error && error.name === "AbortError")) {
      throw error;
    }
    throw cutOff(); // the connection broke mid-stream
  }
  throw cutOff(); // the stream ended without its done event
}

function cutOff() {
  return new ApiError("The reply was cut off.", { unreachable: true, cutOff: true });
}
