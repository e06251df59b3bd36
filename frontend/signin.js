// @ts-check
// Signing in from the page. chat/auth says how this deployment takes callers: nobody signs in
// (no sign-in UI at all), API keys (the "Use an API key" dialog), OpenID Connect (oidc.js), or
// both. The credential chosen goes to credentials.js for every request; the reader's name and
// Sign out / Forget key go in the header; until someone is signed in, a panel above the message
// box says so and the chats do not load.
//
// A change of who is signed in reloads the page (a sign-in comes back from the provider as a
// page load anyway), so the sidebar, history and live updates all start again as the new
// reader, and nothing of the last one stays in memory. The message being typed is kept
// (draft.js). An API key is kept for this tab only, in sessionStorage.
import { authorizedFetch, useCredential } from "./credentials.js?v=b03bf63721";
import { byId } from "./dom.js?v=e991253526";
import { KeyDialog, storedKey, storeKey } from "./key-dialog.js?v=841a0b7937";
import { OidcSession, pageUrl } from "./oidc.js?v=6a7a8c9ed6";
import { urlFor } from "./routing.js?v=03817483de";

/** @typedef {import("#page/connection.js").Connection} Connection */
/** @typedef {import("#page/draft.js").Draft} Draft */
/** @typedef {import("#page/credentials.js").Credential} Credential */
/**
 * What GET chat/auth answers (caller: whom the request's own credential named, as chat/me
 * says it; the page sends none there, so someone in front of the service added it).
 * @typedef {{
 *   modes: string[],
 *   oidc: null | { issuer: string, client_id: string | null, scopes: string, audience: string },
 *   caller: unknown,
 * }} SignInOptions
 */

const TIMEOUT_MS = 15_000;
const ANONYMOUS = { modes: ["anonymous"], oidc: null, caller: null };

/**
 * How to sign in; an older service without chat/auth, or one that cannot be reached, is
 * taken as one that needs nobody to (a 401 later asks again: see `anonymousCredential`).
 * @returns {Promise<SignInOptions>}
 */
