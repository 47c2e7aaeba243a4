import { describe, expect, it } from 'vitest';
import { admitLine, keyedLineLimit, lineLimit } from '../src/line-limit.js';

const MINUTE = 60_000;

describe('admitLine', () => {
  it('writes the first line, then none until a whole interval has passed: at interval − 1 ms left out, at the interval written', () => {
    const limit = lineLimit();
    expect(admitLine(limit, 1_000, MINUTE)).toBe(0);
    expect(admitLine(limit, 1_000, MINUTE)).toBeUndefined();
    expect(admitLine(limit, 1_000 + MINUTE - 1, MINUTE)).toBeUndefined();
    expect(admitLine(limit, 1_000 + MINUTE, MINUTE)).toBe(2);
    expect(limit).toEqual({ loggedAt: 1_000 + MINUTE, unlogged: 0 });
  });

  it('counts from the line written: the next one says only what was left out after it', () => {
    const limit = lineLimit();
    admitLine(limit, 0, MINUTE);
    for (let at = 1; at <= 5; at++) admitLine(limit, at, MINUTE);
    expect(admitLine(limit, MINUTE, MINUTE)).toBe(5);
    expect(admitLine(limit, MINUTE + 1, MINUTE)).toBeUndefined();
    expect(admitLine(limit, 2 * MINUTE, MINUTE)).toBe(1);
    // A line written long after the last: none left out, and the interval starts from it.
    expect(admitLine(limit, 10 * MINUTE, MINUTE)).toBe(0);
    expect(admitLine(limit, 11 * MINUTE - 1, MINUTE)).toBeUndefined();
  });

  it("counts a line's weight (a batch's count), not the line: the written line's own weight is not in what it returns", () => {
    const limit = lineLimit();
    expect(admitLine(limit, 0, MINUTE, 4)).toBe(0);
    expect(admitLine(limit, 10, MINUTE, 3)).toBeUndefined();
    expect(admitLine(limit, 20, MINUTE, 5)).toBeUndefined();
    expect(limit.unlogged).toBe(8);
    expect(admitLine(limit, MINUTE, MINUTE, 7)).toBe(8);
    expect(limit.unlogged).toBe(0);
  });

  it('a weight of 0 flushes what was left out once the interval is up, and with nothing left out writes nothing nor takes the interval', () => {
    const limit = lineLimit();
    expect(admitLine(limit, 0, MINUTE, 0)).toBeUndefined(); // nothing to say, even as the first line
    expect(limit).toEqual(lineLimit());
    expect(admitLine(limit, 5, MINUTE, 2)).toBe(0); // the first event is written at once
    expect(admitLine(limit, 10, MINUTE, 3)).toBeUndefined();
    expect(admitLine(limit, 20, MINUTE, 0)).toBeUndefined(); // within the interval: still waiting
    expect(admitLine(limit, MINUTE + 5, MINUTE, 0)).toBe(3); // the count left out, flushed
    expect(admitLine(limit, 3 * MINUTE, MINUTE, 0)).toBeUndefined(); // none left out: no line
    expect(limit).toEqual({ loggedAt: MINUTE + 5, unlogged: 0 });
    expect(admitLine(limit, 3 * MINUTE, MINUTE, 1)).toBe(0); // an event after it is written at once
  });
});

describe('keyedLineLimit', () => {
  it('limits each key on its own, counting per key', () => {
    const limits = keyedLineLimit<string>({ intervalMs: MINUTE, maxKeys: 10 });
    expect(limits.admit('a', 0)).toBe(0);
    expect(limits.admit('b', 1)).toBe(0);
    expect(limits.admit('a', 2)).toBeUndefined();
    expect(limits.admit('a', 3, 4)).toBeUndefined();
    expect(limits.admit('b', MINUTE)).toBeUndefined(); // b's interval is from 1
    expect(limits.admit('a', MINUTE)).toBe(5);
    expect(limits.admit('b', MINUTE + 1)).toBe(1);
    expect(limits.admit('a', MINUTE + 1)).toBeUndefined();
    expect(limits.size).toBe(2);
  });

  it('keeps maxKeys keys: at the bound all are remembered, past it the one written longest ago is forgotten (its next line written at once)', () => {
    const limits = keyedLineLimit<string>({ intervalMs: MINUTE, maxKeys: 2 });
    limits.admit('a', 0);
    limits.admit('b', 1);
    expect(limits.size).toBe(2);
    expect(limits.admit('a', 2)).toBeUndefined();
    // A line left out does not renew its key: a (written at 0) is still the oldest.
    expect(limits.admit('c', 4)).toBe(0);
    expect(limits.size).toBe(2);
    expect(limits.admit('b', 5)).toBeUndefined();
    expect(limits.admit('c', 6)).toBeUndefined();
    expect(limits.admit('a', 7)).toBe(0); // forgotten, its count with it: written at once; b goes
    expect(limits.admit('c', 8)).toBeUndefined();
    expect(limits.admit('b', 9)).toBe(0);
    expect(limits.size).toBe(2);
  });

  it('a key written again moves to the back: the least recently written goes first', () => {
    const limits = keyedLineLimit<string>({ intervalMs: 10, maxKeys: 2 });
    limits.admit('a', 0);
    limits.admit('b', 5);
    expect(limits.admit('a', 10)).toBe(0); // a written again: b is now the oldest
    expect(limits.admit('c', 11)).toBe(0);
    expect(limits.admit('a', 12)).toBeUndefined(); // a kept
    expect(limits.admit('b', 13)).toBe(0); // b forgotten
  });

  it('a flush (weight 0) of a key with nothing left out adds no key', () => {
    const limits = keyedLineLimit<string>({ intervalMs: MINUTE, maxKeys: 1 });
    limits.admit('a', 0);
    expect(limits.admit('b', 1, 0)).toBeUndefined();
    expect(limits.size).toBe(1);
    expect(limits.admit('a', 2)).toBeUndefined(); // a was not pushed out
  });
});

