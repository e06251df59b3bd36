// @ts-check
// Talking to the service: JSON requests with a timeout, errors the reader can be told, and the
// history's paging links, with the credential the reader signed in with (credentials.js).
// URLs are relative ("chat/history"), so the page works behind NGINX
// and from the service alike. Every answer from the service itself marks the connection online.
import { authorizedFetch } from "./credentials.js?v=b03bf63721";
import { errorMessage, nextTarget } from "./protocol.js?v=bfc17f51c7";

/** @typedef {import("#page/connection.js").Connection} Connection */

// No answer from the service itself: NGINX's answers while it is away.
const UNAVAILABLE_STATUSES = new Set([502, 503, 504]);
const UNREACHABLE = "Can't reach the chat service. Check that it is running, then retry.";

export class ApiError extends Error {
  /**
   * @param {string} message what the reader is told
   * @param {{ unreachable?: boolean, status?: number, cutOff?: boolean }} [details]
   *   unreachable: no answer from the service itself (network error, or 502/503/504 from NGINX);
   *   status: the HTTP status of an error answer; cutOff: a streamed reply that broke off
   */
  constructor(message, { unreachable = false, status = 0, cutOff = false } = {}) {
    super(message);
    this.name = "ApiError";
    this.unreachable = unreachable;
    this.status = status;
    this.cutOff = cutOff;
  }

  static timedOut() {
    return new ApiError("The service took too long to answer.");
  }

  static unreachable() {
    return new ApiError(UNREACHABLE, { unreachable: true });
  }

  /**
   * The error an answer with an error status stands for.
   * @param {Response} response
   */
  static async of(response) {
    return new ApiError(errorMessage(response, await readJson(response)), {
      unreachable: UNAVAILABLE_STATUSES.has(response.status),
      status: response.status,
    });
  }
}

/**
 * @param {Response} response
 * @returns {Promise<unknown>} the JSON body, or null for an empty or non-JSON one (the status
 *   decides what to say)
 */
export async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return null;
  }
}

export class Api {
  /** @param {Connection} connection */
  constructor(connection) {
    this.connection = connection;
  }

  /**
   * A JSON request; throws an ApiError for anything but a successful answer.
   * @param {string} url
   * @param {RequestInit} init
   * @param {number} timeoutMs
   * @returns {Promise<{ response: Response, body: unknown }>}
   */
  async call(url, init, timeoutMs) {
    let response;
    try {
      response = await authorizedFetch(url, {
        ...init,
        headers: { Accept: "application/json", ...init.headers },
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (error) {
      throw error instanceof Error && error.name === "TimeoutError"
        ? ApiError.timedOut()
        : ApiError.unreachable();
    }
    if (!response.ok) throw await ApiError.of(response);
    const body = await readJson(response);
    this.connection.set("online");
    return { response, body };
  }

  /**
   * The next page of a paged answer (its Link header), when it is on this origin, or null.
   * @param {Response} response
   * @returns {string | null}
   */
  nextLink(response) {
    const url = nextTarget(response.headers.get("Link"), response.url);
    return url && url.origin === location.origin ? url.href : null;
  }
}
