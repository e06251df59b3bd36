// @ts-check
// The credential every request to the service carries: nothing (a service that needs none),
// an API key, or the signed-in user's access token. signin.js decides which and installs it
// here; api.js, reply.js and live.js send their requests through authorizedFetch, so none of
// them knows how the page signed in. The token goes in the Authorization header only: never
// in a URL, where logs and the browser's history would keep it.

/**
 * @typedef {object} Credential
 * @property {() => Promise<string | null>} token the bearer token to send, or null for none
 * @property {() => Promise<boolean>} renew after a 401: try for a fresh token; true when there
 *   is one worth sending the request again with
 * @property {(message: string) => void} refused the service refused it (and renewal did not
 *   help): the page asks the reader to sign in; `message` is the service's reason
 */

/** @type {Credential | null} */
let current = null;

/**
 * What requests carry from now on (null: nothing).
 * @param {Credential | null} credential
 */
export function useCredential(credential) {
  current = credential;
}

/**
 * fetch(), with the credential in use. A 401 is given one renewal and one retry (the service
 * refuses a request before acting on it, so sending it again is safe); a 401 after that tells
 * the credential, and is returned as it is for the caller to show.
 * @param {string} url
 * @param {RequestInit} [init]
 * @returns {Promise<Response>}
 */
export async function authorizedFetch(url, init = {}) {
  const credential = current;
  if (credential === null) return fetch(url, init);
  let response = await fetch(url, await withToken(init, credential));
  if (response.status !== 401) return response;
  if (await credential.renew()) {
    response = await fetch(url, await withToken(init, credential));
    if (response.status !== 401) return response;
  }
  credential.refused(await refusalMessage(response));
  return response;
}

/**
 * @param {RequestInit} init
 * @param {Credential} credential
 */
async function withToken(init, credential) {
  const token = await credential.token();
  const headers = new Headers(init.headers);
  if (token) headers.set("Authorization", `Bearer ${token}`);
  else headers.delete("Authorization");
  return { ...init, headers };
}

/**
 * The service's reason, read from a copy so the caller can still read the body.
 * @param {Response} response
 */
async function refusalMessage(response) {
  try {
    const body = await response.clone().json();
    if (typeof body?.message === "string") return body.message;
  } catch {
    // not the service's JSON: the generic reason below
  }
  return "Sign in to go on.";
}
