import { describe, expect, it } from 'vitest';
import { DURATION_HINT, formatDuration, parseDurationMs } from '../src/index.js';

describe('parseDurationMs', () => {
  it.each([
    ['500ms', 500],
    ['30s', 30_000],
    ['5m', 300_000],
    ['1.5h', 5_400_000],
    ['7d', 604_800_000],
    ['2w', 1_209_600_000],
    ['250', 250],
    ['0', 0],
    ['0.5s', 500],
    [' 10 s ', 10_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseDurationMs(text)).toBe(ms);
  });

  it.each([
    '',
    's',
    '5 minutes',
    '5M',
    '-5s',
    '1e3',
    '5s5',
    '1h30m',
    '.5s',
    '0.5', // half a millisecond is not a whole number of milliseconds
    '1.0001s',
    '99999999999999999w', // beyond Number.MAX_SAFE_INTEGER ms
  ])('rejects %j', (text) => {
    expect(parseDurationMs(text)).toBeUndefined();
  });

  it('has a hint listing the units for error messages', () => {
    expect(DURATION_HINT).toBe('a duration such as 500ms, 30s, 5m, 1h, 7d or 2w');
  });
});

describe('formatDuration', () => {
  it.each([
    [3_600_000, '1h'],
    [5_400_000, '90m'],
    [1_209_600_000, '2w'],
    [86_400_000, '1d'],
    [1_500, '1500ms'],
    [0, '0ms'],
    [30_000, '30s'],
  ])('%d ms is %s', (ms, text) => {
    expect(formatDuration(ms)).toBe(text);
  });

  it('round-trips through parseDurationMs', () => {
    for (const ms of [1, 999, 1_000, 61_000, 3_600_000, 5_400_000, 604_800_000]) {
      expect(parseDurationMs(formatDuration(ms))).toBe(ms);
    }
  });
});
