import { edgeLabels } from '@driftline/core';
import { missingAsKindOf } from './column-drift.js';
import type { Column } from './columns.js';

/** Shares (0..1) of the reference and the current table in one bin. */
export interface ColumnBin {
  readonly label: string;
  readonly reference: number;
  readonly current: number;
}

/** A column's distribution on both sides, on bins of the reference, for a report. */
export interface ColumnDistribution {
  readonly column: string;
  readonly kind: 'numeric' | 'categorical';
  readonly bins: readonly ColumnBin[];
  /** Present (non-missing) values on each side. */
  readonly referenceCount: number;
  readonly currentCount: number;
}

/**
 * Reference vs current shares of one column. Numeric: right-closed bins at the reference's
 * quantiles (`bins` of them at most; fewer when values repeat). Categorical: the reference's most
 * frequent categories (at most `bins`), then "other" for the rest and for categories new in current.
 * A column numeric on one side only is binned as categories; a current column with no value takes
 * the reference's kind, as `columnDrift` compares it.
 */
export function columnDistribution(reference: Column, currentColumn: Column, bins = 10): ColumnDistribution {
  const current = missingAsKindOf(reference, currentColumn);
  if (reference.kind === 'numeric' && current.kind === 'numeric') {
    const ref = Float64Array.from(reference.values.filter(Number.isFinite)).sort();
    const edges: number[] = [];
    for (let j = 1; j < bins && ref.length > 0; j++) {
      const e = ref[Math.min(ref.length - 1, Math.floor((j * ref.length) / bins))]!;
      if (edges.length === 0 || e > edges[edges.length - 1]!) edges.push(e);
    }
    if (edges.length > 0 && edges[edges.length - 1] === ref[ref.length - 1]) edges.pop();
    const count = (values: Float64Array) => {
      const counts = new Float64Array(edges.length + 1);
      let n = 0;
      for (const x of values) {
        if (!Number.isFinite(x)) continue;
        let lo = 0;
        let hi = edges.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (edges[mid]! < x) lo = mid + 1;
          else hi = mid;
        }
        counts[lo]!++;
        n++;
      }
      return { counts, n };
    };
    const r = count(reference.values);
    const c = count(current.values);
    const edgeText = edgeLabels(edges);
    const labels =
      edges.length === 0
        ? ['all']
        : [
            `≤ ${edgeText[0]}`,
            ...edgeText.slice(1).map((e, j) => `(${edgeText[j]}, ${e}]`),
            `> ${edgeText[edgeText.length - 1]}`,
          ];
    return {
      column: reference.name,
      kind: 'numeric',
      bins: labels.map((label, j) => ({
        label,
        reference: r.n === 0 ? 0 : r.counts[j]! / r.n,
        current: c.n === 0 ? 0 : c.counts[j]! / c.n,
      })),
      referenceCount: r.n,
      currentCount: c.n,
    };
  }
  const tally = (column: Column) => {
    const counts = new Map<string, number>();
    let n = 0;
    for (const v of column.values) {
      if (v === null || (typeof v === 'number' && Number.isNaN(v))) continue;
      const key = String(v);
      counts.set(key, (counts.get(key) ?? 0) + 1);
      n++;
    }
    return { counts, n };
  };
  const r = tally(reference);
  const c = tally(current);
  const top = [...r.counts.entries()]
    .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1))
    .slice(0, bins)
    .map(([k]) => k);
  const shown = new Set(top);
  const other = (t: { counts: Map<string, number> }) =>
    [...t.counts].reduce((sum, [k, v]) => (shown.has(k) ? sum : sum + v), 0);
  const share = (x: number, n: number) => (n === 0 ? 0 : x / n);
  return {
    column: reference.name,
    kind: 'categorical',
    bins: [
      ...top.map((label) => ({
        label,
        reference: share(r.counts.get(label) ?? 0, r.n),
        current: share(c.counts.get(label) ?? 0, c.n),
      })),
      { label: 'other', reference: share(other(r), r.n), current: share(other(c), c.n) },
    ],
    referenceCount: r.n,
    currentCount: c.n,
  };
}
