// Dates in the user's time zone, numbers in the user's language.
import { language } from './i18n.js';

export const DEFAULT_TIMEZONE = 'Asia/Ho_Chi_Minh';
let zone = DEFAULT_TIMEZONE;
const formatters = new Map();

export function setTimeZone(name) {
  try {
    new Intl.DateTimeFormat('en', { timeZone: name });
    zone = name;
  } catch {
    zone = DEFAULT_TIMEZONE;
  }
}

export function timeZone() {
  return zone;
}

function locale() {
  return language() === 'vi' ? 'vi-VN' : 'en-GB';
}

function formatter(options) {
  const key = `${locale()}|${zone}|${JSON.stringify(options)}`;
  let value = formatters.get(key);
  if (!value) {
    value = new Intl.DateTimeFormat(locale(), { timeZone: zone, ...options });
    formatters.set(key, value);
  }
  return value;
}

function parse(iso) {
  if (!iso) return null;
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? null : date;
}

// Every field two digits, so that times line up in a column whatever the day: Vietnamese's
// short date style leaves the day and month unpadded (`1/12/26` beside `30/11/26`).
const DATE_TIME = {
  day: '2-digit', month: '2-digit', year: '2-digit',
  hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23',
};

export function dateTime(iso) {
  const date = parse(iso);
  return date ? formatter(DATE_TIME).format(date) : '—';
}

export function shortTime(iso, withDate) {
  const date = parse(iso);
  if (!date) return '';
  const options = withDate
    ? { day: '2-digit', month: '2-digit', hour: '2-digit', minute: '2-digit' }
    : { hour: '2-digit', minute: '2-digit' };
  return formatter(options).format(date);
}

export function number(value) {
  return new Intl.NumberFormat(locale(), { maximumFractionDigits: 2 }).format(value ?? 0);
}

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '—';
  const s = Math.round(seconds);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}

/** The offset of `zone` from UTC at a given instant, in milliseconds. */
function zoneOffset(instant) {
  const parts = formatter({
    year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit',
    second: '2-digit', hourCycle: 'h23',
  }).formatToParts(new Date(instant));
  const get = (type) => Number(parts.find((p) => p.type === type).value);
  const asUtc = Date.UTC(get('year'), get('month') - 1, get('day'), get('hour'), get('minute'), get('second'));
  return asUtc - Math.floor(instant / 1000) * 1000;
}

/** `YYYY-MM-DDTHH:MM` typed in the user's zone (a datetime-local input) -> ISO instant. */
export function zonedInputToIso(text) {
  const match = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})/.exec(text || '');
  if (!match) return '';
  const [, y, mo, d, h, mi] = match.map(Number);
  const guess = Date.UTC(y, mo - 1, d, h, mi);
  const instant = guess - zoneOffset(guess);
  return new Date(instant - (zoneOffset(instant) - zoneOffset(guess))).toISOString();
}

/** An ISO instant -> `YYYY-MM-DDTHH:MM` in the user's zone, for a datetime-local input. */
export function isoToZonedInput(iso) {
  const date = parse(iso);
  if (!date) return '';
  const local = new Date(date.getTime() + zoneOffset(date.getTime()));
  return local.toISOString().slice(0, 16);
}

export const RANGES = { '15m': 900, '1h': 3600, '24h': 86400, '7d': 604800, '30d': 2592000 };

/** A named range ('24h') -> ISO start, or '' for all time. Whole minutes, so that the same
 * range asked twice in a minute is the same request (prefetched answers match). */
export function rangeStart(name) {
  const seconds = RANGES[name];
  const minute = Math.floor(Date.now() / 60000) * 60000;
  return seconds ? new Date(minute - seconds * 1000).toISOString() : '';
}
