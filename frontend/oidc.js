// @ts-check
// OpenID Connect sign-in with oidc-client-ts (npm; vendor/ holds its ES module build): the
// authorization code flow with PKCE, as a public client, so the page holds no secret. The
// redirect URI is the page itself (its folder's URL, so "/" and "/frontend.html" are one page).
//
// Tokens live where the library keeps them by default, sessionStorage: per tab, gone when the
// tab closes, never in a URL (the code and state the provider sends back are removed from the
// address bar at once) and never logged. Memory alone would sign the reader out on every
// reload; localStorage would keep tokens after the tab is closed and share them with every tab.
//
// Renewal uses the refresh token, before the access token expires (at three quarters of its
// remaining life) and whenever the service refuses a token. Without a refresh token (a
// provider that issues one only for the offline_access scope) the session ends with its
// access token, and the page asks the reader to sign in again. The library's other way,
// a hidden iframe, is not used: the page's Content-Security-Policy allows no frames.

/** @typedef {typeof import("oidc-client-ts")} OidcClientModule */
/** @typedef {import("oidc-client-ts").User} User */
/** @typedef {import("oidc-client-ts").UserManager} UserManager */
/** @typedef {{ issuer: string, client_id: string, scopes: string, audience: string }} OidcClient */
/** @typedef {{ c?: string }} ReturnState what the page shows again after the redirect */

const RENEW_AT = 0.75; // of the token's remaining life
const MIN_RENEW_DELAY_MS = 1_000;

export class OidcSession {
  /**
   * @param {UserManager} manager
   */
  constructor(manager) {
    this.manager = manager;
    /** @type {User | null} */
    this.user = null;
    this.renewTimer = 0;
    /** @type {Promise<boolean> | null} the renewal under way, which concurrent callers share */
    this.renewing = null;
  }

  /**
   * A session with the provider `client` names, or null when the library is not installed.
   * @param {OidcClient} client
   * @returns {Promise<OidcSession | null>}
   */
  static async create(client) {
    let library;
    try {
      library = /** @type {OidcClientModule} */ (
        /** @type {unknown} */ (await import("./vendor/oidc-client-ts.js"))
      );
    } catch {
      return null;
    }
    const page = pageUrl();
    const manager = new library.UserManager({
      authority: client.issuer,
      client_id: client.client_id,
      redirect_uri: page,
      post_logout_redirect_uri: page,
      response_type: "code",
      scope: client.scopes,
      // Auth0 issues an access token for the API only when asked for its audience; other
      // providers ignore parameters they do not know.
      extraQueryParams: { audience: client.audience },
      userStore: new library.WebStorageStateStore({ store: window.sessionStorage }),
      automaticSilentRenew: false, // renew() below, with the refresh token only
      monitorSession: false, // an iframe, which the page's CSP refuses
    });
    return new OidcSession(manager);
  }

  /**
   * Back from the provider: completes the sign-in when the URL carries its answer, and takes
   * that answer out of the URL. Returns the state the sign-in started from (null when the URL
   * was no answer); throws with the provider's reason when signing in failed.
   * @returns {Promise<ReturnState | null>}
   */
  async completeRedirect() {
    const params = new URLSearchParams(location.search);
    if (!params.has("state") || !(params.has("code") || params.has("error"))) return null;
    try {
      const user = await this.manager.signinRedirectCallback();
      this.use(user);
      const state = /** @type {ReturnState | undefined} */ (user.state);
      return state && typeof state === "object" ? state : {};
    } finally {
      history.replaceState(null, "", pageUrl());
    }
  }

  /** The signed-in user, if this tab has one whose token is still good or can be renewed. */
  async load() {
    if (this.user) return this.user;
    const user = await this.manager.getUser();
    if (user && (!user.expired || user.refresh_token)) {
      this.use(user);
      if (user.expired && !(await this.renew())) return null;
      return this.user;
    }
    return null;
  }

  /** @returns {Promise<string | null>} the access token to send */
  async token() {
    if (this.user?.expired && this.user.refresh_token) await this.renew();
    return this.user?.access_token ?? null;
  }

  /**
   * A fresh access token from the refresh token; false when there is none or the provider
   * refused it (the session is over).
   * @returns {Promise<boolean>}
   */
  renew() {
    if (!this.user?.refresh_token) return Promise.resolve(false);
    this.renewing ??= this.manager
      .signinSilent()
      .then((user) => {
        if (!user) return false;
        this.use(user);
        return true;
      })
      .catch(() => false)
      .finally(() => {
        this.renewing = null;
      });
    return this.renewing;
  }

  /** @param {User} user */
  use(user) {
    this.user = user;
    clearTimeout(this.renewTimer);
    const remainingS = user.expires_in;
    if (!user.refresh_token || remainingS === undefined) return;
    const delay = Math.max(MIN_RENEW_DELAY_MS, remainingS * 1000 * RENEW_AT);
    this.renewTimer = setTimeout(() => this.renew(), delay);
  }

  /**
   * To the provider's login page; back to the conversation in `state`.
   * @param {ReturnState} state
   */
  async signIn(state) {
    // Kept with the request in sessionStorage, not sent to the provider.
    await this.manager.signinRedirect({ state });
  }

  // Out at the provider too (its end-session endpoint), and back to the page. A provider
  // without one: the tab forgets the session, and the page starts again signed out.
  async signOut() {
    clearTimeout(this.renewTimer);
    try {
      await this.manager.signoutRedirect();
    } catch {
      await this.manager.removeUser();
      location.assign(pageUrl());
    }
  }

  /** @returns {string | null} what the token's profile calls the reader */
  profileName() {
    const profile = this.user?.profile;
    const name = profile?.name ?? profile?.preferred_username ?? profile?.email;
    return typeof name === "string" && name.trim() ? name.trim() : null;
  }
}

/** The page's own URL, without query or fragment: where the provider sends the reader back. */
export function pageUrl() {
  return new URL("./", location.href).href;
}
