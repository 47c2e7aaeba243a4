// Panels' figures against an independent computation on the rows seeded for them (the review's
// set-ups): booleans against a profile spelling them `True` / `False`, the versions table weighted
// by labels, drift panels of two versions measured in the same window (a canary), events summed
// over versions, low-traffic windows left out of the share of drifted features, and the windows
// whose metrics come from a sample of their labels, and which of a window's estimated and realized
// ROC AUC is current around the label-joiner's realized bounds.
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { STALENESS_BUCKETS } from '@driftline/skew';
import { buildCategoricalProfile } from '@driftline/stats';
import { type ClickHouse, chTime, createClickHouse } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  clickhouseQueriesOnDisk,
  constantsOnDisk,
  expandGrafanaSql,
  type GrafanaQueryContext,
  migrateForDashboards,
} from '../src/index.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-dash-figures-'));
const database = `figs_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
const HOUR = 3_600_000;
const T0 = Date.UTC(2025, 0, 1);

let ch: ClickHouse;

const queries = clickhouseQueriesOnDisk();
const sqlOf = (where: string): string => {
  const q = queries.find((x) => x.where === where);
  if (q === undefined) throw new Error(`no query ${where}`);
  return q.text;
};
const DISTRIBUTION = queries.find((q) => q.repeat === 'distribution_feature')!.where;

type Row = Record<string, unknown>;
interface Result {
  meta: { name: string; type: string }[];
  data: Row[];
}

async function panel(where: string, variables: GrafanaQueryContext['variables'], hours = 4): Promise<Result> {
  return panelOver(where, variables, T0, T0 + hours * HOUR);
}

/** A panel over [from, to] at Grafana's `intervalMs` (the range over the panel's width). */
async function panelOver(
  where: string,
  variables: GrafanaQueryContext['variables'],
  from: number,
  to: number,
  intervalMs = 60_000,
): Promise<Result> {
  const sql = expandGrafanaSql(sqlOf(where), {
    from,
    to,
    intervalMs,
    // The dashboards' constants as shipped (`min_events`), unless the test sets one.
    variables: { ...constantsOnDisk(), ...variables },
  });
  return (await ch.selectTyped(sql)) as unknown as Result;
}

/** A time series row's series, as Grafana's long format reads it: its string columns (the labels). */
function seriesOf(result: Result, row: Row): string {
  return result.meta
    .filter((m) => m.name !== 'time' && /String/.test(m.type))
    .map((m) => String(row[m.name]))
    .join(' ');
}

const prediction = (model: string, i: number, features: Record<string, unknown>) => ({
  model,
  model_version: 'v1',
  prediction_id: `p${i}`,
  entity_id: `e${i}`,
  prediction_time: chTime(T0 + i * 10_000),
  features: JSON.stringify(features),
  prediction: 0.5,
  predicted_class: '1',
});

/** Booleans of the live predictions: 1 in 4 true, every fifth row expired unlabeled. */
const FLAGS = Array.from({ length: 100 }, (_, i) => i % 4 === 0);

async function seedBooleans(model: string, referenceValues: readonly string[]): Promise<void> {
  const profile = buildCategoricalProfile(referenceValues);
  await ch.insert('reference_profiles', [
    {
      model,
      version: 'v1',
      reference_id: 'r1',
      feature: 'flag',
      kind: 'categorical',
      profile: JSON.stringify(profile),
      created_at: chTime(T0 - HOUR),
    },
  ]);
  const rows = FLAGS.map((flag, i) => prediction(model, i, { flag, amount: i }));
  await ch.insert(
    'labeled_predictions',
    rows
      .filter((_, i) => i % 5 !== 0)
      .map((r) => ({ ...r, label_time: r.prediction_time, label: 1, joined_at: r.prediction_time })),
  );
  await ch.insert(
    'unlabeled_predictions',
    rows
      .filter((_, i) => i % 5 === 0)
      .map((r) => ({ ...r, deadline: r.prediction_time, expired_at: r.prediction_time })),
  );
}

interface PerfWindow {
  readonly version: string;
  readonly labeled: number;
  /** Labels not 0 or 1 (rows written before they nulled the metrics still have metrics). */
  readonly invalid?: number;
  readonly accuracy: number | null;
  readonly f1: number | null;
  readonly roc_auc: number | null;
  readonly rmse: number | null;
  /** Labels its metrics were computed from when the window was read as a sample (0680); absent: all. */
  readonly sampled?: number;
}

/**
 * The review's windows (1,000 labels at 0.9 and 10 at 0.1), one with no labels, a regression
 * version, and a version with invalid labels (90 of 100 in a window whose 10 valid ones are right).
 */
const PERF: readonly PerfWindow[] = [
  { version: 'v1', labeled: 1000, accuracy: 0.9, f1: 0.88, roc_auc: 0.95, rmse: null },
  { version: 'v1', labeled: 10, accuracy: 0.1, f1: 0.12, roc_auc: 0.3, rmse: null },
  { version: 'v1', labeled: 0, accuracy: null, f1: null, roc_auc: null, rmse: null },
  { version: 'v2', labeled: 500, accuracy: null, f1: null, roc_auc: null, rmse: 2 },
  { version: 'v2', labeled: 5, accuracy: null, f1: null, roc_auc: null, rmse: 10 },
  { version: 'v3', labeled: 100, invalid: 90, accuracy: 1, f1: 1, roc_auc: null, rmse: null },
  { version: 'v3', labeled: 10, accuracy: 0, f1: 0, roc_auc: null, rmse: null },
];

/**
 * Windows over the label-joiner's bound read as a sample (the README's figures: 996,377 of
 * 2,000,000 labels), one recomputed past the bound twice (a sample, metrics left empty), and exact
 * windows between them.
 */
const SAMPLED: readonly PerfWindow[] = [
  { version: 'v1', labeled: 800, accuracy: 0.9, f1: 0.88, roc_auc: 0.95, rmse: null },
  { version: 'v1', labeled: 2_000_000, accuracy: 0.75, f1: 0.7, roc_auc: 0.83, rmse: null, sampled: 996_377 },
  { version: 'v2', labeled: 900, accuracy: 0.8, f1: 0.78, roc_auc: 0.9, rmse: null, sampled: 0 },
  { version: 'v2', labeled: 1_200_000, accuracy: null, f1: null, roc_auc: null, rmse: null, sampled: 1_000_000 },
];

async function seedPerformance(model: string, windows: readonly PerfWindow[] = PERF): Promise<void> {
  await ch.insert(
    'performance_windows',
    windows.map((w, k) => ({
      model,
      model_version: w.version,
      window_start: chTime(T0 + k * HOUR),
      window_end: chTime(T0 + (k + 1) * HOUR),
      segment_feature: '',
      segment: '',
      task: w.rmse === null ? 'binary' : 'regression',
      predictions: w.labeled,
      labeled: w.labeled,
      expired: 0,
      pending: 0,
      label_coverage: 1,
      invalid_labels: w.invalid ?? 0,
      accuracy: w.accuracy,
      f1: w.f1,
      roc_auc: w.roc_auc,
      rmse: w.rmse,
      sampled_labels: w.sampled ?? 0,
      threshold: 0.5,
      version: 1,
      computed_at: chTime(T0 + (k + 1) * HOUR),
    })),
  );
}

/**
 * Σ x·valid labels / Σ valid labels over the windows of `version` with a value (of x² under the
 * root for RMSE); valid: labeled − invalid.
 */
function labelWeighted(version: string, metric: 'accuracy' | 'f1' | 'roc_auc' | 'rmse'): number {
  const rows = PERF.filter((w) => w.version === version && w[metric] !== null);
  const valid = (w: PerfWindow) => w.labeled - (w.invalid ?? 0);
  const labels = rows.reduce((s, w) => s + valid(w), 0);
  if (metric === 'rmse') return Math.sqrt(rows.reduce((s, w) => s + w[metric]! ** 2 * valid(w), 0) / labels);
  return rows.reduce((s, w) => s + w[metric]! * valid(w), 0) / labels;
}

/** A whole-window row with a CBPE estimate beside its realized ROC AUC (what the estimate panel reads). */
interface EstimatedWindow {
  readonly predictions: number;
  readonly labeled: number;
  readonly invalid?: number;
  /** Labels its metrics came from when read as a sample (0680); absent: all. */
  readonly sampled?: number;
  readonly roc_auc: number | null;
  readonly estimated_roc_auc: number;
}

/**
 * Around the label-joiner's realized bounds (coverage 0.5, DRIFTLINE_JOINER_ALERT_MIN_SAMPLES 100
 * valid labels): the review's window of 90 labels of 150 predictions (coverage 0.6) first.
 */
const ESTIMATED: readonly EstimatedWindow[] = [
  { predictions: 150, labeled: 90, roc_auc: 0.9, estimated_roc_auc: 0.8 },
  { predictions: 160, labeled: 100, roc_auc: 0.91, estimated_roc_auc: 0.81 },
  // 100 valid labels of 129 (29 invalid; rows written before invalid labels nulled the metrics), 99.
  { predictions: 198, labeled: 129, invalid: 29, roc_auc: 0.92, estimated_roc_auc: 0.82 },
  { predictions: 198, labeled: 128, invalid: 29, roc_auc: 0.93, estimated_roc_auc: 0.83 },
  // Read as a sample: the 99 or 100 labels its metrics came from count, not the 2,000,000 labeled.
  { predictions: 2_200_000, labeled: 2_000_000, sampled: 99, roc_auc: 0.94, estimated_roc_auc: 0.84 },
  { predictions: 2_200_000, labeled: 2_000_000, sampled: 100, roc_auc: 0.95, estimated_roc_auc: 0.85 },
  // Enough labels, coverage under 0.5; enough of both, no realized value.
  { predictions: 1001, labeled: 500, roc_auc: 0.96, estimated_roc_auc: 0.86 },
  { predictions: 600, labeled: 500, roc_auc: null, estimated_roc_auc: 0.87 },
];

async function seedEstimated(model: string): Promise<void> {
  await ch.insert(
    'performance_windows',
    ESTIMATED.map((w, k) => ({
      model,
      model_version: 'v1',
      window_start: chTime(T0 + k * HOUR),
      window_end: chTime(T0 + (k + 1) * HOUR),
      segment_feature: '',
      segment: '',
      task: 'binary',
      predictions: w.predictions,
      labeled: w.labeled,
      expired: 0,
      pending: w.predictions - w.labeled,
      label_coverage: (w.labeled - (w.invalid ?? 0)) / w.predictions,
      invalid_labels: w.invalid ?? 0,
      roc_auc: w.roc_auc,
      sampled_labels: w.sampled ?? 0,
      scored: w.predictions,
      estimated_roc_auc: w.estimated_roc_auc,
      threshold: 0.5,
      version: 1,
      computed_at: chTime(T0 + (k + 1) * HOUR),
    })),
  );
}

interface DriftRow {
  readonly version: string;
  readonly feature: string;
  readonly window: number;
  readonly psi: number;
}

/**
 * A canary: in the first window v1 (4 of 4 features drifted) and v2 (1 of 3) are both measured, each
 * against its own reference; in the second only v1 (1 of 4). The prediction is measured by both.
 */
const DRIFT: readonly DriftRow[] = [
  ...['a', 'b', 'c', 'd'].map((feature) => ({ version: 'v1', feature, window: 0, psi: 0.5 })),
  ...['a', 'b', 'c'].map((feature, i) => ({ version: 'v2', feature, window: 0, psi: i === 0 ? 0.3 : 0.01 })),
  ...['a', 'b', 'c', 'd'].map((feature, i) => ({ version: 'v1', feature, window: 1, psi: i === 3 ? 0.4 : 0.05 })),
  { version: 'v1', feature: '__prediction__', window: 0, psi: 0.25 },
  { version: 'v2', feature: '__prediction__', window: 0, psi: 0.02 },
];
const PSI_THRESHOLD = 0.2;

/** A version a day for 12 days, each next one measured beside it in its last hour (a canary). */
const DAILY_VERSIONS = 12;
const DAILY_FEATURES = 20;
const DAILY: readonly DriftRow[] = Array.from({ length: DAILY_VERSIONS * 24 }, (_, window) => {
  const day = Math.floor(window / 24);
  const versions = [day, ...(window % 24 === 23 && day + 1 < DAILY_VERSIONS ? [day + 1] : [])];
  return versions.flatMap((v) =>
    Array.from({ length: DAILY_FEATURES }, (_, f) => ({
      version: `v${v}`,
      feature: `f${f}`,
      window,
      psi: (v * 100 + f * 3 + (window % 24)) / 1000,
    })),
  );
}).flat();

async function seedCanary(model: string, rows: readonly DriftRow[] = DRIFT): Promise<void> {
  await ch.insert(
    'drift_windows',
    rows.map((d) => ({
      model,
      version: d.version,
      reference_id: `ref-${d.version}`,
      feature: d.feature,
      window_start: chTime(T0 + d.window * HOUR),
      window_end: chTime(T0 + (d.window + 1) * HOUR),
      method: 'psi',
      statistic: d.psi,
      p_value: null,
      threshold: PSI_THRESHOLD,
      drifted: d.psi >= PSI_THRESHOLD ? 1 : 0,
      reference_size: 100,
      current_size: 100,
      events: 100,
      late_events: 0,
      source_partitions: 1,
      idle_partitions: 0,
      computed_at: chTime(T0 + (d.window + 1) * HOUR),
    })),
  );
}

/**
 * The drift monitor's row for a window of `version` with late events and no event on time (libs/drift
 * LATE_ONLY_FEATURE / LATE_ONLY_METHOD): it carries the late count and measures nothing.
 */
async function seedLateOnly(model: string, version: string, window: number, late: number): Promise<void> {
  await ch.insert('drift_windows', [
    {
      model,
      version,
      reference_id: `ref-${version}`,
      feature: '__window__',
      window_start: chTime(T0 + window * HOUR),
      window_end: chTime(T0 + (window + 1) * HOUR),
      method: 'late_only',
      statistic: 0,
      p_value: null,
      threshold: 0,
      drifted: 0,
      reference_size: 0,
      current_size: 0,
      events: 0,
      late_events: late,
      source_partitions: 1,
      idle_partitions: 0,
      computed_at: chTime(T0 + (window + 1) * HOUR),
    },
  ]);
}

/** A drift_windows row of `model`: what the events and share panels read, the rest fixed. */
interface CountedRow {
  readonly version: string;
  readonly reference?: string;
  readonly feature: string;
  readonly method?: string;
  readonly window: number;
  readonly psi: number;
  readonly events: number;
  readonly late?: number;
  /** The window's length (an hour when absent): DRIFTLINE_DRIFT_WINDOW changed, windows of two lengths. */
  readonly lengthMs?: number;
}

async function seedCounted(model: string, rows: readonly CountedRow[]): Promise<void> {
  await ch.insert(
    'drift_windows',
    rows.map((d) => ({
      model,
      version: d.version,
      reference_id: d.reference ?? `ref-${d.version}`,
      feature: d.feature,
      window_start: chTime(T0 + d.window * HOUR),
      window_end: chTime(T0 + d.window * HOUR + (d.lengthMs ?? HOUR)),
      method: d.method ?? 'psi',
      statistic: d.psi,
      p_value: d.method === 'ks' ? 0.5 : null,
      threshold: PSI_THRESHOLD,
      drifted: d.psi >= PSI_THRESHOLD ? 1 : 0,
      reference_size: 1000,
      current_size: d.events,
      events: d.events,
      late_events: d.late ?? 0,
      source_partitions: 1,
      idle_partitions: 0,
      computed_at: chTime(T0 + (d.window + 1) * HOUR),
    })),
  );
}

/**
 * The review's window: 300 events of v1 and 100 of a canary v2, each repeated on every feature and
 * method row; v1 also has a second answer of the same events on a re-stored reference (a replay
 * re-summarised them on it). The next window has v1 alone.
 */
const COUNTED: readonly CountedRow[] = [
  ...['a', 'b', 'c'].flatMap((feature) =>
    ['psi', 'ks'].flatMap((method) => [
      { version: 'v1', feature, method, window: 0, psi: 0.05, events: 300, late: 2 },
      { version: 'v2', feature, method, window: 0, psi: 0.05, events: 100, late: 1 },
    ]),
  ),
  ...['a', 'b', 'c'].map((feature) => ({
    version: 'v1',
    reference: 'ref-v1-restored',
    feature,
    window: 0,
    psi: 0.05,
    events: 300,
    late: 2,
  })),
  ...['a', 'b', 'c'].map((feature) => ({ version: 'v1', feature, window: 1, psi: 0.05, events: 250 })),
];

/**
 * DRIFTLINE_DRIFT_WINDOW changed from 5 minutes to an hour: window 0 of v1 has an hour's row (a
 * drifted) and the 5-minute row the previous configuration wrote at the same start (none drifted),
 * both kept since 0730; window 1 an hour's row only.
 */
const TWO_LENGTHS: readonly CountedRow[] = [
  { version: 'v1', feature: 'a', window: 0, psi: 0.5, events: 1200 },
  { version: 'v1', feature: 'b', window: 0, psi: 0.01, events: 1200 },
  { version: 'v1', feature: 'a', window: 0, psi: 0.01, events: 150, lengthMs: HOUR / 12 },
  { version: 'v1', feature: 'b', window: 0, psi: 0.02, events: 150, lengthMs: HOUR / 12, late: 4 },
  { version: 'v1', feature: 'a', window: 1, psi: 0.01, events: 1100 },
  { version: 'v1', feature: 'b', window: 1, psi: 0.01, events: 1100 },
];

/** DRIFTLINE_DRIFT_ALERT_MIN_EVENTS's default: fewer events in a window, no drift alert. */
const ALERT_MIN_EVENTS = 100;

/**
 * Windows of 1, 99, 100 and 5,000 events of v1 (two features; the 1-event window drifted on both
 * with PSI 8.28, as the review measured) and, in the 100-event window, a canary of 5 events drifted.
 */
const LOW_TRAFFIC: readonly CountedRow[] = [
  { version: 'v1', feature: 'a', window: 0, psi: 8.28, events: 1 },
  { version: 'v1', feature: 'b', window: 0, psi: 8.28, events: 1 },
  { version: 'v1', feature: 'a', window: 1, psi: 0.6, events: 99 },
  { version: 'v1', feature: 'b', window: 1, psi: 0.01, events: 99 },
  { version: 'v1', feature: 'a', window: 2, psi: 0.3, events: 100 },
  { version: 'v1', feature: 'b', window: 2, psi: 0.01, events: 100 },
  { version: 'v2', feature: 'a', window: 2, psi: 3.1, events: 5 },
  { version: 'v2', feature: 'b', window: 2, psi: 2.4, events: 5 },
  { version: 'v1', feature: 'a', window: 3, psi: 0.02, events: 5000 },
  { version: 'v1', feature: 'b', window: 3, psi: 0.01, events: 5000 },
];

/** A skew row of one (version, window, feature, partition, log): the outcomes the table sums. */
interface SkewRow {
  readonly version: string;
  readonly window: number;
  readonly feature: string;
  readonly partition: number;
  /** 0: the partition's first log (skew_windows); more: a later one (skew_windows_v2). */
  readonly epoch: number;
  readonly compared: number;
  readonly mismatched: number;
  readonly missingInStore: number;
  readonly missingInPrediction: number;
  readonly newerRow: number;
  readonly expired: number;
}

/**
 * A skew-monitor that lagged past the view's TTL in the second window (migration 0690): most of
 * `amount`'s absent rows are `expired`, not `missing_in_store`, on both logs of partition 1 and for a
 * canary; `country` never expires (`ttl: none`).
 */
const SKEW: readonly SkewRow[] = [
  {
    version: 'v1',
    window: 0,
    feature: 'amount',
    partition: 0,
    epoch: 0,
    compared: 40,
    mismatched: 1,
    missingInStore: 2,
    missingInPrediction: 0,
    newerRow: 1,
    expired: 0,
  },
  {
    version: 'v1',
    window: 1,
    feature: 'amount',
    partition: 0,
    epoch: 0,
    compared: 10,
    mismatched: 2,
    missingInStore: 1,
    missingInPrediction: 0,
    newerRow: 0,
    expired: 30,
  },
  {
    version: 'v1',
    window: 1,
    feature: 'amount',
    partition: 1,
    epoch: 0,
    compared: 5,
    mismatched: 0,
    missingInStore: 0,
    missingInPrediction: 1,
    newerRow: 0,
    expired: 7,
  },
  {
    version: 'v1',
    window: 1,
    feature: 'amount',
    partition: 1,
    epoch: 1,
    compared: 8,
    mismatched: 1,
    missingInStore: 3,
    missingInPrediction: 0,
    newerRow: 2,
    expired: 11,
  },
  {
    version: 'v2',
    window: 1,
    feature: 'amount',
    partition: 0,
    epoch: 0,
    compared: 4,
    mismatched: 0,
    missingInStore: 0,
    missingInPrediction: 0,
    newerRow: 0,
    expired: 5,
  },
  {
    version: 'v1',
    window: 0,
    feature: 'country',
    partition: 0,
    epoch: 0,
    compared: 40,
    mismatched: 0,
    missingInStore: 4,
    missingInPrediction: 0,
    newerRow: 0,
    expired: 0,
  },
  {
    version: 'v1',
    window: 1,
    feature: 'country',
    partition: 1,
    epoch: 1,
    compared: 50,
    mismatched: 0,
    missingInStore: 6,
    missingInPrediction: 2,
    newerRow: 1,
    expired: 0,
  },
];

async function seedSkew(model: string, rows: readonly SkewRow[] = SKEW): Promise<void> {
  const values = (d: SkewRow) => {
    const hist = new Array<number>(STALENESS_BUCKETS).fill(0);
    hist[5] = d.compared;
    return {
      model,
      model_version: d.version,
      window_start: chTime(T0 + d.window * HOUR),
      window_end: chTime(T0 + (d.window + 1) * HOUR),
      feature: d.feature,
      source_topic: 'predictions.v1',
      source_partition: d.partition,
      through_offset: 100,
      sampled: d.compared + d.missingInStore + d.missingInPrediction + d.newerRow + d.expired,
      compared: d.compared,
      mismatched: d.mismatched,
      numeric_compared: d.feature === 'amount' ? d.compared : 0,
      abs_diff_sum: d.feature === 'amount' ? d.mismatched : 0,
      missing_in_store: d.missingInStore,
      missing_in_prediction: d.missingInPrediction,
      newer_row: d.newerRow,
      expired: d.expired,
      staleness_hist: hist,
      updated_at: chTime(T0 + (d.window + 1) * HOUR),
    };
  };
  await ch.insert('skew_windows', rows.filter((d) => d.epoch === 0).map(values));
  await ch.insert(
    'skew_windows_v2',
    rows.filter((d) => d.epoch > 0).map((d) => ({ ...values(d), log_epoch: d.epoch })),
  );
}

/**
 * A rollback: v1 live in window 0, v2 in window 1, v1 again in window 2 (the review's m000: v1 ->
 * v2 -> v1). v2's reference profile is the newest; each version's predictions of `colour` in its
 * windows, 60 an hour, with its own categories.
 */
const ROLLBACK_WINDOWS = ['v1', 'v2', 'v1'] as const;
const ROLLBACK_REFERENCE = {
  v1: ['red', 'red', 'blue', 'green'],
  v2: ['red', 'blue', 'blue', 'violet'],
} as const;
/** Window 2's (v1) colours: a third each of red, blue and one v1's reference never saw. */
const rollbackColour = (window: number, i: number) =>
  window === 1 ? (i % 2 === 0 ? 'violet' : 'blue') : (['red', 'blue', 'black'] as const)[i % 3]!;

async function seedRollback(model: string): Promise<void> {
  await ch.insert(
    'reference_profiles',
    (['v1', 'v2'] as const).map((version, k) => ({
      model,
      version,
      reference_id: `ref-${version}`,
      feature: 'colour',
      kind: 'categorical',
      profile: JSON.stringify(buildCategoricalProfile(ROLLBACK_REFERENCE[version])),
      created_at: chTime(T0 - HOUR + k * HOUR),
    })),
  );
  await seedCanary(
    model,
    ROLLBACK_WINDOWS.map((version, window) => ({ version, feature: 'colour', window, psi: 0.1 })),
  );
  const rows = ROLLBACK_WINDOWS.flatMap((version, window) =>
    Array.from({ length: 60 }, (_, i) => ({
      ...prediction(model, window * 60 + i, { colour: rollbackColour(window, i) }),
      model_version: version,
      prediction_time: chTime(T0 + window * HOUR + i * 60_000),
    })),
  );
  await ch.insert(
    'labeled_predictions',
    rows.map((r) => ({ ...r, label_time: r.prediction_time, label: 1, joined_at: r.prediction_time })),
  );
}

/** Two days of 5-minute windows of 10 features (PSI and KS rows): 5,760 rows of each method. */
const LONG_FEATURES = 10;
const LONG_WINDOWS = 2 * 24 * 12;
const FIVE_MINUTES = HOUR / 12;
const longPsi = (f: number, w: number) => ((w * 7 + f * 13) % 50) / 100;
const longP = (f: number, w: number) => ((w * 11 + f * 3) % 97) / 100 + 0.005;

async function seedLongRange(model: string): Promise<void> {
  await ch.insert(
    'drift_windows',
    Array.from({ length: LONG_WINDOWS }, (_, w) =>
      Array.from({ length: LONG_FEATURES }, (_, f) =>
        (['psi', 'ks'] as const).map((method) => ({
          model,
          version: 'v1',
          reference_id: 'ref-v1',
          feature: `f${f}`,
          window_start: chTime(T0 + w * FIVE_MINUTES),
          window_end: chTime(T0 + (w + 1) * FIVE_MINUTES),
          method,
          statistic: method === 'psi' ? longPsi(f, w) : 0.1,
          p_value: method === 'ks' ? longP(f, w) : null,
          threshold: method === 'psi' ? PSI_THRESHOLD : 0.05,
          drifted: 0,
          reference_size: 1000,
          current_size: 500,
          events: 500,
          late_events: 0,
          source_partitions: 1,
          idle_partitions: 0,
          computed_at: chTime(T0 + (w + 1) * FIVE_MINUTES),
        })),
      ),
    ).flat(2),
  );
}

beforeAll(async () => {
  ch = await createClickHouse({ mode: 'embedded', path, database });
  await migrateForDashboards(ch);
  // A reference built by `driftline reference` from a pandas CSV (cells as written) and one built
  // from JSON booleans: the drift monitor keys live booleans as each spells them.
  await seedBooleans('pandas-flags', ['True', 'False', 'False', 'True', 'True']);
  await seedBooleans('json-flags', ['true', 'false', 'false', 'true', 'true']);
  await seedPerformance('weighted');
  await seedPerformance('sampled', SAMPLED);
  await seedEstimated('estimated');
  await seedCanary('canary');
  await seedCanary('daily', DAILY);
  // The canary's rows, then a third window with 3 late events of v1 and nothing on time.
  await seedCanary('late-only');
  await seedLateOnly('late-only', 'v1', 2, 3);
  await seedCounted('events-sum', COUNTED);
  await seedCounted('low-traffic', LOW_TRAFFIC);
  // Apart: one insert of both lengths' rows would be merged within the block under 0101's key.
  await seedCounted('two-lengths', TWO_LENGTHS.slice(0, 2));
  await seedCounted('two-lengths', TWO_LENGTHS.slice(2));
  await seedCounted('two-lengths-latest', TWO_LENGTHS.slice(0, 2));
  await seedCounted('two-lengths-latest', TWO_LENGTHS.slice(2, 4));
  await seedSkew('skew-expired');
  await seedRollback('rollback');
  await seedLongRange('long-range');
}, 60_000);

afterAll(async () => {
  await ch?.close();
});

describe('panel figures against an independent computation on the seeded rows', () => {
  for (const [model, spelling] of [
    ['pandas-flags', { true: 'True', false: 'False' }],
    ['json-flags', { true: 'true', false: 'false' }],
  ] as const) {
    it(`distribution of a boolean against a profile spelling it ${spelling.true} / ${spelling.false}`, async () => {
      const { data } = await panel(DISTRIBUTION, { database, model, version: ['v1'], distribution_feature: 'flag' });
      const share = (category: string) =>
        FLAGS.filter((f) => (f ? spelling.true : spelling.false) === category).length / FLAGS.length;
      expect(data.map((r) => String(r.bucket)).sort()).toEqual(
        [spelling.false, spelling.true, '(unseen values)'].sort(),
      );
      for (const r of data) expect(Number(r.current), String(r.bucket)).toBeCloseTo(share(String(r.bucket)), 12);
      expect(share(spelling.true)).toBe(0.25);
    });
  }

  it('versions in the range: metrics weighted by labels as the model card pools them', async () => {
    const { data } = await panel('panel "Versions in the range" A', { database, model: 'weighted', version: [] }, 8);
    expect(data.map((r) => r.model_version)).toEqual(['v1', 'v2', 'v3']);
    // Whatever the column is called, its figure: the metric's name is in it.
    const column = (row: Row, metric: string) => {
      const names = Object.keys(row).filter((k) => k.includes(metric));
      expect(names, metric).toHaveLength(1);
      return row[names[0]!];
    };
    for (const row of data) {
      const version = String(row.model_version);
      for (const metric of ['accuracy', 'f1', 'roc_auc', 'rmse'] as const) {
        const has = PERF.some((w) => w.version === version && w[metric] !== null);
        const value = column(row, metric);
        if (!has) expect(value, `${version} ${metric}`).toBeNull();
        else expect(Number(value), `${version} ${metric}`).toBeCloseTo(labelWeighted(version, metric), 12);
      }
    }
    // The review's figure: the card's 0.8921, not the plain mean 0.5.
    expect(labelWeighted('v1', 'accuracy')).toBeCloseTo(0.8921, 4);
    // Invalid labels weigh nothing: 10 right of 20 valid, not 100 of 110 labeled.
    expect(Number(column(data.find((r) => r.model_version === 'v3')!, 'accuracy'))).toBeCloseTo(0.5, 12);
    // Coverage of the valid labels, as label_coverage: v3's 20 of 110, not 110 of 110 (found by a review).
    for (const row of data) {
      const windows = PERF.filter((w) => w.version === row.model_version);
      const labeled = windows.reduce((s, w) => s + w.labeled, 0);
      const valid = windows.reduce((s, w) => s + w.labeled - (w.invalid ?? 0), 0);
      expect(Number(row.coverage), String(row.model_version)).toBeCloseTo(valid / labeled, 12);
    }
    expect(Number(data.find((r) => r.model_version === 'v3')!.coverage)).toBeCloseTo(20 / 110, 12);
  });

  it('windows computed on a sample: sampled of labeled labels, and how many per version in the versions table', async () => {
    const at = (k: number) => chTime(T0 + k * HOUR).slice(0, 19);
    const { data } = await panel('panel "Windows computed on a sample" A', { database, model: 'sampled', version: [] });
    // The sampled windows only, the latest first; the exact ones (sampled_labels 0) are not listed.
    expect(
      data.map((r) => ({
        window: String(r.window_start).slice(0, 19),
        version: r.model_version,
        sampled: Number(r.sampled),
        labeled: Number(r.labeled),
      })),
    ).toEqual([
      { window: at(3), version: 'v2', sampled: 1_000_000, labeled: 1_200_000 },
      { window: at(1), version: 'v1', sampled: 996_377, labeled: 2_000_000 },
    ]);
    const one = await panel('panel "Windows computed on a sample" A', { database, model: 'sampled', version: ['v1'] });
    expect(one.data.map((r) => Number(r.sampled))).toEqual([996_377]);
    // Exact windows only: no row.
    expect(
      (await panel('panel "Windows computed on a sample" A', { database, model: 'weighted', version: [] }, 8)).data,
    ).toEqual([]);

    const versions = await panel('panel "Versions in the range" A', { database, model: 'sampled', version: [] });
    expect(versions.data.map((r) => [r.model_version, Number(r.sampled_windows)])).toEqual([
      ['v1', 1],
      ['v2', 1],
    ]);
    const exact = await panel('panel "Versions in the range" A', { database, model: 'weighted', version: [] }, 8);
    expect(exact.data.map((r) => Number(r.sampled_windows))).toEqual([0, 0, 0]);
  });

  it("estimated vs realized ROC AUC: the realized value is current only where the label-joiner's alerts judge it (found by a review)", async () => {
    const { data } = await panel(
      'panel "Estimated vs realized ROC AUC" A',
      { database, model: 'estimated', version: [] },
      ESTIMATED.length,
    );
    // The alerts' rule (libs/performance alerts.ts realizedJudges) at the label-joiner's defaults:
    // coverage ≥ 0.5, ≥ 100 valid labels used (the sample's when sampled, else labeled − invalid),
    // a finite realized value.
    const judged = (w: EstimatedWindow) =>
      (w.labeled - (w.invalid ?? 0)) / w.predictions >= 0.5 &&
      (w.sampled !== undefined ? w.sampled : w.labeled - (w.invalid ?? 0)) >= 100 &&
      w.roc_auc !== null &&
      Number.isFinite(w.roc_auc);
    expect(data.map((r) => Number(r.current))).toEqual(
      ESTIMATED.map((w) => (judged(w) ? w.roc_auc : w.estimated_roc_auc)),
    );
    // The review's window (90 labels, coverage 0.6) shows the estimate, as its alert judges; 100 the realized.
    expect(data.map((r) => (Number(r.current) === Number(r.realized) ? 'realized' : 'estimated'))).toEqual([
      'estimated',
      'realized',
      'realized',
      'estimated',
      'estimated',
      'realized',
      'estimated',
      'estimated',
    ]);
  });

  const canary = { database, model: 'canary', version: ['v1', 'v2'], feature: ['a', 'b', 'c', 'd'] };
  const at = (window: number) => chTime(T0 + window * HOUR).slice(0, 19);
  const timeOf = (r: Row) => String(r.time).slice(0, 19);

  // Per seeded rows, the version staying on the line in each window.
  const mains = new Map<readonly DriftRow[], Map<number, string>>();

  /**
   * The label a row's series has, computed on the seeded rows: the feature for the version that
   * stays on its line in the window (measured first in the range, then the smaller name), else
   * `feature · version`.
   */
  const labelOf = (rows: readonly DriftRow[], d: DriftRow, label: string) => {
    let main = mains.get(rows)?.get(d.window);
    if (main === undefined) {
      const first = new Map<string, number>();
      for (const r of rows) first.set(r.version, Math.min(first.get(r.version) ?? r.window, r.window));
      const byWindow = new Map<number, string>();
      for (const r of rows) {
        const current = byWindow.get(r.window);
        const before =
          current === undefined ||
          first.get(r.version)! < first.get(current)! ||
          (first.get(r.version) === first.get(current) && r.version < current);
        if (before) byWindow.set(r.window, r.version);
      }
      mains.set(rows, byWindow);
      main = byWindow.get(d.window);
    }
    return d.version === main ? label : `${label} · ${d.version}`;
  };

  it('PSI per feature with a canary: one line per feature, the canary apart with its own values', async () => {
    const result = await panel('panel "PSI per feature" A', canary);
    const points = result.data.map((r) => [timeOf(r), seriesOf(result, r), Number(r.psi)]);
    const inputs = DRIFT.filter((d) => !d.feature.startsWith('__'));
    const expected = inputs.map((d) => [at(d.window), labelOf(inputs, d, d.feature), d.psi]);
    // Production's line goes on through the canary's window: v1 is `a` in both windows.
    expect(expected.filter((e) => e[1] === 'a').map((e) => e[2])).toEqual([0.5, 0.05]);
    expect(expected.filter((e) => e[1] === 'a · v2').map((e) => e[2])).toEqual([0.3]);
    const order = (a: (string | number)[], b: (string | number)[]) => `${a[0]}${a[1]}`.localeCompare(`${b[0]}${b[1]}`);
    expect(points.sort(order)).toEqual(expected.sort(order));
  });

  it('prediction drift with a canary: one line per measure, the canary apart', async () => {
    const result = await panel('panel "Prediction drift" A', canary);
    const points = result.data.map((r) => [timeOf(r), seriesOf(result, r), Number(r.statistic)]);
    const outputs = DRIFT.filter((d) => d.feature === '__prediction__');
    expect(points).toEqual(outputs.map((d) => [at(d.window), labelOf(outputs, d, '__prediction__ psi'), d.psi]));
    expect(points.map((p) => p[1])).toEqual(['__prediction__ psi', '__prediction__ psi · v2']);
  });

  it('PSI per feature of 12 daily versions, each with an hour of canary: 20 lines, the canaries apart (found by a review)', async () => {
    // Once any window held two versions every row was `feature · version`: 240 series, each a day.
    const rows = DAILY.filter((d) => !d.feature.startsWith('__'));
    const result = await panel(
      'panel "PSI per feature" A',
      { database, model: 'daily', version: [], feature: [] },
      DAILY_VERSIONS * 24,
    );
    const points = result.data.map((r) => [timeOf(r), seriesOf(result, r), Number(r.psi)]);
    const expected = rows.map((d) => [at(d.window), labelOf(rows, d, d.feature), d.psi]);
    const order = (a: (string | number)[], b: (string | number)[]) => `${a[0]}${a[1]}`.localeCompare(`${b[0]}${b[1]}`);
    expect(points.sort(order)).toEqual(expected.sort(order));
    const perSeries = new Map<string, number>();
    for (const p of points) perSeries.set(String(p[1]), (perSeries.get(String(p[1])) ?? 0) + 1);
    // Each feature a line through every hour; each canary's hour its own point.
    for (let f = 0; f < DAILY_FEATURES; f++) expect(perSeries.get(`f${f}`)).toBe(DAILY_VERSIONS * 24);
    expect(perSeries.size).toBe(DAILY_FEATURES + DAILY_FEATURES * (DAILY_VERSIONS - 1));
    expect(perSeries.get('f0 · v1')).toBe(1);
    expect(perSeries.has('f0 · v0')).toBe(false);
  });

  it('share of drifted features with a canary: per version, over its own features', async () => {
    const result = await panel('panel "Share of drifted features" A', canary);
    const got = result.data.map((r) => ({
      time: timeOf(r),
      series: seriesOf(result, r),
      share: Number(r.share_drifted),
      drifted: Number(r.drifted_features),
    }));
    const expected = [
      { window: 0, version: 'v1' },
      { window: 0, version: 'v2' },
      { window: 1, version: 'v1' },
    ].map(({ window, version }) => {
      const rows = DRIFT.filter((d) => d.window === window && d.version === version && !d.feature.startsWith('__'));
      const drifted = rows.filter((d) => d.psi >= PSI_THRESHOLD).length;
      return { time: at(window), series: version, share: drifted / rows.length, drifted };
    });
    expect(got).toEqual(expected);
    // The review's figures were 0.5 and 4 for the first window's v1 (4 of 4) and v2.
    expect(expected[0]).toMatchObject({ share: 1, drifted: 4 });
  });

  it('latest window table of a model whose newest window had late events only: the latest measured window (found by a review)', async () => {
    // The latest window was taken over every row: the late-only row's window, whose rows the table
    // leaves out, so the table was empty.
    const late = { ...canary, model: 'late-only' };
    const { data } = await panel('panel "Latest window: every feature and method" A', late);
    // Window 1's rows of v1, drifted first (d), then by feature.
    expect(data.map((r) => [String(r.window_start).slice(0, 19), r.version, r.feature, r.method])).toEqual(
      ['d', 'a', 'b', 'c'].map((feature) => [at(1), 'v1', feature, 'psi']),
    );
    expect(data.map((r) => Number(r.drifted))).toEqual([1, 0, 0, 0]);
    // The events panel still counts the late events of that window, from the late-only row (and
    // the first window's 100 events of v1 and 100 of the canary v2).
    const events = await panel('panel "Events per window (and late events)" A', late);
    expect(events.data.map((r) => [timeOf(r), Number(r.events), Number(r.late_events)])).toEqual([
      [at(0), 200, 0],
      [at(1), 100, 0],
      [at(2), 0, 3],
    ]);
  });

  /** Per window, the sum over versions of each version's count (taken once from its rows). */
  const summed = (rows: readonly CountedRow[], versions: readonly string[]) => {
    const perVersion = new Map<string, { window: number; events: number; late: number }>();
    for (const d of rows.filter((r) => versions.includes(r.version)))
      perVersion.set(`${d.window} ${d.version}`, { window: d.window, events: d.events, late: d.late ?? 0 });
    const windows = [...new Set([...perVersion.values()].map((v) => v.window))].sort((a, b) => a - b);
    return windows.map((w) => {
      const of = [...perVersion.values()].filter((v) => v.window === w);
      return [at(w), of.reduce((n, v) => n + v.events, 0), of.reduce((n, v) => n + v.late, 0)];
    });
  };

  it('events per window: summed over the versions, each counted once (found by a review)', async () => {
    // The max over every row showed 300 for a window of 300 events of v1 and 100 of its canary.
    const figures = async (version: readonly string[]) =>
      (
        await panel('panel "Events per window (and late events)" A', { database, model: 'events-sum', version })
      ).data.map((r) => [timeOf(r), Number(r.events), Number(r.late_events)]);
    expect(summed(COUNTED, ['v1', 'v2'])).toEqual([
      [at(0), 400, 3],
      [at(1), 250, 0],
    ]);
    expect(await figures([])).toEqual(summed(COUNTED, ['v1', 'v2']));
    expect(await figures(['v1', 'v2'])).toEqual(summed(COUNTED, ['v1', 'v2']));
    expect(await figures(['v2'])).toEqual(summed(COUNTED, ['v2']));
    expect(await figures(['v1'])).toEqual(summed(COUNTED, ['v1']));
  });

  /** The share panel's figures computed on the seeded rows: windows of a version under `min` events left out. */
  const shares = (rows: readonly CountedRow[], min: number) => {
    const kept = rows.filter((d) => d.events >= min);
    const keys = [...new Set(kept.map((d) => `${d.window} ${d.version}`))].sort();
    return keys.map((key) => {
      const of = kept.filter((d) => `${d.window} ${d.version}` === key);
      const drifted = of.filter((d) => d.psi >= PSI_THRESHOLD).length;
      return { time: at(of[0]!.window), series: of[0]!.version, share: drifted / of.length, drifted };
    });
  };

  it('share of drifted features: windows under DRIFTLINE_DRIFT_ALERT_MIN_EVENTS events are left out (found by a review)', async () => {
    // Every 1-event window read as drifted on every feature (PSI 8.28), where the drift monitor
    // raises no alert.
    const figures = async (variables: Record<string, string>) => {
      const result = await panel('panel "Share of drifted features" A', {
        database,
        model: 'low-traffic',
        version: [],
        ...variables,
      });
      return result.data.map((r) => ({
        time: timeOf(r),
        series: seriesOf(result, r),
        share: Number(r.share_drifted),
        drifted: Number(r.drifted_features),
      }));
    };
    const shipped = await figures({});
    expect(shipped).toEqual(shares(LOW_TRAFFIC, ALERT_MIN_EVENTS));
    // The 100-event window of v1 (a of a, b) and the quiet 5,000-event one; neither the 1- nor the
    // 99-event window, nor the 5-event canary beside v1.
    expect(shipped).toEqual([
      { time: at(2), series: 'v1', share: 0.5, drifted: 1 },
      { time: at(3), series: 'v1', share: 0, drifted: 0 },
    ]);
    // The dashboard constant decides: at 1 every window is back.
    const all = await figures({ min_events: '1' });
    expect(all).toEqual(shares(LOW_TRAFFIC, 1));
    expect(all).toHaveLength(5);
    expect(all[0]).toEqual({ time: at(0), series: 'v1', share: 1, drifted: 2 });
  });
  it('windows of two lengths at one start (DRIFTLINE_DRIFT_WINDOW changed): each its own figure, never one over both', async () => {
    const variables = { database, model: 'two-lengths', version: [] };
    // Before 0730 the later row replaced the other under FINAL; read over both, the share mixed
    // the two windows' features and the events took the larger window's count.
    const share = await panel('panel "Share of drifted features" A', variables);
    expect(share.data.map((r) => [timeOf(r), Number(r.share_drifted), Number(r.drifted_features)])).toEqual([
      [at(0), 0, 0],
      [at(0), 0.5, 1],
      [at(1), 0, 0],
    ]);
    const events = await panel('panel "Events per window (and late events)" A', variables);
    expect(events.data.map((r) => [timeOf(r), Number(r.events), Number(r.late_events)])).toEqual([
      [at(0), 150, 4],
      [at(0), 1200, 0],
      [at(1), 1100, 0],
    ]);
    // The latest window alone: window 1's hour.
    const latest = await panel('panel "Latest window: every feature and method" A', variables);
    expect(latest.data.map((r) => [String(r.window_start).slice(0, 19), Number(r.current_size)])).toEqual([
      [at(1), 1100],
      [at(1), 1100],
    ]);
  });

  it('latest window table when two lengths start at the latest start: the one ending last', async () => {
    const { data } = await panel('panel "Latest window: every feature and method" A', {
      database,
      model: 'two-lengths-latest',
      version: [],
    });
    expect(data.map((r) => [r.feature, Number(r.current_size)])).toEqual([
      ['a', 1200],
      ['b', 1200],
    ]);
  });

  it('skew in the range: expired (0690) summed per feature and version beside the other outcomes', async () => {
    const { data } = await panel('panel "Skew in the range, per feature" A', {
      database,
      model: 'skew-expired',
      version: [],
      feature: [],
    });
    const outcomes = ['missingInStore', 'missingInPrediction', 'newerRow', 'expired'] as const;
    const summedSkew = (feature: string, version: string) => {
      const of = SKEW.filter((d) => d.feature === feature && d.version === version);
      return Object.fromEntries(outcomes.map((o) => [o, of.reduce((n, d) => n + d[o], 0)]));
    };
    const keys = [...new Set(SKEW.map((d) => `${d.feature} ${d.version}`))].sort();
    expect(data.map((r) => `${r.feature} ${r.version}`).sort()).toEqual(keys);
    for (const r of data) {
      const key = `${r.feature} ${r.version}`;
      expect(
        {
          missingInStore: Number(r.missing_in_store),
          missingInPrediction: Number(r.missing_in_prediction),
          newerRow: Number(r.newer_row),
          expired: Number(r.expired),
        },
        key,
      ).toEqual(summedSkew(String(r.feature), String(r.version)));
    }
    // Both logs of partition 1 and partition 0: 30 + 7 + 11 of v1's `amount`, not counted missing.
    const amount = data.find((r) => r.feature === 'amount' && r.version === 'v1')!;
    expect(Number(amount.expired)).toBe(48);
    expect(Number(amount.missing_in_store)).toBe(6);
  });

  it('distribution after a rollback (v1 -> v2 -> v1): the version of the latest window, not the newest profile (found by a review)', async () => {
    const figures = async (variables: GrafanaQueryContext['variables'], from: number, to: number) => {
      const { data } = await panelOver(DISTRIBUTION, { database, model: 'rollback', ...variables }, from, to);
      return new Map(data.map((r) => [String(r.bucket), [Number(r.reference), Number(r.current)]]));
    };
    /** Shares of window `window`'s colours on `version`'s categories (the rest as unseen). */
    const expected = (version: 'v1' | 'v2', windows: readonly number[]) => {
      const categories = [...new Set(ROLLBACK_REFERENCE[version])];
      const colours = windows.flatMap((w) => Array.from({ length: 60 }, (_, i) => rollbackColour(w, i)));
      const share = (c: string) => colours.filter((x) => x === c).length / colours.length;
      return new Map<string, number>([
        ...categories.map((c) => [c, share(c)] as const),
        ['(unseen values)', colours.filter((x) => !categories.includes(x as never)).length / colours.length] as const,
      ]);
    };
    // The last window, v1 live again: v1's reference and its predictions (the newest profile, v2's,
    // showed every current share 0).
    const last = await figures(
      { version: [], feature: 'colour', distribution_feature: 'colour' },
      T0 + 2 * HOUR,
      T0 + 3 * HOUR - 1000,
    );
    const v1 = expected('v1', [2]);
    expect([...last.keys()].sort()).toEqual([...v1.keys()].sort());
    for (const [bucket, [, current]] of last) expect(current, bucket).toBeCloseTo(v1.get(bucket)!, 12);
    expect(last.get('red')![1]).toBeCloseTo(1 / 3, 12);
    expect(last.get('red')![0]).toBeCloseTo(0.5, 12);
    // The whole range at All: the latest window is v1's, so its predictions of windows 0 and 2.
    const all = await figures(
      { version: [], feature: 'colour', distribution_feature: 'colour' },
      T0,
      T0 + 3 * HOUR - 1000,
    );
    for (const [bucket, [, current]] of all)
      expect(current, bucket).toBeCloseTo(expected('v1', [0, 2]).get(bucket)!, 12);
    // $version honoured: v2 alone is v2's reference and its window's predictions.
    const v2 = await figures(
      { version: ['v2'], feature: 'colour', distribution_feature: 'colour' },
      T0,
      T0 + 3 * HOUR - 1000,
    );
    expect([...v2.keys()].sort()).toEqual([...expected('v2', [1]).keys()].sort());
    for (const [bucket, [, current]] of v2) expect(current, bucket).toBeCloseTo(expected('v2', [1]).get(bucket)!, 12);
    expect(v2.get('violet')![1]).toBe(0.5);
  });

  it('per-feature drift panels over a long range: one point per panel interval, the worst window (found by a review)', async () => {
    // Two days of 5-minute windows at an hour's interval: 10 features x 48 points, not 5,760 rows.
    const variables = { database, model: 'long-range', version: [], feature: [] };
    const to = T0 + LONG_WINDOWS * FIVE_MINUTES - 1000;
    const hourOf = (w: number) => chTime(T0 + Math.floor((w * FIVE_MINUTES) / HOUR) * HOUR).slice(0, 19);
    const worst = (pick: (f: number, w: number) => number, fold: (a: number, b: number) => number) => {
      const points = new Map<string, number>();
      for (let w = 0; w < LONG_WINDOWS; w++) {
        for (let f = 0; f < LONG_FEATURES; f++) {
          const key = `${hourOf(w)} f${f}`;
          const before = points.get(key);
          points.set(key, before === undefined ? pick(f, w) : fold(before, pick(f, w)));
        }
      }
      return points;
    };
    const psi = await panelOver('panel "PSI per feature" A', variables, T0, to, HOUR);
    expect(psi.data).toHaveLength(LONG_FEATURES * 48);
    const psiWorst = worst(longPsi, Math.max);
    for (const r of psi.data) expect(Number(r.psi)).toBeCloseTo(psiWorst.get(`${timeOf(r)} ${r.series}`)!, 12);
    const ks = await panelOver('panel "KS p-value per feature" A', variables, T0, to, HOUR);
    expect(ks.data).toHaveLength(LONG_FEATURES * 48);
    const pWorst = worst(longP, Math.min);
    for (const r of ks.data) expect(Number(r.p_value)).toBeCloseTo(pWorst.get(`${timeOf(r)} ${r.series}`)!, 12);
    for (const where of ['panel "PSI per feature" B', 'panel "Events per window (and late events)" A']) {
      expect((await panelOver(where, variables, T0, to, HOUR)).data, where).toHaveLength(48);
    }
    // An interval under a window's length: every window its own point.
    const fine = await panelOver('panel "PSI per feature" A', variables, T0, T0 + HOUR - 1000, 60_000);
    expect(fine.data).toHaveLength(LONG_FEATURES * 12);
  });
});
