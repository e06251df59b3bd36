// @ts-check
// Pure: which date group of the sidebar a chat falls in, by its last activity in the reader's
// local time zone (the Date methods' own): Today, Yesterday, Previous 7 days, Previous 30 days,
// then one group per calendar month ("November 2026"), however old. Months rather than one
// "Older" group: a long list stays navigable by heading, and a month is what people remember.
//
// Days are counted between calendar dates, not as 24-hour spans, so midnight is the boundary and
// a day of 23 or 25 hours (daylight saving time) counts as one day.

const DAY_MS = 86_400_000;
// The page is in English (lang="en"); a formatter of Intl would also fix its time zone when made.
const MONTHS = [
  "January",
  "February",
  "March",
  "April",
  "May",
  "June",
  "July",
  "August",
  "September",
  "October",
  "November",
  "December",
];

/** @typedef {{ key: string, label: string }} DateGroup */

/**
 * The local calendar date of a time, as a day number (days since 1970-01-01 of that calendar),
 * which is exact whatever the length of the days in between.
 * @param {Date} date
 */
function localDay(date) {
  return Date.UTC(date.getFullYear(), date.getMonth(), date.getDate()) / DAY_MS;
}

/**
 * The group of a chat last active at `updatedAt` (ISO 8601), seen at `now`. A time in the future
 * (clocks that disagree) or one that cannot be read counts as today and as long ago respectively.
 * @param {string} updatedAt
 * @param {Date} now
 * @returns {DateGroup}
 */
export function dateGroup(updatedAt, now) {
  const ms = Date.parse(updatedAt);
  const when = new Date(Number.isNaN(ms) ? 0 : ms);
  const days = localDay(now) - localDay(when);
  if (days <= 0) return { key: "today", label: "Today" };
  if (days === 1) return { key: "yesterday", label: "Yesterday" };
  if (days <= 7) return { key: "7days", label: "Previous 7 days" };
  if (days <= 30) return { key: "30days", label: "Previous 30 days" };
  const [year, month] = [when.getFullYear(), when.getMonth()];
  const key = `${year}-${String(month + 1).padStart(2, "0")}`;
  return { key, label: `${MONTHS[month]} ${year}` };
}

/**
 * The next local midnight after `now`, when the groups change (a day of daylight saving time
 * has 23 or 25 hours; where midnight itself is skipped, the first time of the new day).
 * @param {Date} now
 */
export function nextMidnight(now) {
  return new Date(now.getFullYear(), now.getMonth(), now.getDate() + 1);
}

/**
 * Chats in the order shown (newest activity first) cut into their groups, in that order. The
 * order of the chats is kept: a group is the run of consecutive chats with the same key.
 * @template {{ updated_at: string }} T
 * @param {T[]} ordered
 * @param {Date} now
 * @returns {Array<DateGroup & { members: T[] }>}
 */
export function groupByDate(ordered, now) {
  /** @type {Array<DateGroup & { members: T[] }>} */
  const groups = [];
  for (const member of ordered) {
    const group = dateGroup(member.updated_at, now);
    const last = groups.at(-1);
    if (last?.key === group.key) last.members.push(member);
    else groups.push({ ...group, members: [member] });
  }
  return groups;
}
