import type { Column, TimeKind } from './columns.js';

/**
 * Time columns of two tables made comparable: a timestamp, date or time-of-day column of an Arrow
 * or Parquet table is numbers (epoch milliseconds, milliseconds since midnight), while the CSV of the
 * same table holds ISO-8601 text (`2025-01-09 12:31:18.076767`, `2025-03-19`, `12:31:18`, as pandas'
 * `to_csv` writes them). A text column facing a time column whose every present cell is such text is
 * read as the same numbers (`timeTextValue`); any other pair, or text that is not all ISO-8601, is
 * left as it is (`columnDrift` then refuses the pair, saying how to write the text). Forcing the
 * column `--categorical`, as that error used to advise, compared epoch milliseconds with ISO text:
 * identical data drifted 100%.
 */
export function timeColumnsAsNumbers(
  reference: readonly Column[],
  current: readonly Column[],
): [reference: Column[], current: Column[]] {
  const byName = new Map(reference.map((c) => [c.name, c]));
  const changed = new Map<string, Column>();
  for (const cur of current) {
    const ref = byName.get(cur.name);
    if (ref === undefined) continue;
    const asNumbers = timeTextColumn(ref, cur) ?? timeTextColumn(cur, ref);
    if (asNumbers !== undefined) changed.set(cur.name, asNumbers);
  }
  if (changed.size === 0) return [[...reference], [...current]];
  const swap = (side: readonly Column[]) =>
    side.map((c) => (c.kind === 'categorical' && changed.has(c.name) ? changed.get(c.name)! : c));
  return [swap(reference), swap(current)];
}

/**
 * `text` read as the numbers of the time column `typed` holds, when `typed` is one and every present
 * cell of `text` is ISO-8601 text of that kind; undefined otherwise.
 */
export function timeTextColumn(typed: Column, text: Column): Column | undefined {
  if (typed.kind !== 'numeric' || typed.time === undefined || text.kind !== 'categorical') return undefined;
  const values = new Float64Array(text.values.length);
  for (let r = 0; r < values.length; r++) {
    const cell = text.values[r];
    if (cell === null || cell === undefined) {
      values[r] = Number.NaN;
      continue;
    }
    const x = timeTextValue(cell, typed.time);
    if (x === undefined) return undefined;
    values[r] = x;
  }
  return { name: text.name, kind: 'numeric', values, integerText: false, time: typed.time };
}

const INSTANT =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(Z|[+-]\d{2}(?::\d{2}(?::\d{2})?|\d{2}(?:\d{2})?)?)?)?$/;
const TIME_OF_DAY = /^(\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?$/;

/**
 * ISO-8601 text as the number the Arrow and Parquet readers make of the same value: a timestamp or
 * date (`YYYY-MM-DD`, optionally `[T ]hh:mm[:ss[.f…]]` and `Z` or an offset `±hh[:mm[:ss]]` or
 * `±hh[mm[ss]]`; without one the time is UTC, as pyarrow stores a naive timestamp) as epoch
 * milliseconds, a time of day (`hh:mm[:ss[.f…]]`) as milliseconds since midnight; microseconds kept
 * as the fraction, nanoseconds cut to microseconds toward zero as the readers cut them. Exact (the same double as the reader's) for instants within
 * about 285 years of 1970. Undefined for anything else (an impossible date or time included).
 */
export function timeTextValue(text: string, kind: TimeKind): number | undefined {
  let seconds: number;
  let fraction: string | undefined;
  if (kind === 'time') {
    const m = TIME_OF_DAY.exec(text);
    if (m === null) return undefined;
    const [h, mi, s] = [Number(m[1]), Number(m[2]), Number(m[3] ?? 0)];
    if (h > 23 || mi > 59 || s > 59) return undefined;
    seconds = h * 3600 + mi * 60 + s;
    fraction = m[4];
  } else {
    const m = INSTANT.exec(text);
    if (m === null) return undefined;
    const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
    const [h, mi, s] = [Number(m[4] ?? 0), Number(m[5] ?? 0), Number(m[6] ?? 0)];
    if (mo < 1 || mo > 12 || d < 1 || d > daysInMonth(y, mo) || h > 23 || mi > 59 || s > 59) return undefined;
    const offset = zoneSeconds(m[8]);
    if (offset === undefined) return undefined;
    seconds = daysFromCivil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset;
    fraction = m[7];
  }
  const digits = (fraction ?? '').padEnd(9, '0');
  const micros = Number(digits.slice(0, 6));
  // Nanoseconds are cut toward zero (BigInt division of the stored integer): up for an instant before 1970.
  const cutUp = seconds < 0 && Number(digits.slice(6)) !== 0 ? 1 : 0;
  return (seconds * 1_000_000 + micros + cutUp) / 1000;
}

/**
 * `Z`, `+hh`, `+hh:mm`, `+hhmm`, `+hh:mm:ss`, `+hhmmss` as seconds east of UTC (0 when absent);
 * undefined when out of range. Seconds are what pandas writes for a zone's historic offsets
 * (Asia/Kolkata's local mean time `+05:21:10`, Amsterdam's of 1890 `+00:19:32`): refused, such a
 * column could not be compared with its Parquet.
 */
function zoneSeconds(zone: string | undefined): number | undefined {
  if (zone === undefined || zone === 'Z') return 0;
  const digits = zone.slice(1).replaceAll(':', '');
  const h = Number(digits.slice(0, 2));
  const mi = Number(digits.slice(2, 4) || 0);
  const s = Number(digits.slice(4) || 0);
  if (h > 23 || mi > 59 || s > 59) return undefined;
  return (zone[0] === '-' ? -1 : 1) * (h * 3600 + mi * 60 + s);
}

function daysInMonth(y: number, mo: number): number {
  if (mo === 2) return (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(mo) ? 30 : 31;
}

/** Days from 1970-01-01 to the proleptic Gregorian date y-mo-d (Howard Hinnant's days_from_civil). */
function daysFromCivil(y: number, mo: number, d: number): number {
  const year = mo <= 2 ? y - 1 : y;
  const era = Math.floor(year / 400);
  const yoe = year - era * 400;
  const doy = Math.floor((153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5) + d - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}
