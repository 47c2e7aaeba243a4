import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { type Logger, silentLogger } from '@driftline/core';
import {
  type AddedValues,
  CalibrationCache,
  type ReferenceSet,
  type SequentialConfig,
  type SequentialDetection,
  SequentialStreams,
  sequentialAlert,
  type WindowedEvent,
  windowStartOf,
} from '@driftline/drift';
import { counter, gauge, type Registry } from '@driftline/observability';
import type { DriftAlert } from '@driftline/schemas';
import { chTime, type SequentialDetectionRow, type SequentialDetectionStore } from '@driftline/warehouse';

/**
 * The online sequential detector in stage one (see @driftline/drift, sequential/): every value of
 * every watched feature, per owned partition in offset order. What stage one calls:
 * `prepare` before a batch (calibrates new references' features for at most
 * `calibrationBudgetMs` per batch, yielding to the event loop between features; a feature is
 * watched from the first batch after its calibration), `observe` per event (with what the drift
 * windows read of it when they added it, so its values are not read and binned twice), `flush` before the batch's commit
 * (rows then alerts; a failure leaves them pending and fails the batch, which is retried without
 * re-observing its events), `revoked` when a partition goes.
 */
export interface SequentialHook {
  prepare(events: Iterable<WindowedEvent>): Promise<void>;
  observe(partition: number, event: WindowedEvent, offset: number, added?: AddedValues): void;
  flush(topic: string, partition: number): Promise<void>;
  revoked(partition: number): void;
}

export interface SequentialDeps {
  readonly config: SequentialConfig;
  readonly windowMs: number;
  /** The reference of (model, version) in the window starting at `windowStart` (stage one's). */
  readonly resolve: (model: string, version: string, windowStart: number) => ReferenceSet | undefined;
  readonly store: SequentialDetectionStore;
  /** Publishes SEQUENTIAL_DRIFT alerts (alerts.v1); resolves once Kafka has them. */
  readonly sendAlerts: (alerts: readonly DriftAlert[]) => Promise<void>;
  readonly registry?: Registry;
  readonly logger?: Logger;
  readonly now?: () => number;
  /** Calibration time per batch before the rest waits for later batches (default 1,000 ms). */
  readonly calibrationBudgetMs?: number;
}

