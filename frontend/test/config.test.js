// config.json's Jaeger URL becomes links only when it is http(s) (config.js).
import assert from "node:assert/strict";
import { test } from "node:test";

import { safeBaseUrl } from "../config.js";

test("http and https URLs, without trailing slashes", () => {
  assert.equal(safeBaseUrl("http://localhost:16686/"), "http://localhost:16686");
  assert.equal(safeBaseUrl(" https://jaeger.example/ui// "), "https://jaeger.example/ui");
});

test("anything else gives no links", () => {
  for (const value of ["", "  ", "javascript:alert(1)", "data:text/html,x", "not a url", null, 5]) {
    assert.equal(safeBaseUrl(value), "", String(value));
  }
});