describe("keyedLineLimit with onFull: 'overflow'", () => {
  it('past maxKeys a new key is counted into one overflow line per interval, the remembered keys kept', () => {
    const limits = keyedLineLimit<string>({ intervalMs: MINUTE, maxKeys: 2, onFull: 'overflow' });
    expect(limits.overflow(0)).toBeUndefined(); // nothing left out
    expect(limits.admit('a', 0)).toBe(0);
    expect(limits.admit('b', 1)).toBe(0);
    expect(limits.admit('c', 2, 3)).toBeUndefined(); // no room: counted, not written
    expect(limits.admit('d', 3)).toBeUndefined();
    expect(limits.admit('c', 4, 2)).toBeUndefined();
    expect(limits.size).toBe(2);
    expect(limits.overflow(5)).toEqual({ keys: 2, keysAtLeast: false, weight: 6 }); // the first at once
    expect(limits.admit('e', 6)).toBeUndefined();
    expect(limits.overflow(7)).toBeUndefined(); // within its interval: waits
    expect(limits.admit('a', 8)).toBeUndefined(); // a and b were not pushed out
    expect(limits.admit('b', 9)).toBeUndefined();
    expect(limits.overflow(5 + MINUTE)).toEqual({ keys: 1, keysAtLeast: false, weight: 1 });
    expect(limits.overflow(5 + 3 * MINUTE)).toBeUndefined(); // nothing left out since
  });

  it('many keys cycling write at most maxKeys + 1 lines per interval (evicting wrote one per event)', () => {
    const run = (onFull: 'evict' | 'overflow') => {
      const limits = keyedLineLimit<number>({ intervalMs: 5 * MINUTE, maxKeys: 1_000, onFull });
      let lines = 0;
      for (let i = 0; i < 15_000; i++) {
        const at = i * 4; // 60 s
        if (limits.admit(i % 1_500, at) !== undefined) lines++;
        if (limits.overflow(at) !== undefined) lines++;
      }
      return lines;
    };
    expect(run('evict')).toBe(15_000);
    expect(run('overflow')).toBe(1_001);
  });

  it('distinct keys of the overflow are counted up to maxKeys, then said to be at least that many', () => {
    const limits = keyedLineLimit<string>({ intervalMs: MINUTE, maxKeys: 2, onFull: 'overflow' });
    limits.admit('a', 0);
    limits.admit('b', 0);
    for (const k of ['c', 'd', 'd', 'e', 'f']) limits.admit(k, 1);
    expect(limits.overflow(2)).toEqual({ keys: 2, keysAtLeast: true, weight: 5 });
  });

  it('a key whose interval has passed makes room (its next line would be written at once); what it left out goes to the overflow', () => {
    const limits = keyedLineLimit<string>({ intervalMs: MINUTE, maxKeys: 2, onFull: 'overflow' });
    limits.admit('a', 0);
    limits.admit('b', 10);
    expect(limits.admit('a', 20, 4)).toBeUndefined(); // a left 4 out
    expect(limits.admit('c', MINUTE - 1)).toBeUndefined(); // a not expired yet: c overflows
    expect(limits.overflow(MINUTE - 1)).toEqual({ keys: 1, keysAtLeast: false, weight: 1 });
    expect(limits.admit('c', MINUTE)).toBe(0); // a expired: forgotten, c remembered
    expect(limits.size).toBe(2);
    expect(limits.admit('b', MINUTE + 1)).toBeUndefined(); // b remembered: within its interval (written at 10)
    // a's 4, and a counted among the overflow's keys (it said 0 keys for them; a regression review)
    expect(limits.overflow(2 * MINUTE)).toEqual({ keys: 1, keysAtLeast: false, weight: 4 });
  });

  it('a flush (weight 0) of an unknown key takes no room; evict mode has no overflow', () => {
    const limits = keyedLineLimit<string>({ intervalMs: MINUTE, maxKeys: 1, onFull: 'overflow' });
    limits.admit('a', 0);
    expect(limits.admit('b', MINUTE, 0)).toBeUndefined();
    expect(limits.overflow(MINUTE)).toBeUndefined();
    expect(limits.admit('a', MINUTE)).toBe(0); // still remembered (nothing left out since its line)
    const evicting = keyedLineLimit<string>({ intervalMs: MINUTE, maxKeys: 1 });
    evicting.admit('a', 0);
    expect(evicting.admit('b', 1)).toBe(0);
    expect(evicting.overflow(2)).toBeUndefined();
  });
});