export function sequentialMonitor(deps: SequentialDeps): SequentialHook & { readonly calibrations: CalibrationCache } {
  const calibrations = new CalibrationCache(deps.config);
  const partitions = new Map<number, { streams: SequentialStreams; pending: SequentialDetection[] }>();
  const logger = deps.logger ?? silentLogger;
  const now = deps.now ?? Date.now;
  const budgetMs = deps.calibrationBudgetMs ?? 1000;
  const m =
    deps.registry === undefined
      ? undefined
      : {
          values: counter(deps.registry, 'driftline_sequential_values_total', 'Values fed to sequential detectors', []),
          alarms: counter(
            deps.registry,
            'driftline_sequential_alarms_total',
            'Sequential detector alarms: kept (row + alert) or suppressed (not the first of its feature and window)',
            ['outcome'],
          ),
          calibrations: gauge(deps.registry, 'driftline_sequential_calibrations', 'Calibrations cached', []),
        };
  const entry = (partition: number) => {
    let e = partitions.get(partition);
    if (e === undefined) {
      e = { streams: new SequentialStreams(calibrations, deps.windowMs, partition), pending: [] };
      partitions.set(partition, e);
    }
    return e;
  };
  const counted = { values: 0, suppressed: 0 };
  let lastRef: { model: string; version: string; windowStart: number; ref: ReferenceSet | undefined } | undefined;
  return {
    calibrations,
    async prepare(events) {
      lastRef = undefined; // a reference swapped since the last batch is seen from this one on
      const refs = new Map<string, ReferenceSet>();
      let prev: WindowedEvent | undefined;
      for (const e of events) {
        const w = windowStartOf(e.event_time, deps.windowMs);
        if (
          prev !== undefined &&
          prev.model === e.model &&
          prev.model_version === e.model_version &&
          windowStartOf(prev.event_time, deps.windowMs) === w
        )
          continue;
        prev = e;
        const ref = deps.resolve(e.model, e.model_version, w);
        if (ref !== undefined) refs.set(ref.referenceId, ref);
      }
      const started = now();
      let done = 0; // at least one per batch: progress whatever the budget
      calibrate: for (const ref of refs.values()) {
        for (const profile of ref.profiles) {
          if (calibrations.has(profile)) continue;
          // Bounded per batch: the rest waits for the next batches (those features' values are
          // skipped until then), so no batch holds the consumer for long.
          if (done > 0 && now() - started >= budgetMs) break calibrate;
          const t0 = now();
          const c = calibrations.get(profile);
          done++;
          if (c !== null)
            logger.info(
              { model: ref.model, version: ref.version, profile: profile.id, ms: now() - t0 },
              'sequential detector calibrated',
            );
          await yieldToLoop();
        }
      }
      m?.calibrations.set(calibrations.size);
    },
    observe(partition, event, offset, added) {
      // Consecutive events of one (model, version, window) share the reference: one look-up.
      const windowStart = windowStartOf(event.event_time, deps.windowMs);
      let ref = lastRef?.ref;
      if (
        lastRef === undefined ||
        lastRef.windowStart !== windowStart ||
        lastRef.model !== event.model ||
        lastRef.version !== event.model_version
      ) {
        ref = deps.resolve(event.model, event.model_version, windowStart);
        lastRef = { model: event.model, version: event.model_version, windowStart, ref };
      }
      if (ref === undefined) return; // unreferenced: counted by the windows
      const e = entry(partition);
      // The windows' slots only when they binned against this very reference.
      e.streams.observe(
        event,
        offset,
        ref,
        e.pending,
        added !== undefined && added.ref === ref ? added.slots : undefined,
      );
    },
    async flush(topic, partition) {
      const e = partitions.get(partition);
      if (e === undefined) return;
      if (m !== undefined) {
        let values = 0;
        let suppressed = 0;
        for (const p of partitions.values()) {
          values += p.streams.values;
          suppressed += p.streams.suppressed;
        }
        m.values.inc(values - counted.values);
        if (suppressed > counted.suppressed) m.alarms.inc({ outcome: 'suppressed' }, suppressed - counted.suppressed);
        counted.values = values;
        counted.suppressed = suppressed;
      }
      if (e.pending.length === 0) return;
      const detectedAt = chTime(now());
      const rows = e.pending.map((d) => toRow(d, topic, detectedAt));
      await deps.store.insert(rows);
      await deps.sendAlerts(e.pending.map((d) => sequentialAlert(d.context, d.alarm, d.thresholds)));
      m?.alarms.inc({ outcome: 'kept' }, e.pending.length);
      for (const d of e.pending)
        logger.info(
          { model: d.context.model, feature: d.context.feature, partition, statistic: d.alarm.statistic, t: d.alarm.t },
          'sequential drift alarm',
        );
      e.pending = [];
    },
    revoked(partition) {
      // Pending alarms of a revoked partition are dropped with it: the new owner replays the
      // uncommitted events and its own detectors decide again.
      partitions.delete(partition);
    },
  };
}

function toRow(d: SequentialDetection, topic: string, detectedAt: string): SequentialDetectionRow {
  const c = d.context;
  return {
    model: c.model,
    version: c.version,
    reference_id: c.referenceId,
    feature: c.feature,
    source_topic: topic,
    source_partition: c.partition,
    window_start: chTime(c.windowStart),
    window_end: chTime(c.windowEnd),
    event_time: chTime(c.eventTime),
    source_offset: c.offset,
    statistic_kind: d.thresholds.statistic,
    statistic: d.alarm.statistic,
    threshold: d.alarm.threshold,
    t: d.alarm.t,
    run_length: d.alarm.t - d.thresholds.window + 1,
    window_size: d.thresholds.window,
    check_every: d.thresholds.every,
    ert: d.thresholds.ert,
    detected_at: detectedAt,
  };
}
