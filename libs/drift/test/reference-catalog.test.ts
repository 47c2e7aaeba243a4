import { describe, expect, it } from 'vitest';
import { ReferenceCatalog } from '../src/reference-catalog.js';

const limits = { maxEntries: 3, absentTtlMs: 250, presentTtlMs: 60_000 };

describe('ReferenceCatalog', () => {
  it('trusts a reference id for presentTtlMs and "none" for absentTtlMs; a pair never asked is stale', () => {
    const c = new ReferenceCatalog(limits);
    expect(c.stale('a', 0)).toBe(true);
    expect(c.has('a')).toBe(false);
    c.record('a', 'r1', 1_000);
    c.record('b', undefined, 1_000);
    expect([c.has('a'), c.referenceId('a'), c.has('b'), c.referenceId('b')]).toEqual([true, 'r1', false, undefined]);
    expect([c.stale('a', 1_249), c.stale('b', 1_249)]).toEqual([false, false]);
    expect([c.stale('a', 1_250), c.stale('b', 1_250)]).toEqual([false, true]);
    expect(c.stale('a', 61_000)).toBe(true);
    expect(c.has('a')).toBe(true); // a stale answer still answers until asked again
  });

  it('keeps at most maxEntries answers, least recently used dropped, plus the held batch whatever the bound', () => {
    const c = new ReferenceCatalog(limits);
    c.hold(['a', 'b', 'c', 'd', 'e']); // a batch of five pairs, none answered yet
    for (const k of ['a', 'b', 'c', 'd', 'e']) c.record(k, `r-${k}`, 0);
    expect(['a', 'b', 'c', 'd', 'e'].map((k) => c.referenceId(k))).toEqual(['r-a', 'r-b', 'r-c', 'r-d', 'r-e']);
    expect(c.size).toBe(5);
    c.record('f', 'r-f', 0); // a promotion read during the batch: held ones stay
    expect(c.has('a')).toBe(true);
    c.hold(['f']); // the next batch: the others fall back to the LRU's bound
    expect(c.size).toBe(3);
    expect(['a', 'b', 'c', 'd', 'e', 'f'].filter((k) => c.has(k))).toEqual(['d', 'e', 'f']);
    c.record('d', undefined, 5); // a held or kept answer is replaced by the newer one
    expect(c.has('d')).toBe(false);
  });
});
