import { describe, expect, it } from 'vitest';
import {
  ALL_SEGMENT,
  boundSegments,
  classificationMetrics,
  computeWindow,
  type Metrics,
  MISSING_SEGMENT,
  type PerformanceRow,
  regressionMetrics,
  rocAuc,
  type Task,
} from '../src/index.js';
import { type LabeledRow, windowOf } from './window-of.js';

/** A small seeded generator (mulberry32): the same windows on every run. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** ROC AUC by average ranks over one sorted index array: the textbook Mann-Whitney form. */
function rankAuc(labels: readonly number[], scores: readonly number[]): number | null {
  const order = labels.map((_, i) => i).sort((a, b) => (scores[a] as number) - (scores[b] as number));
  let positives = 0;
  let rankSum = 0;
  for (let i = 0; i < order.length; ) {
    let j = i;
    while (j + 1 < order.length && scores[order[j + 1] as number] === scores[order[i] as number]) j++;
    for (let k = i; k <= j; k++) {
      if (labels[order[k] as number] === 1) {
        positives++;
        rankSum += (i + j + 2) / 2;
      }
    }
    i = j + 1;
  }
  const negatives = labels.length - positives;
  if (positives === 0 || negatives === 0) return null;
  return (rankSum - (positives * (positives + 1)) / 2) / (positives * negatives);
}

/** The window's rows computed row object by row object, each slice filtered from the whole. */
function naiveWindow(
  task: Task,
  features: readonly string[],
  maxSegments: number,
  labeled: readonly LabeledRow[],
  expired: ReadonlyArray<readonly string[]>,
  pending: number,
): PerformanceRow[] {
  const metricsOf = (rows: readonly LabeledRow[]): { metrics: Metrics; invalid: number } => {
    const valid = task === 'classification' ? rows.filter((r) => r.label === 0 || r.label === 1) : rows;
    const y = valid.map((r) => r.label);
    const p = valid.map((r) => r.prediction);
    // Any invalid label: no classification metrics (what it meant is unknown).
    const metrics =
      valid.length === 0 || valid.length < rows.length
        ? (Object.fromEntries(Object.keys(regressionMetrics([1], [1])).map((k) => [k, null])) as Metrics)
        : task === 'classification'
          ? classificationMetrics(y, p, 0.5)
          : regressionMetrics(y, p);
    return { metrics, invalid: rows.length - valid.length };
  };
  const rowOf = (feature: string, segment: string, rows: readonly LabeledRow[], exp: number, pend: number) => {
    const predictions = rows.length + exp + pend;
    const { metrics, invalid } = metricsOf(rows);
    return {
      segmentFeature: feature,
      segment,
      predictions,
      labeled: rows.length,
      expired: exp,
      pending: pend,
      labelCoverage: predictions === 0 ? null : (rows.length - invalid) / predictions,
      invalidLabels: invalid,
      metrics,
    };
  };
  const out: PerformanceRow[] = [rowOf('', ALL_SEGMENT, labeled, expired.length, pending)];
  features.forEach((feature, f) => {
    const value = (s: readonly string[]) => s[f] ?? MISSING_SEGMENT;
    const counts = new Map<string, number>();
    for (const s of [...labeled.map((r) => r.segments), ...expired])
      counts.set(value(s), (counts.get(value(s)) ?? 0) + 1);
    const bucket = boundSegments(counts, maxSegments);
    const segments = [...new Set([...counts.keys()].map(bucket))].sort();
    for (const s of segments) {
      out.push(
        rowOf(
          feature,
          s,
          labeled.filter((r) => bucket(value(r.segments)) === s),
          expired.filter((e) => bucket(value(e)) === s).length,
          0,
        ),
      );
    }
  });
  return out;
}

describe('window columns', () => {
  it('ROC AUC by sorted classes equals the rank form, ties included, bit for bit', () => {
    for (let seed = 1; seed <= 40; seed++) {
      const next = random(seed);
      const n = 1 + Math.floor(next() * 3_000);
      const levels = seed % 3 === 0 ? 7 : 1_000_000; // many ties, or almost none
      const scores = Array.from({ length: n }, () => Math.floor(next() * levels) / levels);
      const labels = scores.map((s) => (next() < 0.2 + 0.6 * s ? 1 : 0));
      expect(rocAuc(labels, scores), `seed ${seed}`).toBe(rankAuc(labels, scores));
    }
  });

  it('every row of a window equals the one computed from row objects, segments folded and missing', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const next = random(seed * 7919);
      const task: Task = seed % 4 === 0 ? 'regression' : 'classification';
      const features = seed % 5 === 0 ? [] : ['country', 'device'];
      const pick = (k: number) => {
        const r = Math.floor(next() * k);
        return r === 0 ? undefined : `v${r}`; // undefined: the row lacks the feature
      };
      const segmentsOf = () => {
        const s = features.map((_, f) => pick(f === 0 ? 12 : 3));
        // A row missing its last feature has a shorter segments array, as a read would give.
        return s.at(-1) === undefined ? (s.slice(0, -1) as string[]) : (s as string[]);
      };
      const labeled = Array.from({ length: Math.floor(next() * 400) }, () => {
        const prediction = Math.round(next() * 20) / 20;
        const label = task === 'regression' ? next() * 10 : next() < 0.03 ? 2 : next() < prediction ? 1 : 0; // 2: an invalid label
        return { prediction, label, segments: segmentsOf() };
      });
      const expired = Array.from({ length: Math.floor(next() * 50) }, segmentsOf);
      const maxSegments = 1 + Math.floor(next() * 8);
      const pending = Math.floor(next() * 5);
      const got = computeWindow({
        task,
        threshold: 0.5,
        segmentFeatures: features,
        maxSegments,
        window: windowOf(features.length, labeled, expired),
        pending,
      });
      expect(got, `seed ${seed}`).toEqual(naiveWindow(task, features, maxSegments, labeled, expired, pending));
    }
  });

  it('takes a window of two million labeled rows in typed arrays', () => {
    const n = 2_000_000;
    const next = random(5);
    const labeled = {
      *[Symbol.iterator]() {
        for (let i = 0; i < n; i++) {
          const p = next();
          yield { prediction: p, label: next() < p ? 1 : 0, segments: [i % 3 === 0 ? 'a' : 'b'] };
        }
      },
    };
    const window = windowOf(1, [...labeled]);
    expect(
      window.predictions.byteLength + window.labels.byteLength + (window.segments[0]?.labeled.byteLength ?? 0),
    ).toBe(20 * n);
    const rows = computeWindow({
      task: 'classification',
      threshold: 0.5,
      segmentFeatures: ['s'],
      maxSegments: 5,
      window,
      pending: 0,
    });
    expect(rows.map((r) => [r.segment, r.labeled])).toEqual([
      [ALL_SEGMENT, n],
      ['a', Math.ceil(n / 3)],
      ['b', n - Math.ceil(n / 3)],
    ]);
    // Scores uniform with P(label=1 | p) = p: positives' scores have density 2p, negatives' 2(1 - p),
    // so AUC = P(X > Y) = ∫∫_{x>y} 4x(1 - y) = 5/6.
    expect(rows[0]?.metrics.roc_auc).toBeCloseTo(5 / 6, 2);
  });
});
