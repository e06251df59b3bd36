// A real OpenID Connect provider for the tests: panva's oidc-provider (a certified
// implementation, frontend/package.json's dev dependency), on 127.0.0.1 with a plain-HTTP
// issuer, for the page's sign-in (authorization code + PKCE, a public client) and for the
// service's verification of the access tokens it issues.
//
//   node tests/support/oidc_provider.mjs <port> [<configuration as JSON>]
//
// (or OIDC_PROVIDER_PORT and OIDC_PROVIDER_CONFIG in the environment). The configuration,
// every member optional:
//
//   {
//     "clients": [{"client_id": "chat-page",
//                  "redirect_uris": ["http://127.0.0.1:8000/"],
//                  "post_logout_redirect_uris": ["http://127.0.0.1:8000/"]}],
//     "audience": "chat-service",      // the access tokens' aud
//     "resource": "urn:chat-service",  // the resource indicator those tokens are for
//     "access_token_ttl": 20,          // seconds
//     "id_token_ttl": 3600,
//     "refresh_token_ttl": 3600,       // a sign-in's refresh tokens, rotation included
//     "accounts": {"alice": {"name": "Alice Liddell", "email": null}}
//   }
//
// Clients are public (token_endpoint_auth_method "none": no secret), use the code flow with
// PKCE (S256, required) and get refresh tokens; members given for a client are passed to
// oidc-provider as its metadata, over these defaults. Anyone signs in on the provider's own
// development login form (features.devInteractions: any login, any password); the login is the
// subject. Consent is never asked: the requested scopes are granted at once. Each account's
// claims are derived from the login ("bob.jones" is "Bob Jones", bob.jones@example.test), then
// replaced by its entry in "accounts" (null: the claim left out); the access tokens (JWTs,
// RS256, signed with a key made at start) carry name, preferred_username and email.
//
// When it listens, it prints its issuer URL on one line to stdout, and nothing else ever goes
// there (oidc-provider's notices go to stderr, with errors); SIGTERM or SIGINT closes it.

import { generateKeyPairSync, randomBytes } from "node:crypto";
import { createRequire } from "node:module";
import { pathToFileURL } from "node:url";

// stdout is the readiness line alone: oidc-provider prints its notices with console.info.
console.info = console.error;
console.log = console.error;

// oidc-provider is installed by `npm ci` in frontend/, not on this file's own module path.
const frontend = createRequire(new URL("../../frontend/package.json", import.meta.url));
const { default: Provider, errors } = await import(
  pathToFileURL(frontend.resolve("oidc-provider")).href
);

const DEFAULTS = {
  clients: [],
  audience: "chat-service",
  resource: "urn:chat-service",
  access_token_ttl: 20,
  id_token_ttl: 3600,
  refresh_token_ttl: 3600,
  accounts: {},
};

function fail(message) {
  console.error(`oidc_provider.mjs: ${message}`);
  process.exit(2);
}

function readConfiguration() {
  const port = Number(process.argv[2] ?? process.env.OIDC_PROVIDER_PORT);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    fail("the first argument (or OIDC_PROVIDER_PORT) must be the port to listen on");
  }
  let given;
  try {
    given = JSON.parse(process.argv[3] ?? process.env.OIDC_PROVIDER_CONFIG ?? "{}");
  } catch (error) {
    fail(`the configuration is not JSON: ${error.message}`);
  }
  if (given === null || typeof given !== "object" || Array.isArray(given)) {
    fail("the configuration must be a JSON object");
  }
  const unknown = Object.keys(given).filter((name) => !(name in DEFAULTS));
  if (unknown.length) {
    fail(`unknown configuration members: ${unknown.join(", ")}`);
  }
  const config = { ...DEFAULTS, ...given };
  for (const name of ["access_token_ttl", "id_token_ttl", "refresh_token_ttl"]) {
    if (!Number.isInteger(config[name]) || config[name] < 1) {
      fail(`${name} must be a whole number of seconds, at least 1`);
    }
  }
  if (!Array.isArray(config.clients)) {
    fail("clients must be an array");
  }
  return { port, config };
}

const { port, config } = readConfiguration();
const issuer = `http://127.0.0.1:${port}`;

// -- accounts -----------------------------------------------------------------------------

/** The claims of the account signed in as `login`: derived, then the configured ones. */
function claimsOf(login) {
  const local = login.split("@")[0];
  const words = local.split(/[._\-\s]+/).filter(Boolean);
  const derived = {
    sub: login,
    name: words.map((word) => word[0].toUpperCase() + word.slice(1)).join(" ") || login,
    preferred_username: login,
    email: login.includes("@") ? login : `${login}@example.test`,
    email_verified: true,
  };
  const overrides = Object.hasOwn(config.accounts, login) ? config.accounts[login] : {};
  const claims = { ...derived, ...overrides, sub: login };
  for (const [name, value] of Object.entries(claims)) {
    if (value === null) delete claims[name];
  }
  return claims;
}

async function findAccount(ctx, sub) {
  return { accountId: sub, claims: async () => claimsOf(sub) };
}

/** What the access tokens say of the user besides sub: what the service shows. */
async function extraTokenClaims(ctx, token) {
  if (!token.accountId) return undefined;
  const claims = claimsOf(token.accountId);
  const extra = {};
  for (const name of ["name", "preferred_username", "email"]) {
    if (name in claims) extra[name] = claims[name];
  }
  return extra;
}

// -- grants: no consent step ----------------------------------------------------------------

