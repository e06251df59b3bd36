// @ts-check
import assert from "node:assert/strict";
import { test } from "node:test";

import { fullTime, isUsage, originLabel, originText, shortTime, timeOf } from "../stamps.js";

const UTC = { locale: "en-GB", timeZone: "UTC" };
const NOW = new Date("2026-12-05T14:30:00.000Z");

test("a created_at is read as a time, anything else as none", () => {
  assert.equal(timeOf("2026-12-05T12:00:00.000Z")?.toISOString(), "2026-12-05T12:00:00.000Z");
  assert.equal(timeOf("not a time"), null);
  assert.equal(timeOf(""), null);
  assert.equal(timeOf(null), null);
  assert.equal(timeOf(1733400000000), null, "the service writes RFC 3339, never numbers");
});

test("a message of today shows its time only", () => {
  assert.equal(shortTime(new Date("2026-12-05T09:05:00.000Z"), NOW, UTC), "09:05");
  const us = { ...UTC, locale: "en-US" };
  assert.match(shortTime(new Date("2026-12-05T09:05:00.000Z"), NOW, us), /^9:05\sAM$/u);
});

test("a message of an earlier day shows its date, and its year when another", () => {
  assert.equal(shortTime(new Date("2026-12-04T23:59:00.000Z"), NOW, UTC), "4 Dec 2026, 23:59");
  assert.equal(shortTime(new Date("2025-12-05T10:00:00.000Z"), NOW, UTC), "5 Dec 2025, 10:00");
});

test("the day is the reader's: just past midnight UTC is still yesterday in New York", () => {
  const date = new Date("2026-12-05T02:00:00.000Z");
  assert.equal(shortTime(date, NOW, UTC), "02:00");
  const newYork = { locale: "en-GB", timeZone: "America/New_York" };
  assert.equal(shortTime(date, NOW, newYork), "4 Dec 2026, 21:00");
});

test("the tooltip has the whole date and time, seconds included", () => {
  const text = fullTime(new Date("2026-12-05T09:05:07.000Z"), UTC);
  assert.match(text, /Saturday/);
  assert.match(text, /5 December 2026/);
  assert.match(text, /09:05:07/);
});

test("a reply's origin: model and tokens, either alone, or nothing", () => {
  const usage = { input_tokens: 512, output_tokens: 48 };
  assert.equal(originText({ model: "gpt-4o", usage }, "en"), "gpt-4o · 512 in · 48 out");
  assert.equal(originText({ model: "gpt-4o", usage: null }, "en"), "gpt-4o");
  assert.equal(originText({ model: null, usage }, "en"), "512 in · 48 out");
  assert.equal(originText({ model: null, usage: null }, "en"), "");
  assert.equal(originText({}, "en"), "", "an older service sends neither");
  assert.equal(
    originText({ model: "m", usage: { input_tokens: 12345, output_tokens: 0 } }, "en"),
    "m · 12,345 in · 0 out",
  );
});

test("the origin in words, for screen readers", () => {
  const usage = { input_tokens: 512, output_tokens: 48 };
  const label = originLabel({ model: "gpt-4o", usage }, "en");
  assert.equal(label, "Model gpt-4o, 512 tokens in, 48 out");
  assert.equal(originLabel({ model: "gpt-4o", usage: null }, "en"), "Model gpt-4o");
});

test("usage must have both whole counts", () => {
  assert.equal(isUsage({ input_tokens: 1, output_tokens: 2 }), true);
  assert.equal(isUsage({ input_tokens: 1 }), false);
  assert.equal(isUsage({ input_tokens: 1.5, output_tokens: 2 }), false);
  assert.equal(isUsage({ input_tokens: "1", output_tokens: 2 }), false);
  assert.equal(isUsage(null), false);
});
