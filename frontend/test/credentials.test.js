// The credential on every request (credentials.js): the header it adds, the one renewal and
// retry a 401 gets, and the refusal the page is told of. fetch is replaced by a recorder of
// the requests, answering from a script: no server is what is under test here.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { authorizedFetch, useCredential } from "../credentials.js";

const realFetch = globalThis.fetch;
afterEach(() => {
  globalThis.fetch = realFetch;
  useCredential(null);
});

/** Answers each request with the next status; records the Authorization each carried. */
function serve(...statuses) {
  const seen = [];
  globalThis.fetch = async (url, init = {}) => {
    seen.push({ url, authorization: new Headers(init.headers).get("Authorization") });
    const status = statuses.shift() ?? 500;
    return Response.json({ status: "error", message: `answered ${status}` }, { status });
  };
  return seen;
}

function credential(tokens, { renews = false } = {}) {
  const calls = { renew: 0, refused: [] };
  let current = tokens.shift() ?? null;
  return {
    calls,
    token: async () => current,
    renew: async () => {
      calls.renew += 1;
      if (!renews) return false;
      current = tokens.shift() ?? null;
      return true;
    },
    refused: (reason) => calls.refused.push(reason),
  };
}

test("without a credential, requests go as they are", async () => {
  const seen = serve(401);
  const response = await authorizedFetch("chat/history", { headers: { Accept: "x" } });
  assert.equal(response.status, 401);
  assert.deepEqual(seen, [{ url: "chat/history", authorization: null }]);
});

test("the token goes in the Authorization header, and a success is returned untouched", async () => {
  const seen = serve(200);
  const cred = credential(["t1"]);
  useCredential(cred);
  const response = await authorizedFetch("chat/me");
  assert.equal(response.status, 200);
  assert.deepEqual(seen, [{ url: "chat/me", authorization: "Bearer t1" }]);
  assert.deepEqual(cred.calls, { renew: 0, refused: [] });
});

test("a 401 is renewed once and sent again with the new token", async () => {
  const seen = serve(401, 200);
  const cred = credential(["old", "new"], { renews: true });
  useCredential(cred);
  const response = await authorizedFetch("chat/message", { method: "POST", body: "{}" });
  assert.equal(response.status, 200);
  assert.deepEqual(
    seen.map((s) => s.authorization),
    ["Bearer old", "Bearer new"],
  );
  assert.deepEqual(cred.calls, { renew: 1, refused: [] });
});

test("a 401 that renewal cannot help tells the credential the service's reason", async () => {
  serve(401);
  const cred = credential(["bad"]);
  useCredential(cred);
  const response = await authorizedFetch("chat/history");
  assert.equal(response.status, 401);
  assert.deepEqual(cred.calls, { renew: 1, refused: ["answered 401"] });
  // The body is still there for the caller to show.
  assert.equal((await response.json()).message, "answered 401");
});

test("a 401 after a renewal is refused too, and not retried again", async () => {
  const seen = serve(401, 401, 200);
  const cred = credential(["old", "new"], { renews: true });
  useCredential(cred);
  assert.equal((await authorizedFetch("chat/history")).status, 401);
  assert.equal(seen.length, 2);
  assert.deepEqual(cred.calls, { renew: 1, refused: ["answered 401"] });
});

test("other failures are neither renewed nor refused", async () => {
  serve(403, 503);
  const cred = credential(["t"], { renews: true });
  useCredential(cred);
  assert.equal((await authorizedFetch("chat/message")).status, 403);
  assert.equal((await authorizedFetch("chat/message")).status, 503);
  assert.deepEqual(cred.calls, { renew: 0, refused: [] });
});

test("no token drops an Authorization the caller set; a refusal without JSON has a reason", async () => {
  const seen = [];
  globalThis.fetch = async (url, init = {}) => {
    seen.push(new Headers(init.headers).get("Authorization"));
    return new Response("<html>401</html>", { status: 401 });
  };
  const cred = credential([]);
  useCredential(cred);
  await authorizedFetch("chat/me", { headers: { Authorization: "Bearer stale" } });
  assert.deepEqual(seen, [null]);
  assert.deepEqual(cred.calls.refused, ["Sign in to go on."]);
});