/** The grant of this sign-in, holding every scope the request asks for (OpenID Connect's and
 * the resource's): the consent prompt finds nothing missing and is skipped. */
async function loadExistingGrant(ctx) {
  const { oidc } = ctx;
  const { Grant } = oidc.provider;
  const grantId = oidc.result?.consent?.grantId || oidc.session.grantIdFor(oidc.client.clientId);
  const grant =
    (grantId && (await Grant.find(grantId))) ||
    new Grant({ clientId: oidc.client.clientId, accountId: oidc.session.accountId });
  grant.addOIDCScope([...oidc.requestParamOIDCScopes].join(" "));
  grant.addOIDCClaims([...oidc.requestParamClaims]);
  for (const [indicator, server] of Object.entries(oidc.resourceServers)) {
    const scopes = [...oidc.requestParamScopes].filter((scope) => server.scopes.has(scope));
    grant.addResourceScope(indicator, scopes.join(" "));
  }
  await grant.save();
  return grant;
}

// -- the service as a resource server -----------------------------------------------------

async function getResourceServerInfo(ctx, indicator) {
  if (indicator !== config.resource) {
    throw new errors.InvalidTarget(`unknown resource ${indicator}`);
  }
  return {
    // Its one scope: a request that names it gets it in the access token's scope claim (and the
    // token response's); without it, both are empty, and the token is good all the same.
    scope: "chat",
    audience: config.audience,
    accessTokenFormat: "jwt",
    jwt: { sign: { alg: "RS256" } },
  };
}

// -- the provider -------------------------------------------------------------------------

const client = (metadata) => ({
  token_endpoint_auth_method: "none",
  grant_types: ["authorization_code", "refresh_token"],
  response_types: ["code"],
  application_type: "web",
  ...metadata,
});

const signingKey = {
  ...generateKeyPairSync("rsa", { modulusLength: 2048 }).privateKey.export({ format: "jwk" }),
  kid: `rsa-${randomBytes(6).toString("hex")}`,
  use: "sig",
  alg: "RS256",
};

const provider = new Provider(issuer, {
  clients: config.clients.map(client),
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString("base64url")] },
  scopes: ["openid", "offline_access", "profile", "email"],
  claims: {
    openid: ["sub"],
    profile: ["name", "preferred_username"],
    email: ["email", "email_verified"],
  },
  findAccount,
  loadExistingGrant,
  extraTokenClaims,
  responseTypes: ["code"],
  features: {
    devInteractions: { enabled: true },
    // The service takes bearer tokens only: none bound to a key of the page's.
    dPoP: { enabled: false },
    rpInitiatedLogout: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // The page asks for no resource: its tokens are for the service all the same ...
      defaultResource: async (ctx, _client, oneOf) =>
        oneOf ? (oneOf.includes(config.resource) ? config.resource : oneOf) : config.resource,
      getResourceServerInfo,
      // ... including at the token endpoint, where the openid scope would otherwise get an
      // access token for the userinfo endpoint.
      useGrantedResource: async () => true,
    },
  },
  pkce: { required: () => true },
  // A public client in a browser gets refresh tokens without offline_access (which needs a
  // consent prompt), and each one is used once: every refresh returns the next.
  issueRefreshToken: async (ctx, registered, code) =>
    registered.grantTypeAllowed("refresh_token") &&
    (code.scopes.has("offline_access") || registered.clientAuthMethod === "none"),
  rotateRefreshToken: true,
  // Only origins of the client's redirect URIs (the page's) may call the token, userinfo and
  // revocation endpoints; discovery and the key set are open to any origin.
  clientBasedCORS: (ctx, origin, registered) =>
    registered.redirectUris.some((uri) => new URL(uri).origin === origin),
  ttl: {
    AccessToken: config.access_token_ttl,
    AuthorizationCode: 60,
    IdToken: config.id_token_ttl,
    Interaction: 600,
    Grant: config.refresh_token_ttl,
    Session: config.refresh_token_ttl,
    // A rotated refresh token lives only as long as the one it replaces: a sign-in can be
    // refreshed for refresh_token_ttl, not forever.
    RefreshToken: (ctx) =>
      ctx?.oidc?.entities.RotatedRefreshToken?.remainingTTL ?? config.refresh_token_ttl,
  },
});

// The provider's own pages (login, logout, errors) import a web font from Google: the tests
// run on loopback alone, where that request would fail (a console error in the browser). Nor do
// they name an icon, so the browser asks for /favicon.ico: no content, rather than a 404 (one
// more console error).
const WEB_FONT = /@import url\(https:\/\/fonts\.googleapis\.com\/[^)]*\);?/g;
provider.use(async (ctx, next) => {
  if (ctx.method === "GET" && ctx.path === "/favicon.ico") {
    ctx.status = 204;
    return;
  }
  await next();
  if (typeof ctx.body === "string" && ctx.response.is("html")) {
    ctx.body = ctx.body.replace(WEB_FONT, "");
  }
});

provider.on("server_error", (ctx, error) => {
  console.error(`server_error on ${ctx.method} ${ctx.path}:`, error);
});

const server = provider.listen(port, "127.0.0.1", () => {
  process.stdout.write(`${issuer}\n`);
});
server.on("error", (error) => {
  console.error(`oidc_provider.mjs: cannot listen on 127.0.0.1:${port}: ${error.message}`);
  process.exit(1);
});

function stop() {
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on("SIGTERM", stop);
process.on("SIGINT", stop);
