import { describe, expect, it } from 'vitest';
import { timeTextValue } from '../src/time-text.js';

describe('timeTextValue: ISO-8601 text as the Arrow/Parquet readers number the same value', () => {
  it('reads timestamps (naive as UTC, Z, offsets), dates and times of day, microseconds as the fraction', () => {
    const at = Date.UTC(2025, 0, 9, 12, 31, 18);
    expect(timeTextValue('2025-01-09 12:31:18.076767', 'timestamp')).toBe((at * 1000 + 76_767) / 1000);
    expect(timeTextValue('2025-01-09T12:31:18.076767Z', 'timestamp')).toBe((at * 1000 + 76_767) / 1000);
    expect(timeTextValue('2025-01-09 13:31:18.5+01:00', 'timestamp')).toBe(at + 500);
    expect(timeTextValue('2025-01-09 07:01:18-0530', 'timestamp')).toBe(at);
    expect(timeTextValue('2025-01-09', 'timestamp')).toBe(Date.UTC(2025, 0, 9));
    expect(timeTextValue('2024-02-29', 'date')).toBe(Date.UTC(2024, 1, 29));
    expect(timeTextValue('0001-01-01', 'date')).toBe(Date.UTC(2000, 0, 1) - 730_119 * 86_400_000);
    expect(timeTextValue('12:31:18.076767', 'time')).toBe((45_078 * 1_000_000 + 76_767) / 1000);
    expect(timeTextValue('00:00', 'time')).toBe(0);
  });

  it('reads offsets with seconds, as pandas writes historic ones (Kolkata 1875 +05:21:10), colons or none', () => {
    // pandas' to_csv of Asia/Kolkata and Europe/Amsterdam (1890) timestamps: local mean time offsets.
    const utc = Date.UTC(1875, 0, 1, 10, 14, 59);
    expect(timeTextValue('1875-01-01 15:36:09.000001+05:21:10', 'timestamp')).toBe((utc * 1000 + 1) / 1000);
    expect(timeTextValue('1875-01-01T15:36:09.000001+052110', 'timestamp')).toBe((utc * 1000 + 1) / 1000);
    expect(timeTextValue('1890-06-01 12:19:32+00:19:32', 'timestamp')).toBe(Date.UTC(1890, 5, 1, 12));
    expect(timeTextValue('1890-06-01 11:40:28-00:19:32', 'timestamp')).toBe(Date.UTC(1890, 5, 1, 12));
    expect(timeTextValue('1890-06-01 11:40:28-001932', 'timestamp')).toBe(Date.UTC(1890, 5, 1, 12));
    expect(timeTextValue('2025-01-09 17:31:18+05', 'timestamp')).toBe(Date.UTC(2025, 0, 9, 12, 31, 18));
    // Impossible or mixed spellings stay refused.
    for (const text of [
      '1890-06-01 12:00:00+00:19:60',
      '1890-06-01 12:00:00+00:1932',
      '1890-06-01 12:00:00+0019:32',
      '1890-06-01 12:00:00+00:19:3',
      '1890-06-01 12:00:00+001',
      '1890-06-01 12:00:00+00:19:32.5',
    ]) {
      expect(timeTextValue(text, 'timestamp'), text).toBeUndefined();
    }
  });

  it('cuts nanoseconds to microseconds toward zero, as the readers cut the stored integer', () => {
    expect(timeTextValue('1970-01-01 00:00:01.000001999', 'timestamp')).toBe(1000.001);
    // Before 1970 the stored integer is negative: toward zero is up.
    expect(timeTextValue('1969-12-31 23:59:59.000001999', 'timestamp')).toBe(
      Number((-999_998_001n / 1000n).toString()) / 1000,
    );
  });

  it('refuses anything else: impossible dates and times, other spellings, blanks', () => {
    for (const text of [
      '2025-02-29',
      '2025-13-01',
      '2025-01-09 24:00:00',
      '2025-01-09 12:60',
      '2025-01-09 12:00:00+25:00',
      '2025/01/09',
      '09.01.2025',
      ' 2025-01-09',
      '2025-01-09Z',
      'yesterday',
      '1736425878076',
    ]) {
      expect(timeTextValue(text, 'timestamp'), text).toBeUndefined();
    }
    for (const text of ['24:00', '12:31:60', '2025-01-09 12:00', '7:05'])
      expect(timeTextValue(text, 'time'), text).toBeUndefined();
  });
});
