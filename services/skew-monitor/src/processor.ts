import { checkEventTime, type EventTimeBounds, type Logger, PoisonRecordError, silentLogger } from '@driftline/core';
import type { BatchContext, BatchProcessor, DecodedRecord } from '@driftline/kafka';
import { counter, histogram, type Registry } from '@driftline/observability';
import { encodeEntity, type FeatureRow, MAX_READ_BATCH, type OnlineStore } from '@driftline/online-store';
import type { DriftAlert, PredictionEvent } from '@driftline/schemas';
import {
  breaches,
  copyCounts,
  countsIn,
  type FeatureSources,
  foldPredictions,
  groupId,
  indexRows,
  isSampled,
  planReads,
  type SampledPrediction,
  type SkewAlertRule,
  type SkewCounts,
  type SkewGroupKey,
  skewAlert,
  skewAlertId,
  skewAlertTime,
  type Tolerance,
  type ViewRead,
  windowStartOf,
} from '@driftline/skew';
import type { SkewPartialRow, SkewWindowStore } from '@driftline/warehouse';

export interface SkewProcessorDeps {
  readonly store: OnlineStore;
  readonly skew: SkewWindowStore;
  readonly sources: FeatureSources;
  readonly windowMs: number;
  readonly sampleRate: number;
  readonly tolerance: Tolerance;
  readonly rule: SkewAlertRule;
  readonly decode: (value: Buffer | null) => Promise<PredictionEvent>;
  /** Resolves once Kafka has the alerts. */
  readonly publish: (alerts: readonly DriftAlert[]) => Promise<void>;
  /**
   * Accepted event times: a prediction outside them is poison (DLQ). Alert consumers apply the same
   * bounds, so an alert waits until its window's end is within `now + maxFutureMs` (skewAlertTime).
   */
  readonly eventTime: EventTimeBounds;
  readonly now?: () => number;
  readonly logger?: Logger;
  readonly registry?: Registry;
  /** Window states kept in memory per partition (least recently used evicted, re-read from ClickHouse). */
  readonly windowsPerPartition?: number;
}

/** What `decode` hands to `process`: only what the comparison needs (unsampled records carry nothing). */
export interface SkewRecord {
  readonly sampled?: SampledPrediction;
}

/** One (model, version, window) of one partition: its counts per feature through `throughOffset`. */
interface GroupState {
  readonly key: SkewGroupKey;
  readonly throughOffset: number;
  readonly features: Map<string, SkewCounts>;
}

const MAX_NAME = 256;
/** Alert ids remembered as published (per process): bounded; a forgotten one is at worst re-published with the same id. */
const ALERTED_MEMORY = 10_000;
/** Breaching windows whose alert waits for their end to come within the event-time bound (oldest forgotten beyond it). */
const HELD_MEMORY = 10_000;

/**
 * The skew-monitor's consumer: per partition batch, sample predictions by id, compare the features
 * they carried with the online store's rows (ONE batch read), add the outcomes to the window
 * counts of the partition, write the touched windows' rows to skew_windows, then check the
 * touched windows' totals over every partition against the alert rule.
 *
 * Replays: each window's row carries the last offset it counts; a prediction at or below it is
 * skipped, so a batch retried after a crash (rows written, commit lost) counts nothing twice. The
 * state is updated only after the write, so a failed write leaves nothing half-applied. The alert
 * check runs for every window the batch touches, replayed or not: an alert lost with a crash after
 * the write is raised by the retry. A breaching window whose end lies beyond the event-time bound
 * (alert consumers would dead-letter its alert) is held in memory and checked again by the first
 * batch after its end comes within the bound.
 */
