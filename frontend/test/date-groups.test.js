// The sidebar's date groups (date-groups.js): calendar days in the reader's time zone, midnight
// boundaries, daylight saving time, months. Each test sets the time zone (process.env.TZ, which
// Node applies to Date at once) and puts it back.
import assert from "node:assert/strict";
import { afterEach, test } from "node:test";

import { dateGroup, groupByDate, nextMidnight } from "../date-groups.js";

const originalTz = process.env.TZ;
afterEach(() => {
  if (originalTz === undefined) delete process.env.TZ;
  else process.env.TZ = originalTz;
});

/**
 * @param {string} tz
 * @param {string} updated
 * @param {string} now
 */
const labelIn = (tz, updated, now) => {
  process.env.TZ = tz;
  return dateGroup(updated, new Date(now)).label;
};

test("today, yesterday, the previous 7 and 30 days, then months", () => {
  const now = "2026-12-05T13:00:00Z";
  assert.equal(labelIn("UTC", "2026-12-05T00:00:00Z", now), "Today");
  assert.equal(labelIn("UTC", "2026-12-04T23:59:59Z", now), "Yesterday");
  assert.equal(labelIn("UTC", "2026-12-04T00:00:00Z", now), "Yesterday");
  assert.equal(labelIn("UTC", "2026-12-03T23:59:59Z", now), "Previous 7 days");
  assert.equal(labelIn("UTC", "2026-11-28T00:00:00Z", now), "Previous 7 days");
  assert.equal(labelIn("UTC", "2026-11-27T23:59:59Z", now), "Previous 30 days");
  assert.equal(labelIn("UTC", "2026-11-05T00:00:00Z", now), "Previous 30 days");
  assert.equal(labelIn("UTC", "2026-11-04T23:59:59Z", now), "November 2026");
  assert.equal(labelIn("UTC", "2025-12-31T10:00:00Z", now), "December 2025");
});

test("the day is the reader's: the same instant is today in one zone, yesterday in another", () => {
  const updated = "2026-12-05T03:00:00Z";
  const now = "2026-12-05T13:00:00Z";
  assert.equal(labelIn("Europe/Berlin", updated, now), "Today");
  // 22:00 on the 4th in New York, where it is 08:00 on the 5th now.
  assert.equal(labelIn("America/New_York", updated, now), "Yesterday");
  // Tokyo: 12:00 on the 5th then, 22:00 on the 5th now.
  assert.equal(labelIn("Asia/Tokyo", updated, now), "Today");
});

test("midnight is the boundary, a second either side", () => {
  // Berlin in December is UTC+1: local midnight of the 5th is 23:00 UTC on the 4th.
  const now = "2026-12-05T00:30:00+01:00";
  assert.equal(labelIn("Europe/Berlin", "2026-12-05T00:00:00+01:00", now), "Today");
  assert.equal(labelIn("Europe/Berlin", "2026-12-04T23:59:59+01:00", now), "Yesterday");
  // One minute before midnight, a chat from a minute ago is today, not yesterday.
  assert.equal(
    labelIn("Europe/Berlin", "2026-12-04T23:58:00+01:00", "2026-12-04T23:59:00+01:00"),
    "Today",
  );
});

test("days of 23 and 25 hours count as one day (daylight saving time)", () => {
  // Europe/Berlin went to summer time on 2026-03-29 (a 23-hour day) and back on 2026-10-25.
  const spring = "2026-03-30T00:10:00+02:00";
  assert.equal(labelIn("Europe/Berlin", "2026-03-29T00:05:00+01:00", spring), "Yesterday");
  assert.equal(labelIn("Europe/Berlin", "2026-03-28T23:55:00+01:00", spring), "Previous 7 days");
  const autumn = "2026-10-26T00:10:00+01:00";
  assert.equal(labelIn("Europe/Berlin", "2026-10-25T00:05:00+02:00", autumn), "Yesterday");
  assert.equal(labelIn("Europe/Berlin", "2026-10-24T23:55:00+02:00", autumn), "Previous 7 days");
  // 7 calendar days back across the change: still the previous 7 days, 8 are not.
  assert.equal(
    labelIn("America/New_York", "2026-03-02T12:00:00-05:00", "2026-03-09T01:00:00-04:00"),
    "Previous 7 days",
  );
  assert.equal(
    labelIn("America/New_York", "2026-03-01T23:59:00-05:00", "2026-03-09T01:00:00-04:00"),
    "Previous 30 days",
  );
});

test("months are the reader's months", () => {
  // 23:30 UTC on 31 October is 1 November in Berlin.
  assert.equal(labelIn("UTC", "2026-10-31T23:30:00Z", "2026-12-20T12:00:00Z"), "October 2026");
  assert.equal(
    labelIn("Europe/Berlin", "2026-10-31T23:30:00Z", "2026-12-20T12:00:00Z"),
    "November 2026",
  );
});

test("a time ahead of the clock is today; an unreadable one is of long ago", () => {
  assert.equal(labelIn("UTC", "2026-12-06T10:00:00Z", "2026-12-05T13:00:00Z"), "Today");
  process.env.TZ = "UTC";
  assert.deepEqual(dateGroup("not a time", new Date("2026-12-05T13:00:00Z")), {
    key: "1970-01",
    label: "January 1970",
  });
});

test("groups keep the list's order and cut it where the group changes", () => {
  process.env.TZ = "UTC";
  const now = new Date("2026-12-05T13:00:00Z");
  const chats = [
    { id: "a", updated_at: "2026-12-05T12:00:00Z" },
    { id: "b", updated_at: "2026-12-05T01:00:00Z" },
    { id: "c", updated_at: "2026-12-04T01:00:00Z" },
    { id: "d", updated_at: "2026-10-30T01:00:00Z" },
    { id: "e", updated_at: "2026-10-01T01:00:00Z" },
    { id: "f", updated_at: "2026-09-30T01:00:00Z" },
  ];
  const groups = groupByDate(chats, now).map((g) => [g.label, g.members.map((m) => m.id)]);
  assert.deepEqual(groups, [
    ["Today", ["a", "b"]],
    ["Yesterday", ["c"]],
    ["October 2026", ["d", "e"]],
    ["September 2026", ["f"]],
  ]);
  assert.deepEqual(groupByDate([], now), []);
});

test("the groups change at the next local midnight, whatever the day's length", () => {
  process.env.TZ = "Europe/Berlin";
  assert.equal(
    nextMidnight(new Date("2026-12-05T13:00:00+01:00")).toISOString(),
    "2026-12-05T23:00:00.000Z",
  );
  // The night of the change to summer time (23 hours) and back (25 hours).
  assert.equal(
    nextMidnight(new Date("2026-03-29T00:30:00+01:00")).toISOString(),
    "2026-03-29T22:00:00.000Z",
  );
  assert.equal(
    nextMidnight(new Date("2026-10-25T00:30:00+02:00")).toISOString(),
    "2026-10-25T23:00:00.000Z",
  );
  // A second before midnight: that midnight.
  process.env.TZ = "UTC";
  assert.equal(
    nextMidnight(new Date("2026-12-31T23:59:59Z")).toISOString(),
    "2027-01-01T00:00:00.000Z",
  );
});
