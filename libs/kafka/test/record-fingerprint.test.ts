import { describe, expect, it } from 'vitest';
import { recordFingerprint } from '../src/record-fingerprint.js';

const record = (key: string | null, value: string | null, timestamp = '1700000000000') => ({
  key: key === null ? null : Buffer.from(key),
  value: value === null ? null : Buffer.from(value),
  timestamp,
});

describe('recordFingerprint', () => {
  it('is the same for the same timestamp, key and value', () => {
    expect(recordFingerprint(record('k', 'v'))).toBe(recordFingerprint(record('k', 'v')));
  });

  it('tells apart any difference: timestamp, key, value, null from empty, a split of the same bytes', () => {
    const prints = [
      record('k', 'v'),
      record('k', 'v', '1700000000001'),
      record('k2', 'v'),
      record('k', 'v2'),
      record(null, 'v'),
      record('', 'v'),
      record('k', null),
      record('k', ''),
      record('kv', ''),
      record('', 'kv'),
    ].map(recordFingerprint);
    expect(new Set(prints).size).toBe(prints.length);
  });
});