export async function loadSignInOptions() {
  try {
    const response = await fetch("chat/auth", {
      headers: { Accept: "application/json" },
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (!response.ok) return ANONYMOUS;
    return parseSignInOptions(await response.json());
  } catch {
    return ANONYMOUS;
  }
}

/**
 * chat/auth's answer, or the anonymous one for anything else.
 * @param {unknown} body
 * @returns {SignInOptions}
 */
export function parseSignInOptions(body) {
  if (typeof body !== "object" || body === null) return ANONYMOUS;
  const { modes, oidc, caller } = /** @type {Record<string, unknown>} */ (body);
  if (!Array.isArray(modes) || !modes.every((mode) => typeof mode === "string")) return ANONYMOUS;
  if (modes.length === 0) return ANONYMOUS;
  /** @type {SignInOptions["oidc"]} */
  let client = null;
  if (typeof oidc === "object" && oidc !== null) {
    const fields = /** @type {Record<string, unknown>} */ (oidc);
    const { issuer, client_id: clientId, scopes, audience } = fields;
    if (typeof issuer === "string" && typeof scopes === "string" && typeof audience === "string") {
      client = {
        issuer,
        client_id: typeof clientId === "string" && clientId ? clientId : null,
        scopes,
        audience,
      };
    }
  }
  return { modes, oidc: client, caller: caller ?? null };
}

/**
 * What to call the reader: the service's answer to chat/me, else the token's profile.
 * @param {unknown} me
 * @param {string | null} fallback
 * @returns {string}
 */
export function readerName(me, fallback) {
  if (typeof me === "object" && me !== null) {
    const { name, kind } = /** @type {{ name?: unknown, kind?: unknown }} */ (me);
    if (typeof name === "string" && name.trim()) return name.trim();
    if (fallback) return fallback;
    if (kind === "key") return "API key";
  }
  return fallback ?? "Signed in";
}

export class SignIn {
  /**
   * @param {{
   *   connection: Connection,
   *   draft: Draft,
   *   conversationId: () => string,
   * }} parts conversationId: the conversation shown, to come back to after signing in
   */
  constructor({ connection, draft, conversationId }) {
    this.connection = connection;
    this.draft = draft;
    this.conversationId = conversationId;
    this.account = byId("account", HTMLElement);
    this.accountName = byId("account-name", HTMLElement);
    this.signOutButton = byId("sign-out", HTMLButtonElement);
    this.forgetKeyButton = byId("forget-key", HTMLButtonElement);
    this.panel = byId("signin", HTMLElement);
    this.panelTitle = byId("signin-title", HTMLElement);
    this.panelText = byId("signin-text", HTMLElement);
    this.signInButton = byId("sign-in", HTMLButtonElement);
    this.useKeyButton = byId("use-key", HTMLButtonElement);
    this.keyDialog = new KeyDialog((key) => this.keyChosen(key));
    /** @type {OidcSession | null} */
    this.oidc = null;
    // Signed in by what is in front of the service (a sign-in proxy): signing in again is a
    // page load, which that proxy answers with its own sign-in.
    this.proxied = false;
    /** @type {SignInOptions} */
    this.options = ANONYMOUS;
    this.signInButton.addEventListener("click", () => this.signIn());
    this.useKeyButton.addEventListener("click", () => this.keyDialog.open());
    this.signOutButton.addEventListener("click", () => this.signOut());
    this.forgetKeyButton.addEventListener("click", () => this.forgetKey());
  }

  /**
   * Works out who the reader is; true when the chats can load (someone is signed in, or
   * nobody needs to be).
   * @returns {Promise<boolean>}
   */
  async start() {
    this.options = await loadSignInOptions();
    const { modes, oidc } = this.options;
    if (modes.includes("anonymous")) {
      useCredential(this.anonymousCredential());
      return true;
    }
    this.account.hidden = false;
    this.useKeyButton.hidden = !modes.includes("api_key");
    if (modes.includes("oidc") && oidc?.client_id) {
      this.oidc = await OidcSession.create({ ...oidc, client_id: oidc.client_id });
    }
    this.signInButton.hidden = this.oidc === null;
    let failed = "";
    try {
      const back = await this.oidc?.completeRedirect();
      // The conversation the reader was in when they went to sign in.
      if (back?.c) history.replaceState({ c: back.c }, "", urlFor(back.c, location.pathname));
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      failed = `Signing in did not work: ${reason}.`;
    }
    const user = await this.oidc?.load();
    if (user) return this.signedIn(this.oidcCredential(), "oidc");
    const key = modes.includes("api_key") ? storedKey() : null;
    if (key !== null) return this.signedIn(keyCredential(key, this), "key");
    // No credential of the page's own: one may still come from in front of the service (a
    // sign-in proxy, or NGINX adding a key), and chat/auth said whom it names.
    if (!failed && this.options.caller !== null) {
      this.proxied = true;
      useCredential(this.noCredential());
      this.showSignedIn(this.options.caller, "proxy");
      return true;
    }
    this.signedOut(failed || this.invitation());
    return false;
  }

  /**
   * @param {Credential} credential
   * @param {"oidc" | "key" | "proxy"} kind "proxy": the page sends none, and what is in
   *   front of the service adds one (then there is no way out from the page)
   */
  async signedIn(credential, kind) {
    useCredential(credential);
    let me = null;
    try {
      const response = await authorizedFetch("chat/me", {
        headers: { Accept: "application/json" },
        signal: AbortSignal.timeout(TIMEOUT_MS),
      });
      if (response.status === 401) return false; // refused(): the panel says why
      if (response.ok) me = await response.json();
    } catch {
      // The service is away: the history's own request will say so, with Retry.
    }
    this.showSignedIn(me, kind);
    return true;
  }

  /**
   * @param {unknown} me what chat/me says, if it answered
   * @param {"oidc" | "key" | "proxy"} kind
   */
  showSignedIn(me, kind) {
    const fallback = kind === "oidc" ? (this.oidc?.profileName() ?? null) : null;
    this.accountName.textContent = readerName(me, fallback);
    this.accountName.title = this.accountName.textContent; // whole, where it is cut short
    this.accountName.hidden = false;
    this.signOutButton.hidden = kind !== "oidc";
    this.forgetKeyButton.hidden = kind !== "key";
    this.signInButton.hidden = true;
    this.useKeyButton.hidden = true;
  }

  /** @param {string} text why nobody is signed in, and what to do */
  signedOut(text) {
    this.connection.set("signin");
    this.panelTitle.textContent = "Sign in required";
    this.panelText.textContent = text;
    this.panel.hidden = false;
    this.accountName.hidden = true;
    this.signOutButton.hidden = true;
    this.forgetKeyButton.hidden = true;
    this.signInButton.hidden = this.oidc === null && !this.proxied;
    this.useKeyButton.hidden = !this.options.modes.includes("api_key");
    byId("empty", HTMLElement).hidden = true;
  }

  invitation() {
    const { modes, oidc } = this.options;
    if (this.oidc) {
      return modes.includes("api_key")
        ? "Sign in, or use an API key, to see your chats."
        : "Sign in to see your chats.";
    }
    if (modes.includes("api_key")) return "Enter an API key to see your chats.";
    if (oidc && !oidc.client_id) {
      return (
        "This service takes OpenID Connect tokens, but no client is set up for this page " +
        "(CHAT_OIDC_CLIENT_ID)."
      );
    }
    return "This page cannot sign in: its sign-in library is missing (run npm ci in frontend/).";
  }

  /**
   * The service refused the credential (renewal did not help): the reader signs in again.
   * @param {string} reason the service's message
   */
  refused(reason) {
    if (this.oidc?.user) {
      this.signedOut("Your session has ended. Sign in again; what you typed stays here.");
      this.panelTitle.textContent = "Session ended";
      this.panelText.textContent = `${reason} ${this.panelText.textContent}`;
      return;
    }
    this.signedOut(`${reason} ${this.invitation()}`);
  }

  /** @returns {Credential} */
  noCredential() {
    return {
      token: async () => null,
      renew: async () => false,
      refused: (reason) =>
        this.signedOut(
          this.proxied
            ? `${reason} Your sign-in has ended: sign in again; what you typed stays here.`
            : this.invitation(),
        ),
    };
  }

  /** @returns {Credential} */
  oidcCredential() {
    const oidc = /** @type {OidcSession} */ (this.oidc);
    return {
      token: () => oidc.token(),
      renew: () => oidc.renew(),
      refused: (reason) => this.refused(reason),
    };
  }

  /**
   * Nobody signs in here, unless the service has changed its mind (restarted with keys or an
   * issuer): then the page starts again and asks.
   * @returns {Credential}
   */
  anonymousCredential() {
    return {
      token: async () => null,
      renew: async () => false,
      refused: async () => {
        const options = await loadSignInOptions();
        if (!options.modes.includes("anonymous")) this.reload(location.href);
      },
    };
  }

  async signIn() {
    if (!this.oidc) {
      if (this.proxied) this.reload(location.href); // the proxy in front signs in
      return;
    }
    this.draft.save();
    this.signInButton.disabled = true;
    try {
      await this.oidc.signIn({ c: this.conversationId() });
    } catch (error) {
      this.signInButton.disabled = false;
      const reason = error instanceof Error ? error.message : String(error);
      this.signedOut(`The sign-in page could not be opened: ${reason}.`);
    }
  }

  async signOut() {
    this.draft.save();
    this.signOutButton.disabled = true;
    await this.oidc?.signOut();
  }

  forgetKey() {
    storeKey(null);
    this.reload(pageUrl());
  }

  /**
   * A key the service accepted: this tab uses it from now on.
   * @param {string} key
   */
  keyChosen(key) {
    storeKey(key);
    this.reload(location.href);
  }

  /** @param {string} url the page again, as whoever is signed in now */
  reload(url) {
    this.draft.save();
    location.assign(url);
  }
}

/**
 * @param {string} key
 * @param {SignIn} signIn
 * @returns {Credential}
 */
function keyCredential(key, signIn) {
  return {
    token: async () => key,
    renew: async () => false,
    refused: (reason) => signIn.refused(reason),
  };
}
