import {
  BOUNDED_LABEL_IDLE_MS,
  counter,
  gauge,
  histogram,
  MAX_LABEL_VALUES,
  type Registry,
} from '@driftline/observability';
import type { Counter, Gauge, Histogram } from 'prom-client';

export interface DriftMetrics {
  readonly values: Counter<never>;
  readonly events: Counter<'outcome'>;
  readonly windowsOpen: Gauge<never>;
  readonly windowsClosed: Counter<never>;
  readonly idleAdvances: Counter<never>;
  readonly windowsMerged: Counter<never>;
  readonly partialsDropped: Counter<'reason'>;
  readonly eventsExcluded: Counter<never>;
  readonly windowsQuarantined: Counter<'code'>;
  readonly referenceSplits: Counter<never>;
  readonly referencesInvalid: Counter<never>;
  readonly mergeHeld: Gauge<never>;
  readonly mergeLatency: Histogram<never>;
  readonly statistic: Gauge<'model' | 'feature'>;
  readonly drifted: Gauge<'model' | 'feature'>;
}

/**
 * `windowMs`: the drift window plus the merge's idle timeout. The per-feature gauges are set once
 * per completed window: a value idle for the default 10 minutes gave its place away between two
 * windows, and with more than 100 features over the models each model's series vanished for part
 * of every cycle (found by a review). A value keeps its place for three windows. Every pair within
 * the documented bound (MAX_LABEL_VALUES models × MAX_LABEL_VALUES features) keeps a series of its
 * own: under the default series cap (2,000) 25 models × 90 features folded a drifted pair into
 * `__other__` = 0 (found by a review).
 */
export function driftMetrics(registry: Registry, windowMs = 0): DriftMetrics {
  const perWindow = {
    bounded: ['model', 'feature'],
    idleMs: Math.max(BOUNDED_LABEL_IDLE_MS, 3 * windowMs),
    maxSeries: MAX_LABEL_VALUES * MAX_LABEL_VALUES,
  } as const;
  return {
    values: counter(registry, 'driftline_drift_values_total', 'Feature values added to window summaries', []),
    events: counter(
      registry,
      'driftline_drift_events_total',
      'Prediction events by outcome (added, late, ahead, unreferenced, unreadable_reference, replayed, refused, duplicate)',
      ['outcome'],
    ),
    windowsOpen: gauge(registry, 'driftline_drift_windows_open', 'Open (partition, window) states of stage 1', []),
    windowsClosed: counter(
      registry,
      'driftline_drift_windows_closed_total',
      'Windows closed by stage 1 (per source partition)',
      [],
    ),
    idleAdvances: counter(
      registry,
      'driftline_drift_idle_advances_total',
      'Stage-1 watermark advances on processing time of source partitions read to their end and silent (source idleness) that closed or announced windows',
      [],
    ),
    windowsMerged: counter(
      registry,
      'driftline_drift_windows_merged_total',
      'Windows completed by the merge stage',
      [],
    ),
    partialsDropped: counter(
      registry,
      'driftline_drift_partials_dropped_total',
      'Partials messages dropped by the merge stage',
      ['reason'],
    ),
    // Events of partials that came after their window completed without their source (declared
    // idle): counted by stage one, missing from drift_windows. Alerted (DriftlineDriftEventsExcluded).
    eventsExcluded: counter(
      registry,
      'driftline_drift_events_excluded_total',
      'Events left out of a completed drift window: their source partition was declared idle before its partial arrived',
      [],
    ),
    // Label values: driftline error codes (a closed set).
    windowsQuarantined: counter(
      registry,
      'driftline_drift_windows_quarantined_total',
      'Windows (model, version, window) whose drift could not be computed or stored, set aside by the merge stage',
      ['code'],
    ),
    referenceSplits: counter(
      registry,
      'driftline_drift_reference_splits_total',
      'Merged windows (model, version, window) whose sources summarised on different references: drift on the one with the most events, the others in data quality only',
      [],
    ),
    // Sets whose stored profile this release cannot read, left out at start-up (their model's
    // predictions are dead-lettered CONFIG_INVALID when they load it: driftline_records_dlq_total).
    referencesInvalid: counter(
      registry,
      'driftline_drift_references_invalid_total',
      'Reference sets left out at start-up because a stored profile cannot be read',
      [],
    ),
    // Event time, not processing time: how far the merge's oldest incomplete window lies behind the
    // furthest frontier a source partition reported (MergeState.held; the slowest source holds it).
    mergeHeld: gauge(
      registry,
      'driftline_drift_merge_held_seconds',
      'Event time from the end of the oldest drift window the merge stage still waits on to the furthest frontier a source partition reported (0: none waiting)',
      [],
    ),
    mergeLatency: histogram(
      registry,
      'driftline_drift_merge_latency_seconds',
      'First partial of a window arriving to its results written',
      [],
      [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900],
    ),
    // (model, feature) pairs come from stored references, which only grow: bounded all the same
    // (MAX_LABEL_VALUES each, then `__other__`; every pair within that a series of its own).
    statistic: gauge(
      registry,
      'driftline_drift_statistic',
      'Latest primary-method drift statistic per feature',
      ['model', 'feature'],
      perWindow,
    ),
    drifted: gauge(
      registry,
      'driftline_drift_feature_drifted',
      '1 when the latest window of the feature drifted',
      ['model', 'feature'],
      perWindow,
    ),
  };
}
