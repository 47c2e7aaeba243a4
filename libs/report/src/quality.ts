import { maxOf } from '@driftline/core';
import { groupBy } from './group.js';
import type { QualityCheck, QualityPoint } from './types.js';

const finite = (v: number | null | undefined): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * Each check (feature · expectation) over `points`, every window and version counted: the most
 * failed first, then by feature and expectation. The warehouse reader computes the same in SQL
 * (its rows are not read one by one: 90 days of 5-minute windows were 4 GB).
 */
export function qualityChecks(points: readonly QualityPoint[]): QualityCheck[] {
  return [...groupBy(points, (p) => `${p.feature}\u0000${p.expectation}`).values()]
    .map((list) => {
      const observed = list.map((p) => p.observed).filter(finite);
      const first = [...list].sort(
        (a, b) => a.windowStart - b.windowStart || (a.version < b.version ? -1 : a.version > b.version ? 1 : 0),
      )[0]!;
      return {
        feature: first.feature,
        expectation: first.expectation,
        windows: list.length,
        failed: list.filter((p) => !p.passed).length,
        worst: observed.length === 0 ? null : maxOf(observed),
        bound: first.bound,
      };
    })
    .sort(
      (a, b) =>
        b.failed - a.failed ||
        (a.feature < b.feature ? -1 : a.feature > b.feature ? 1 : 0) ||
        (a.expectation < b.expectation ? -1 : a.expectation > b.expectation ? 1 : 0),
    );
}