export function skewProcessor(deps: SkewProcessorDeps): BatchProcessor<SkewRecord> {
  const logger = deps.logger ?? silentLogger;
  const now = deps.now ?? Date.now;
  const capacity = deps.windowsPerPartition ?? 256;
  const partitions = new Map<string, Map<string, GroupState>>();
  const alerted = new Set<string>();
  const held = new Map<string, { readonly topic: string; readonly key: SkewGroupKey }>();
  const registry = deps.registry;
  const metrics =
    registry === undefined
      ? undefined
      : {
          predictions: counter(
            registry,
            'driftline_skew_predictions_total',
            'Predictions seen by the skew-monitor, by outcome (sampled, not_sampled, replayed); shadow records count as not_sampled',
            ['outcome'],
          ),
          comparisons: counter(
            registry,
            'driftline_skew_values_total',
            'Feature values of sampled predictions, by outcome (compared, mismatched, newer_row, missing_in_store)',
            ['outcome'],
          ),
          alerts: counter(registry, 'driftline_skew_alerts_total', 'TRAINING_SERVING_SKEW alerts published', []),
          read: histogram(
            registry,
            'driftline_skew_store_read_seconds',
            'Duration of the online store read of one batch',
            [],
            [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
          ),
        };

  const partitionState = (topic: string, partition: number) => {
    const id = `${topic}\u0000${partition}`;
    let state = partitions.get(id);
    if (state === undefined) {
      state = new Map();
      partitions.set(id, state);
    }
    return state;
  };

  /** The states of `keys` for this partition: from memory, else from skew_windows (a new owner). */
  async function load(
    state: Map<string, GroupState>,
    topic: string,
    partition: number,
    keys: ReadonlyMap<string, SkewGroupKey>,
  ): Promise<Map<string, GroupState>> {
    const out = new Map<string, GroupState>();
    const missing: SkewGroupKey[] = [];
    for (const [id, key] of keys) {
      const known = state.get(id);
      if (known === undefined) missing.push(key);
      else out.set(id, known);
    }
    if (missing.length > 0) {
      const rows = await deps.skew.partials(topic, partition, missing);
      const loaded = new Map<string, { throughOffset: number; features: Map<string, SkewCounts> }>();
      for (const r of rows) {
        const id = groupId(r);
        let g = loaded.get(id);
        if (g === undefined) {
          g = { throughOffset: -1, features: new Map() };
          loaded.set(id, g);
        }
        g.throughOffset = Math.max(g.throughOffset, r.throughOffset);
        g.features.set(r.feature, { ...r.counts, stalenessHist: [...r.counts.stalenessHist] });
      }
      for (const key of missing) {
        const id = groupId(key);
        const g = loaded.get(id);
        out.set(id, { key, throughOffset: g?.throughOffset ?? -1, features: g?.features ?? new Map() });
      }
    }
    return out;
  }

  /** Stores the new states as most recently used, evicting the oldest beyond the capacity (they are durable). */
  function remember(state: Map<string, GroupState>, groups: Iterable<[string, GroupState]>): void {
    for (const [id, g] of groups) {
      state.delete(id);
      state.set(id, g);
    }
    while (state.size > capacity) state.delete(state.keys().next().value!);
  }

  /** One readBatch per batch, split only when it would exceed the store's bound (MAX_READ_BATCH entities). */
  async function readRows(reads: readonly ViewRead[]): Promise<Array<Array<FeatureRow | undefined>>> {
    const started = performance.now();
    const chunks: Array<{ index: number; from: number; entities: string[] }[]> = [[]];
    let size = 0;
    reads.forEach((read, index) => {
      for (let from = 0; from < read.entities.length; ) {
        if (size === MAX_READ_BATCH) {
          chunks.push([]);
          size = 0;
        }
        const take = Math.min(MAX_READ_BATCH - size, read.entities.length - from);
        chunks[chunks.length - 1]!.push({ index, from, entities: read.entities.slice(from, from + take) });
        size += take;
        from += take;
      }
    });
    const results: Array<Array<FeatureRow | undefined>> = reads.map(() => []);
    for (const chunk of chunks) {
      if (chunk.length === 0) continue;
      const answers = await deps.store.readBatch(
        chunk.map((c) => ({ view: reads[c.index]!.view, entities: c.entities, features: reads[c.index]!.features })),
      );
      chunk.forEach((c, i) => {
        const rows = answers[i] ?? [];
        for (let j = 0; j < c.entities.length; j++) results[c.index]![c.from + j] = rows[j];
      });
    }
    metrics?.read.observe((performance.now() - started) / 1000);
    return results;
  }

  /**
   * Alerts of the touched windows and of the held windows now due (their end within the event-time
   * bound), from their totals over every partition. A held window leaves `held` once its alerts are
   * published or its share is back under the bound (a new breach touches it again).
   */
  async function checkAlerts(topic: string, touched: ReadonlyMap<string, GroupState>): Promise<void> {
    const at = now();
    const candidates = new Map<string, SkewGroupKey>();
    for (const [id, g] of touched) {
      if ([...g.features.keys()].some((f) => !alerted.has(skewAlertId(g.key, f)))) candidates.set(id, g.key);
    }
    const due: string[] = [];
    for (const [heldId, h] of held) {
      if (h.topic !== topic || skewAlertTime(h.key, deps.windowMs, at, deps.eventTime.maxFutureMs) === undefined)
        continue;
      due.push(heldId);
      candidates.set(groupId(h.key), h.key);
    }
    if (candidates.size === 0) return;
    const totals = await deps.skew.totals(topic, [...candidates.values()]);
    const alerts: DriftAlert[] = [];
    for (const t of totals) {
      const key = { model: t.model, version: t.version, windowStart: t.windowStart };
      if (alerted.has(skewAlertId(key, t.feature))) continue;
      const counts = { ...t.counts, stalenessHist: [...t.counts.stalenessHist] };
      if (!breaches(counts, deps.rule)) continue;
      const eventTime = skewAlertTime(key, deps.windowMs, at, deps.eventTime.maxFutureMs);
      if (eventTime === undefined) {
        hold(topic, key);
        continue;
      }
      alerts.push(
        skewAlert(key, t.feature, deps.windowMs, eventTime, counts, deps.rule, {
          sampleRate: deps.sampleRate,
          tolerance: deps.tolerance,
        }),
      );
    }
    if (alerts.length > 0) {
      await deps.publish(alerts);
      metrics?.alerts.inc(alerts.length);
    }
    // Only after the publish: a failed one keeps them held for the retry.
    for (const heldId of due) held.delete(heldId);
    for (const a of alerts) {
      alerted.add(a.alert_id);
      if (alerted.size > ALERTED_MEMORY) alerted.delete(alerted.values().next().value!);
      logger.warn(
        { model: a.model, version: a.model_version, feature: a.feature, window: a.window_start, share: a.statistic },
        'training-serving skew',
      );
    }
  }

  function hold(topic: string, key: SkewGroupKey): void {
    const heldId = `${topic}\u0000${groupId(key)}`;
    if (held.has(heldId)) return;
    held.set(heldId, { topic, key });
    if (held.size > HELD_MEMORY) held.delete(held.keys().next().value!);
  }

  return {
    async decode(record) {
      const event = await deps.decode(record.value);
      checkEventTime(event.event_time, now(), deps.eventTime);
      // Shadow records repeat the answered instance's features (another version scored them): comparing
      // them again would count one served vector twice.
      if (event.role === 'shadow') return {};
      if (!isSampled(event.prediction_id, deps.sampleRate)) return {};
      if (event.model.length === 0 || event.model.length > MAX_NAME) {
        throw new PoisonRecordError('VALIDATION_FAILED', `model must have 1 to ${MAX_NAME} characters`);
      }
      if (event.model_version.length > MAX_NAME) {
        throw new PoisonRecordError('VALIDATION_FAILED', `model_version must have at most ${MAX_NAME} characters`);
      }
      try {
        encodeEntity(event.entity_id); // the store's own check: one bad id must not fail the batch read
      } catch (error) {
        throw new PoisonRecordError('VALIDATION_FAILED', `entity_id: ${(error as Error).message}`);
      }
      return {
        sampled: {
          model: event.model,
          version: event.model_version,
          entity: event.entity_id,
          eventTime: event.event_time,
          features: event.features,
        },
      };
    },

    async process(items: ReadonlyArray<DecodedRecord<SkewRecord>>, context: BatchContext) {
      const { topic, partition } = context;
      const sampled: Array<{ offset: number; p: SampledPrediction; id: string }> = [];
      for (const item of items) {
        const p = item.value.sampled;
        if (p === undefined) continue;
        const key = { model: p.model, version: p.version, windowStart: windowStartOf(p.eventTime, deps.windowMs) };
        sampled.push({ offset: Number(item.record.offset), p, id: groupId(key) });
      }
      metrics?.predictions.inc({ outcome: 'not_sampled' }, items.length - sampled.length);
      if (sampled.length === 0) {
        await checkAlerts(topic, new Map()); // held alerts that came due
        return;
      }

      const state = partitionState(topic, partition);
      const keys = new Map<string, SkewGroupKey>();
      for (const s of sampled) {
        if (!keys.has(s.id)) {
          keys.set(s.id, {
            model: s.p.model,
            version: s.p.version,
            windowStart: windowStartOf(s.p.eventTime, deps.windowMs),
          });
        }
      }
      const current = await load(state, topic, partition, keys);
      const fresh = sampled.filter((s) => s.offset > current.get(s.id)!.throughOffset);
      metrics?.predictions.inc({ outcome: 'replayed' }, sampled.length - fresh.length);
      metrics?.predictions.inc({ outcome: 'sampled' }, fresh.length);

      if (fresh.length > 0) {
        const predictions = fresh.map((s) => s.p);
        const reads = planReads(predictions, deps.sources);
        const rowOf = indexRows(reads, await readRows(reads));
        // Copy on write: the remembered state changes only once skew_windows has the new rows.
        const next = new Map<string, { key: SkewGroupKey; throughOffset: number; features: Map<string, SkewCounts> }>();
        for (const s of fresh) {
          const g = next.get(s.id);
          if (g !== undefined) g.throughOffset = Math.max(g.throughOffset, s.offset);
          else {
            const old = current.get(s.id)!;
            const features = new Map([...old.features].map(([f, c]) => [f, copyCounts(c)]));
            next.set(s.id, { key: old.key, throughOffset: s.offset, features });
          }
        }
        const before = { compared: 0, mismatched: 0, newerRow: 0, missingInStore: 0 };
        const after = { ...before };
        for (const g of next.values()) for (const c of g.features.values()) add(before, c);
        // foldPredictions passes one key object per prediction: look its group up once, not per feature.
        let lastKey: SkewGroupKey | undefined;
        let lastFeatures: Map<string, SkewCounts> | undefined;
        foldPredictions(predictions, deps.sources, rowOf, deps.windowMs, deps.tolerance, (key, feature) => {
          if (key !== lastKey) {
            lastKey = key;
            lastFeatures = next.get(groupId(key))!.features;
          }
          return countsIn(lastFeatures!, feature);
        });
        const updatedAt = now();
        const rows: SkewPartialRow[] = [];
        for (const g of next.values()) {
          for (const [feature, counts] of g.features) {
            add(after, counts);
            rows.push({
              ...g.key,
              windowEnd: g.key.windowStart + deps.windowMs,
              feature,
              topic,
              partition,
              throughOffset: g.throughOffset,
              counts,
              updatedAt,
            });
          }
        }
        await deps.skew.write(rows);
        remember(state, next);
        for (const [id, g] of next) current.set(id, g);
        if (metrics !== undefined) {
          for (const k of ['compared', 'mismatched', 'newerRow', 'missingInStore'] as const) {
            const outcome = k === 'newerRow' ? 'newer_row' : k === 'missingInStore' ? 'missing_in_store' : k;
            metrics.comparisons.inc({ outcome }, after[k] - before[k]);
          }
        }
      }
      await checkAlerts(topic, current);
    },

    revoked(owned) {
      // A partition we own again later may have been advanced by another instance: re-read it then.
      for (const { topic, partition } of owned) partitions.delete(`${topic}\u0000${partition}`);
    },
  };
}

function add(
  into: { compared: number; mismatched: number; newerRow: number; missingInStore: number },
  c: SkewCounts,
): void {
  into.compared += c.compared;
  into.mismatched += c.mismatched;
  into.newerRow += c.newerRow;
  into.missingInStore += c.missingInStore;
}
