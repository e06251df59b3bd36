// What the page makes of chat/auth and chat/me (signin.js): anything unexpected is the
// anonymous service, and the reader's name falls back as far as it must.
import assert from "node:assert/strict";
import { test } from "node:test";

import { parseSignInOptions, readerName } from "../signin.js";

const ANONYMOUS = { modes: ["anonymous"], oidc: null, caller: null };
const CLIENT = { issuer: "https://id.example", client_id: "page", scopes: "openid", audience: "api" };

test("the service's answer, as it is", () => {
  const body = { modes: ["api_key", "oidc"], oidc: CLIENT, caller: { kind: "key" } };
  assert.deepEqual(parseSignInOptions(body), body);
});

test("an issuer without a client for the page has client_id null", () => {
  for (const clientId of [null, "", 7, undefined]) {
    const parsed = parseSignInOptions({ modes: ["oidc"], oidc: { ...CLIENT, client_id: clientId } });
    assert.deepEqual(parsed, { modes: ["oidc"], oidc: { ...CLIENT, client_id: null }, caller: null });
  }
});

test("an oidc object missing a field is no client", () => {
  for (const field of ["issuer", "scopes", "audience"]) {
    const oidc = { ...CLIENT, [field]: undefined };
    assert.equal(parseSignInOptions({ modes: ["oidc"], oidc }).oidc, null, field);
  }
});

test("anything else is the anonymous service", () => {
  for (const body of [null, "x", [], {}, { modes: [] }, { modes: "oidc" }, { modes: [1] }]) {
    assert.deepEqual(parseSignInOptions(body), ANONYMOUS, JSON.stringify(body));
  }
});

test("the reader's name: chat/me's, the token's profile, then what they signed in with", () => {
  assert.equal(readerName({ kind: "oidc", name: " Ada " }, "ada@x"), "Ada");
  assert.equal(readerName({ kind: "oidc", name: null }, "ada@x"), "ada@x");
  assert.equal(readerName({ kind: "oidc", name: "  " }, null), "Signed in");
  assert.equal(readerName({ kind: "key", name: null }, null), "API key");
  assert.equal(readerName(null, "Ada"), "Ada");
  assert.equal(readerName(null, null), "Signed in");
});
