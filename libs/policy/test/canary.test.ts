import { describe, expect, it } from 'vitest';
import { canaryPosition, inCanary, murmur3 } from '../src/index.js';

const utf8 = (s: string) => new TextEncoder().encode(s);

describe('canary assignment', () => {
  it('is MurmurHash3 x86_32 (reference vectors)', () => {
    expect(murmur3(utf8(''), 0)).toBe(0);
    expect(murmur3(utf8(''), 1)).toBe(0x514e28b7);
    expect(murmur3(utf8('test'), 0x9747b28c)).toBe(0x704b81dc);
    expect(murmur3(utf8('Hello, world!'), 0x9747b28c)).toBe(0x24884cba);
    expect(murmur3(utf8('The quick brown fox jumps over the lazy dog'), 0x9747b28c)).toBe(0x2fa826cd);
  });

  it.each([0.05, 0.1, 0.25, 0.5])('puts %d of 5,000 entities in the canary within ±2 points', (share) => {
    let n = 0;
    for (let i = 0; i < 5000; i++) if (inCanary('fraud:v7', `user-${i}`, share)) n++;
    expect(Math.abs(n / 5000 - share)).toBeLessThanOrEqual(0.02);
  });

  it('is uniform on [0, 1): chi-square over 20 buckets of 20,000 ids is below the 1% critical value', () => {
    const buckets = new Array<number>(20).fill(0);
    for (let i = 0; i < 20_000; i++) {
      const p = canaryPosition('fraud:v7', String(i));
      expect(p).toBeGreaterThanOrEqual(0);
      expect(p).toBeLessThan(1);
      buckets[Math.floor(p * 20)]!++;
    }
    const chi2 = buckets.reduce((acc, c) => acc + (c - 1000) ** 2 / 1000, 0);
    expect(chi2).toBeLessThan(36.19); // χ²(19) 99th percentile
  });

  it('is sticky, monotone in the share, and salted', () => {
    const ids = Array.from({ length: 2000 }, (_, i) => `e${i}`);
    for (const id of ids) {
      expect(canaryPosition('fraud:v7', id)).toBe(canaryPosition('fraud:v7', id));
      if (inCanary('fraud:v7', id, 0.1)) expect(inCanary('fraud:v7', id, 0.2)).toBe(true);
    }
    const a = ids.filter((id) => inCanary('fraud:v7', id, 0.1));
    const b = ids.filter((id) => inCanary('fraud:v8', id, 0.1));
    const overlap = a.filter((id) => b.includes(id)).length;
    expect(overlap / a.length).toBeLessThan(0.3); // independent draws overlap ≈ 10%
    expect(ids.some((id) => inCanary('x', id, 0))).toBe(false);
    expect(ids.every((id) => inCanary('x', id, 1))).toBe(true);
  });

  it('refuses a share outside [0, 1]', () => {
    expect(() => inCanary('x', 'e', 1.5)).toThrow(/canary share must be in \[0, 1\], got 1.5/);
    expect(() => inCanary('x', 'e', Number.NaN)).toThrow(RangeError);
  });
});
