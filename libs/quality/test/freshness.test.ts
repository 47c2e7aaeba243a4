import { describe, expect, it } from 'vitest';
import { FreshnessTracker, MAX_FRESHNESS_ENTRIES } from '../src/index.js';

const view = { view: 'profile', maxLagMs: 3_000 };
const row = (r: { scope: string; lagMs: number; passed: boolean; lowerBound: boolean; events: number }) => [
  r.scope,
  r.lagMs,
  r.passed,
  r.lowerBound,
  r.events,
];

describe('FreshnessTracker: partitions assigned and revoked', () => {
  it('reports an assigned partition that never sees an event, failing once max_lag has passed since the assignment', () => {
    // A restart (or a rebalance) after the producer died: nothing is ever observed here.
    const t = new FreshnessTracker([view]);
    t.assigned('profile', 'f/0', 10_000);
    expect(t.evaluate(11_000, 12_000).map(row)).toEqual([['f/0', 2_000, true, true, 0]]);
    expect(t.evaluate(12_000, 13_000).map(row)).toEqual([['f/0', 3_000, true, true, 0]]);
    const late = t.evaluate(13_000, 14_000);
    expect(late.map(row)).toEqual([['f/0', 4_000, false, true, 0]]);
    expect(late[0]).toMatchObject({ newestEventTime: null, assignedAt: 10_000 });
    // Assigned after the end of the window evaluated: no lag yet.
    t.assigned('profile', 'f/1', 14_500);
    expect(t.evaluate(13_000, 14_000).find((r) => r.scope === 'f/1')?.lagMs).toBe(0);
  });

  it('counts from the later of the assignment and the newest event (never more than the true lag)', () => {
    const t = new FreshnessTracker([view]);
    t.assigned('profile', 'f/0', 10_000);
    t.observe('profile', 'f/0', 4_000); // a backlog event older than the assignment
    expect(t.evaluate(11_000, 12_000).map(row)).toEqual([['f/0', 2_000, true, true, 1]]);
    t.observe('profile', 'f/0', 11_500); // newer than the assignment: exact from here
    const exact = t.evaluate(12_000, 13_000)[0]!;
    expect(row(exact)).toEqual(['f/0', 1_500, true, false, 1]);
    expect(exact.newestEventTime).toBe(11_500);
  });

  it('stops reporting a revoked partition and resumes it when assigned back, its history kept', () => {
    const t = new FreshnessTracker([view]);
    t.assigned('profile', 'f/0', 1_000);
    t.observe('profile', 'f/0', 2_000);
    t.revoked('f/0');
    t.observe('profile', 'f/0', 2_500); // a batch that finished after the revoke
    expect(t.evaluate(3_000, 4_000)).toEqual([]);
    t.assigned('profile', 'f/0', 5_000);
    const back = t.evaluate(5_000, 6_000)[0]!;
    // The new owner's events meanwhile are unknown here: from the new assignment, a lower bound.
    expect(row(back)).toEqual(['f/0', 1_000, true, true, 0]);
    expect(back.newestEventTime).toBe(2_500);
    // Assigned again while owned (a later join that kept it): the assignment time stays.
    t.assigned('profile', 'f/0', 5_900);
    expect(t.evaluate(6_000, 7_000)[0]?.lagMs).toBe(2_000);
  });

  it('ignores views without a freshness expectation, and a partition observed before it is assigned is owned', () => {
    const t = new FreshnessTracker([view]);
    t.assigned('other', 'f/0', 1_000);
    t.observe('profile', 'f/1', 8_000);
    t.assigned('profile', 'f/1', 7_000);
    expect(t.evaluate(9_000, 10_000).map(row)).toEqual([['f/1', 2_000, true, false, 1]]);
  });

  it('makes room for an owned partition by forgetting a revoked one when full', () => {
    const t = new FreshnessTracker([view]);
    for (let i = 0; i < MAX_FRESHNESS_ENTRIES; i++) t.assigned('profile', `f/${i}`, 0);
    t.assigned('profile', 'full', 0);
    expect(t.evaluate(0, 1).some((r) => r.scope === 'full')).toBe(false);
    t.revoked('f/0');
    t.assigned('profile', 'full', 0);
    const scopes = new Set(t.evaluate(0, 1).map((r) => r.scope));
    expect(scopes.has('full')).toBe(true);
    expect(scopes.has('f/0')).toBe(false);
    expect(scopes.size).toBe(MAX_FRESHNESS_ENTRIES);
  });
});
