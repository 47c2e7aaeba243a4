import {
  alertNameProblem,
  checkEventTime,
  type EventTimeBounds,
  keyedLineLimit,
  type Logger,
  PoisonRecordError,
  RecentIds,
  recentIdsHeapWatch,
  silentLogger,
} from '@driftline/core';
import {
  type BatchContext,
  type BatchProcessor,
  type DecodedRecord,
  type InboundRecord,
  recordFingerprint,
} from '@driftline/kafka';
import { counter, histogram, type Registry } from '@driftline/observability';
import { encodeEntity, type FeatureRow, MAX_READ_BATCH, type OnlineStore } from '@driftline/online-store';
import type { DriftAlert, PredictionEvent } from '@driftline/schemas';
import {
  awaitsRelease,
  breaches,
  copyCounts,
  countsIn,
  type FeatureSources,
  type FutureRows,
  foldPredictions,
  groupId,
  indexRows,
  isSampled,
  planReads,
  releaseRange,
  resendKey,
  type SampledPrediction,
  type SkewAlertRule,
  type SkewCounts,
  type SkewGroupKey,
  samplingKey,
  skewAlert,
  skewAlertId,
  skewAlertTime,
  type Tolerance,
  type ViewRead,
  windowStartOf,
} from '@driftline/skew';
import type { SkewPartialRow, SkewWindowStore } from '@driftline/warehouse';
import { DEFAULT_RECENT_IDS } from './config.js';

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
   * bounds, so an alert waits until its window's end is within `now + maxFutureMs` (skewAlertTime)
   * and is then raised by `releaseDue`.
   */
  readonly eventTime: EventTimeBounds;
  readonly now?: () => number;
  readonly logger?: Logger;
  readonly registry?: Registry;
  /** Window states kept in memory per partition (least recently used evicted, re-read from ClickHouse). */
  readonly windowsPerPartition?: number;
  /**
   * The partition's log end read fresh from Kafka (throws when unreadable: the batch is retried):
   * confirms that rows read back name offsets past it (another log's) before a new log epoch starts.
   */
  readonly logEnd?: (topic: string, partition: number) => Promise<number>;
  /**
   * Sampled predictions remembered per source partition (DRIFTLINE_SKEW_RECENT_IDS), by model,
   * version, window and prediction id: one among them is a re-send, not counted again. 0: none
   * (every record counted).
   */
  readonly recentIds?: number;
  /** V8's heap limit, against which the remembered ids of the partitions held are checked (the process's when absent). */
  readonly heapLimit?: number;
}

/**
 * What `decode` hands to `process`: only what the comparison needs, and the prediction id to know
 * a re-send by (unsampled records carry nothing).
 */
export interface SkewRecord {
  readonly sampled?: SampledPrediction & { readonly predictionId: string };
  /** The prediction has an empty id: sampled by its model, entity and event time (`samplingKey`). */
  readonly withoutId?: true;
}

/** One (model, version, window) of one partition's log: its counts per feature through `throughOffset`. */
interface GroupState {
  readonly key: SkewGroupKey;
  readonly throughOffset: number;
  readonly features: Map<string, SkewCounts>;
}

/** The latest log of a partition rows were written for (`SkewWindowStore.latestLog`). */
type PartitionLog = Awaited<ReturnType<SkewWindowStore['latestLog']>>;
/** The first record processed in a log epoch: which log the epoch is (`SkewPartialRow.logStart`). */
type LogStart = NonNullable<PartitionLog['start']>;

/**
 * A partition's windows in memory, all of one log: `logEpoch` (0 the first, +1 at each recreation
 * of the topic) names the rows they are read from and written to; `logStart`, written with them
 * from epoch 1, the record the epoch began with — `'next batch'` while an epoch this process
 * started has seen no batch yet, undefined when unknown (epoch 0; rows written without it).
 */
interface PartitionState {
  logEpoch: number;
  logStart: LogStart | 'next batch' | undefined;
  readonly windows: Map<string, GroupState>;
  /**
   * The sampled prediction ids counted lately (not persisted: gone with the partition); none when
   * off. Predictions are keyed by prediction id, so a re-send lands in its original's partition.
   */
  readonly counted: RecentIds | undefined;
}

/** At most one warning of batches mostly re-sends per partition this often, for batches with at least this many. */
const DUPLICATE_WARNING_INTERVAL_MS = 5 * 60_000;
const DUPLICATE_WARNING_MIN = 10;

/** At most one warning of rows dated ahead of the read per view this often. */
const FUTURE_WARNING_INTERVAL_MS = 5 * 60_000;

/** Alert ids remembered as published (per process): bounded; a forgotten one is at worst re-published with the same id. */
const ALERTED_MEMORY = 10_000;
/** Windows per release sweep query (the store's key-list bound), and queries per sweep (the rest: next sweep). */
const RELEASE_PAGE = 500;
const RELEASE_PAGES = 20;

/** The skew-monitor's consumer, plus the release of alerts whose window end has come within the event-time bound. */
export interface SkewProcessor extends BatchProcessor<SkewRecord> {
  /**
   * Raises the alerts of `topic`'s windows that batches had to leave held (their end was beyond
   * the event-time bound) and whose end is now within it, from the totals in skew_windows — with
   * no batch needed, after a restart too. Resolves with the number raised; throws what the store
   * or the publish threw (the next call retries from the same place).
   */
  releaseDue(topic: string): Promise<number>;
}

/**
 * The skew-monitor's consumer: per partition batch, sample predictions by id, compare the features
 * they carried with the online store's rows (ONE batch read), add the outcomes to the window
 * counts of the partition, write the touched windows' rows to skew_windows, then check the
 * touched windows' totals over every partition against the alert rule.
 *
 * Replays: each window's row carries the last offset it counts; a prediction at or below it is
 * skipped, so a batch retried after a crash (rows written, commit lost) counts nothing twice.
 * Offsets name records of one log: a recreated topic's partition starts a new log epoch, whose
 * rows (and replay guard) are its own and whose counts add to the earlier logs'. The
 * state is updated only after the write, so a failed write leaves nothing half-applied. The alert
 * check runs for every window the batch touches, replayed or not: an alert lost with a crash after
 * the write is raised by the retry. A window whose end lies beyond the event-time bound (alert
 * consumers would dead-letter its alert) is left to `releaseDue`, which finds it in skew_windows
 * once its end is within the bound: nothing waits in memory, so a restart or an idle topic loses
 * no alert.
 */
export function skewProcessor(deps: SkewProcessorDeps): SkewProcessor {
  const logger = deps.logger ?? silentLogger;
  const now = deps.now ?? Date.now;
  const capacity = deps.windowsPerPartition ?? 256;
  const recentIds = deps.recentIds ?? DEFAULT_RECENT_IDS;
  const watchHeap = recentIdsHeapWatch('DRIFTLINE_SKEW_RECENT_IDS', recentIds, logger, deps.heapLimit);
  const partitions = new Map<string, PartitionState>();
  /** Partitions whose log restarted before this process held their state (settled at take-up: `takeUp`). */
  const restartedLogs = new Set<string>();
  const alerted = new Set<string>();
  /** Per topic, the last window the release sweep has checked (none: catch up, as at start-up). */
  // `complete`: that sweep read every window up to its horizon (not stopped by the page bound).
  const released = new Map<string, SkewGroupKey & { readonly windowEnd: number; readonly complete: boolean }>();
  const registry = deps.registry;
  const metrics =
    registry === undefined
      ? undefined
      : {
          predictions: counter(
            registry,
            'driftline_skew_predictions_total',
            'Predictions seen by the skew-monitor, by outcome (sampled, not_sampled, replayed, duplicate); shadow records count as not_sampled, a sampled prediction id counted lately as duplicate',
            ['outcome'],
          ),
          comparisons: counter(
            registry,
            'driftline_skew_values_total',
            'Feature values of sampled predictions, by outcome (compared, mismatched, newer_row, future_row: of newer_row, the row dated after the read itself (its producer clock ahead), missing_in_store, expired: no row, the prediction older than the view TTL at the read)',
            ['outcome'],
          ),
          withoutId: counter(
            registry,
            'driftline_skew_predictions_without_id_total',
            'Predictions with an empty prediction_id (shadow records included), sampled by model, entity and event time instead; never taken for a re-send',
            [],
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

  /** The warning of batches mostly taken for re-sends: one line per partition per interval. */
  const duplicateLines = keyedLineLimit<string>({ intervalMs: DUPLICATE_WARNING_INTERVAL_MS, maxKeys: 1_000 });

  /**
   * Warns when most of a batch's new sampled predictions were taken for re-sends (at least
   * {@link DUPLICATE_WARNING_MIN}): a producer re-sending that much, or one reusing an id with the
   * same entity and features, is worth a look — its predictions are mostly not compared.
   */
  function warnDuplicates(
    topic: string,
    partition: number,
    fresh: ReadonlyArray<{ readonly p: SampledPrediction; readonly predictionId: string }>,
    counting: ReadonlyArray<unknown>,
  ): void {
    const duplicates = fresh.length - counting.length;
    if (duplicates < DUPLICATE_WARNING_MIN || duplicates * 2 <= fresh.length) return;
    const leftOut = duplicateLines.admit(partitionId(topic, partition), now(), duplicates);
    if (leftOut === undefined) return;
    const example = fresh.find((s) => s.predictionId !== '') ?? fresh[0]!;
    logger.warn(
      {
        topic,
        partition,
        duplicates,
        sampled: fresh.length,
        duplicatesUnlogged: leftOut,
        model: example.p.model,
        predictionId: example.predictionId.slice(0, 64),
      },
      `${duplicates} of ${fresh.length} sampled predictions of the batch were taken for re-sends (the same model, version, window, prediction_id, entity and features as one counted lately) and not compared: does the producer send its predictions again, or reuse prediction_id?`,
    );
  }

  /** The warning of rows dated ahead of the monitor's clock: one line per view per interval. */
  const futureLines = keyedLineLimit<string>({ intervalMs: FUTURE_WARNING_INTERVAL_MS, maxKeys: 1_000 });

  /**
   * Counts and warns of values whose row is dated after the read itself (`foldPredictions`' future
   * rows, per view): no row can honestly be; its producer's clock runs ahead, and with entities
   * updated more often than that lead every prediction is `newer_row` and no skew is measured.
   */
  function warnFutureRows(future: ReadonlyMap<string, FutureRows>, readAt: number): void {
    for (const [view, f] of future) {
      metrics?.comparisons.inc({ outcome: 'future_row' }, f.values);
      const leftOut = futureLines.admit(view, now(), f.values);
      if (leftOut === undefined) continue;
      logger.warn(
        { view, values: f.values, valuesUnlogged: leftOut, aheadMs: f.aheadMs, readAt: new Date(readAt).toISOString() },
        `feature view ${view}: ${f.values} values of sampled predictions met a row dated after the skew-monitor read it (up to ${f.aheadMs} ms ahead of its clock): counted newer_row, not compared — is the clock of the producer of ${view}'s feature events ahead? While its lead exceeds how often its entities are updated, no skew of ${view} is measured`,
      );
    }
  }

  const partitionId = (topic: string, partition: number) => `${topic}\u0000${partition}`;

  /**
   * The partition's state for a batch of `items` (not empty): taken up if this process holds none
   * ({@link takeUp}); an epoch started here with no batch yet is named by this batch's first record.
   */
  async function partitionState(
    topic: string,
    partition: number,
    items: ReadonlyArray<DecodedRecord<SkewRecord>>,
  ): Promise<PartitionState> {
    const id = partitionId(topic, partition);
    let state = partitions.get(id);
    if (state === undefined) {
      state = await takeUp(topic, partition, items);
      partitions.set(id, state);
      watchHeap(partitions.size);
    }
    if (state.logStart === 'next batch') state.logStart = startOf(items[0]!.record);
    return state;
  }

  /**
   * A partition taken up (start, rebalance): the latest log written for it, or after a restart
   * the consumer reported, the one {@link afterReportedRestart} decides. The choice is logged.
   */
  async function takeUp(
    topic: string,
    partition: number,
    items: ReadonlyArray<DecodedRecord<SkewRecord>>,
  ): Promise<PartitionState> {
    const latest = await deps.skew.latestLog(topic, partition);
    const restartReported = restartedLogs.delete(partitionId(topic, partition));
    const { next, why } = restartReported
      ? afterReportedRestart(latest, items)
      : { next: false, why: 'the latest written for it' };
    const logEpoch = next ? latest.epoch + 1 : latest.epoch;
    const fields = { topic, partition, logEpoch, restartReported };
    const message = `source partition taken up in log epoch ${logEpoch}: ${why}`;
    // Quiet for the common case: the first log, no restart.
    if (restartReported || logEpoch > 0) logger.info(fields, message);
    else logger.debug(fields, message);
    return {
      logEpoch,
      logStart: next ? startOf(items[0]!.record) : latest.start,
      windows: new Map(),
      counted: recentIds > 0 ? new RecentIds(recentIds) : undefined,
    };
  }

  /**
   * The partition's log started over: a new epoch, whose windows start empty (the old log's rows
   * stay, summed), named by `start` (the record it begins with, or the next batch's first). The
   * remembered ids stay: a prediction the old log counted is still in the summed totals, so its
   * copy in the new log is a re-send (README, "A recreated topic").
   */
  function startLog(
    state: PartitionState,
    topic: string,
    partition: number,
    start: LogStart | 'next batch',
    why: string,
  ): void {
    state.logEpoch++;
    state.logStart = start;
    state.windows.clear();
    logger.warn(
      { topic, partition, logEpoch: state.logEpoch },
      `${why}: its predictions are counted in rows of their own`,
    );
  }

  /**
   * The states of `keys` for this partition's log: from memory, else from skew_windows (a new
   * owner). `restoredThrough`: the highest offset of the rows read back (-1 when none).
   */
  async function load(
    state: PartitionState,
    topic: string,
    partition: number,
    keys: ReadonlyMap<string, SkewGroupKey>,
  ): Promise<{ groups: Map<string, GroupState>; restoredThrough: number }> {
    const out = new Map<string, GroupState>();
    const missing: SkewGroupKey[] = [];
    let restoredThrough = -1;
    for (const [id, key] of keys) {
      const known = state.windows.get(id);
      if (known === undefined) missing.push(key);
      else out.set(id, known);
    }
    if (missing.length > 0) {
      const rows = await deps.skew.partials(topic, partition, state.logEpoch, missing, deps.windowMs);
      const loaded = new Map<string, { throughOffset: number; features: Map<string, SkewCounts> }>();
      for (const r of rows) {
        const id = groupId(r);
        let g = loaded.get(id);
        if (g === undefined) {
          g = { throughOffset: -1, features: new Map() };
          loaded.set(id, g);
        }
        g.throughOffset = Math.max(g.throughOffset, r.throughOffset);
        restoredThrough = Math.max(restoredThrough, r.throughOffset);
        g.features.set(r.feature, { ...r.counts, stalenessHist: [...r.counts.stalenessHist] });
      }
      for (const key of missing) {
        const id = groupId(key);
        const g = loaded.get(id);
        out.set(id, { key, throughOffset: g?.throughOffset ?? -1, features: g?.features ?? new Map() });
      }
    }
    return { groups: out, restoredThrough };
  }

  /**
   * Whether rows read back name an offset past the end of the log being read: its topic was
   * deleted and created again where no process of this one saw it (while the monitor was down, or
   * another member owned the partition; the consumer's `logRestarted` needs the old position).
   * The batch's high watermark, or its last record, shows where the log ends; a leader just
   * elected may report its high watermark behind for a moment, so a fresh read must agree. A new
   * log grown past the old offsets before it is read is not told apart.
   */
  async function ofAnotherLog(
    restoredThrough: number,
    items: ReadonlyArray<DecodedRecord<SkewRecord>>,
    context: BatchContext,
  ): Promise<boolean> {
    const last = items[items.length - 1];
    const batchEnd = Math.max(Number(context.highWatermark), last === undefined ? 0 : Number(last.record.offset) + 1);
    if (restoredThrough < batchEnd) return false;
    if (deps.logEnd === undefined) return true;
    return restoredThrough >= (await deps.logEnd(context.topic, context.partition));
  }

  /** Stores the new states as most recently used, evicting the oldest beyond the capacity (they are durable). */
  function remember(state: PartitionState, groups: Iterable<[string, GroupState]>): void {
    const windows = state.windows;
    for (const [id, g] of groups) {
      windows.delete(id);
      windows.set(id, g);
    }
    while (windows.size > capacity) windows.delete(windows.keys().next().value!);
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
   * Alerts of the touched windows whose end is within the event-time bound, from their totals over
   * every partition. A window whose end is still beyond it is `releaseDue`'s once it comes within.
   */
  async function checkAlerts(topic: string, touched: ReadonlyMap<string, GroupState>): Promise<void> {
    const at = now();
    const candidates: SkewGroupKey[] = [];
    for (const g of touched.values()) {
      if (skewAlertTime(g.key, deps.windowMs, at, deps.eventTime.maxFutureMs) === undefined) continue;
      if ([...g.features.keys()].some((f) => !alerted.has(skewAlertId(g.key, f)))) candidates.push(g.key);
    }
    await raiseBreaches(topic, candidates, at);
  }

  /** Publishes the alerts of the windows' breaching features not yet raised here; returns how many. */
  async function raiseBreaches(topic: string, keys: readonly SkewGroupKey[], at: number): Promise<number> {
    if (keys.length === 0) return 0;
    const totals = await deps.skew.totals(topic, keys, deps.windowMs);
    const alerts: DriftAlert[] = [];
    for (const t of totals) {
      const key = { model: t.model, version: t.version, windowStart: t.windowStart };
      if (alerted.has(skewAlertId(key, t.feature))) continue;
      const counts = { ...t.counts, stalenessHist: [...t.counts.stalenessHist] };
      if (!breaches(counts, deps.rule)) continue;
      const eventTime = skewAlertTime(key, deps.windowMs, at, deps.eventTime.maxFutureMs);
      if (eventTime === undefined) continue;
      alerts.push(
        skewAlert(key, t.feature, deps.windowMs, eventTime, counts, deps.rule, {
          sampleRate: deps.sampleRate,
          tolerance: deps.tolerance,
        }),
      );
    }
    if (alerts.length === 0) return 0;
    await deps.publish(alerts);
    metrics?.alerts.inc(alerts.length);
    for (const a of alerts) {
      alerted.add(a.alert_id);
      if (alerted.size > ALERTED_MEMORY) alerted.delete(alerted.values().next().value!);
      logger.warn(
        { model: a.model, version: a.model_version, feature: a.feature, window: a.window_start, share: a.statistic },
        'training-serving skew',
      );
    }
    return alerts.length;
  }

  /**
   * One release sweep of `topic`: the windows whose end came within the release horizon since the
   * last sweep (at start-up: `releaseCatchUpMs` back), page by page in window-end order; of those,
   * the ones their last batch had to leave held (`awaitsRelease`) are checked against the rule.
   * The position advances only past pages whose alerts are published: a failure retries them.
   */
  async function releaseDue(topic: string): Promise<number> {
    const at = now();
    const last = released.get(topic);
    const { after, upTo } = releaseRange(last?.windowEnd, at, deps.windowMs, deps.eventTime.maxFutureMs);
    // From the last window checked while a backlog is read (the page bound stopped the last sweep,
    // or it is behind the overlap), else from every window ending at `after` (a model is never '').
    let cursor =
      last !== undefined && (!last.complete || last.windowEnd <= after)
        ? last
        : { model: '', version: '', windowStart: 0, windowEnd: after };
    let raised = 0;
    for (let page = 0; page < RELEASE_PAGES; page++) {
      const windows = await deps.skew.windowsEnding(topic, cursor, upTo, deps.windowMs, RELEASE_PAGE);
      const held = windows.filter((w) => awaitsRelease(w, at, deps.eventTime.maxFutureMs));
      raised += await raiseBreaches(topic, held, at);
      const end = windows.at(-1);
      if (windows.length < RELEASE_PAGE) {
        // Read through the horizon: the position is the horizon itself (a sweep that found no
        // window has one too, so an outage after it resumes there, not a catch-up span back).
        released.set(topic, { model: '', version: '', windowStart: 0, windowEnd: upTo, complete: true });
        break;
      }
      cursor = end!;
      released.set(topic, { ...cursor, complete: false });
    }
    return raised;
  }

  return {
    async decode(record) {
      const event = await deps.decode(record.value);
      checkEventTime(event.event_time, now(), deps.eventTime);
      // Shadow records repeat the answered instance's features (another version scored them): comparing
      // them again would count one served vector twice.
      // No id (a producer other than the SDK): sampled by model, entity and event time, or every such
      // prediction would share one hash and be all in the sample or none (none at 0.05).
      const withoutId = event.prediction_id === '' ? ({ withoutId: true } as const) : {};
      if (event.role === 'shadow') return withoutId;
      const key = samplingKey(event.prediction_id, event.model, event.entity_id, event.event_time);
      if (!isSampled(key, deps.sampleRate)) return withoutId;
      // The names its alerts carry: refused here what the alert consumers would dead-letter, no more
      // (an empty version is compared and alerted on: the schema takes one from producers other than the SDK).
      const names = alertNameProblem(event.model, event.model_version);
      if (names !== undefined) throw new PoisonRecordError('VALIDATION_FAILED', names);
      try {
        encodeEntity(event.entity_id); // the store's own check: one bad id must not fail the batch read
      } catch (error) {
        throw new PoisonRecordError('VALIDATION_FAILED', `entity_id: ${(error as Error).message}`);
      }
      return {
        ...withoutId,
        sampled: {
          predictionId: event.prediction_id,
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
      const sampled: Array<{ offset: number; p: SampledPrediction; predictionId: string; id: string }> = [];
      for (const item of items) {
        const p = item.value.sampled;
        if (p === undefined) continue;
        const key = { model: p.model, version: p.version, windowStart: windowStartOf(p.eventTime, deps.windowMs) };
        sampled.push({ offset: Number(item.record.offset), p, predictionId: p.predictionId, id: groupId(key) });
      }
      const notSampled = items.length - sampled.length;
      const withoutId = items.reduce((n, item) => (item.value.withoutId === true ? n + 1 : n), 0);
      // A restarted log's epoch is settled by its first batch here, sampled or not: the epoch is
      // named by that batch's first record, the log's start the consumer reads it from.
      const id = partitionId(topic, partition);
      const settles = restartedLogs.has(id) || partitions.get(id)?.logStart === 'next batch';
      if (sampled.length === 0 && !(settles && items.length > 0)) {
        metrics?.predictions.inc({ outcome: 'not_sampled' }, notSampled);
        metrics?.withoutId.inc(withoutId);
        return;
      }

      const state = await partitionState(topic, partition, items);
      if (sampled.length === 0) {
        metrics?.predictions.inc({ outcome: 'not_sampled' }, notSampled);
        metrics?.withoutId.inc(withoutId);
        return;
      }
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
      const loaded = await load(state, topic, partition, keys);
      let current = loaded.groups;
      if (await ofAnotherLog(loaded.restoredThrough, items, context)) {
        startLog(
          state,
          topic,
          partition,
          startOf(items[0]!.record),
          'rows read back name offsets past the end of the source log (recreated)',
        );
        current = (await load(state, topic, partition, keys)).groups;
      }
      const fresh: typeof sampled = [];
      for (const s of sampled) {
        if (s.offset > current.get(s.id)!.throughOffset) fresh.push(s);
        // Counted before (a redelivery, a new owner): a re-send of it later in the log is a repeat.
        else if (s.predictionId !== '') state.counted?.add(sentKey(s));
      }
      // A re-send of a prediction counted lately, or of one earlier in the batch, is not counted;
      // its offset still advances its window's row, so a redelivery skips it as a replay. The ids
      // are remembered only once the rows are written: a failed attempt's retry decides the same.
      // Within one batch every copy is caught (beyond the capacity too); with the memory off, none.
      const inBatch = new Set<string>();
      const counting = fresh.filter((s) => {
        if (state.counted === undefined || s.predictionId === '') return true;
        const key = sentKey(s);
        if (inBatch.has(key)) return false;
        inBatch.add(key);
        return state.counted?.has(key) !== true;
      });

      if (fresh.length > 0) {
        const predictions = counting.map((s) => s.p);
        const reads = planReads(predictions, deps.sources);
        // Before the read: a prediction at or before this − its view's TTL had its row expired by then.
        const readAt = now();
        const rowOf = indexRows(reads, reads.length === 0 ? [] : await readRows(reads));
        // After the read: a row dated past it was written by a clock ahead of ours.
        const readEndedAt = now();
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
        const before = { compared: 0, mismatched: 0, newerRow: 0, missingInStore: 0, expired: 0 };
        const after = { ...before };
        for (const g of next.values()) for (const c of g.features.values()) add(before, c);
        // foldPredictions passes one key object per prediction: look its group up once, not per feature.
        let lastKey: SkewGroupKey | undefined;
        let lastFeatures: Map<string, SkewCounts> | undefined;
        const future = foldPredictions(
          predictions,
          deps.sources,
          rowOf,
          deps.windowMs,
          deps.tolerance,
          (key, feature) => {
            if (key !== lastKey) {
              lastKey = key;
              lastFeatures = next.get(groupId(key))!.features;
            }
            return countsIn(lastFeatures!, feature);
          },
          readAt,
          readEndedAt,
        );
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
              logEpoch: state.logEpoch,
              ...(typeof state.logStart === 'object' ? { logStart: state.logStart } : {}),
              throughOffset: g.throughOffset,
              counts,
              updatedAt,
            });
          }
        }
        await deps.skew.write(rows);
        warnFutureRows(future, readAt);
        for (const s of counting) if (s.predictionId !== '') state.counted?.add(sentKey(s));
        remember(state, next);
        for (const [id, g] of next) current.set(id, g);
        if (metrics !== undefined) {
          for (const k of ['compared', 'mismatched', 'newerRow', 'missingInStore', 'expired'] as const) {
            const outcome = k === 'newerRow' ? 'newer_row' : k === 'missingInStore' ? 'missing_in_store' : k;
            metrics.comparisons.inc({ outcome }, after[k] - before[k]);
          }
        }
      }
      // Once the rows are written: a read or write that fails and its retry count each record
      // once (a batch retried after its rows were written, e.g. a failed alert, counts `replayed`).
      metrics?.predictions.inc({ outcome: 'not_sampled' }, notSampled);
      metrics?.predictions.inc({ outcome: 'replayed' }, sampled.length - fresh.length);
      metrics?.predictions.inc({ outcome: 'duplicate' }, fresh.length - counting.length);
      warnDuplicates(topic, partition, fresh, counting);
      metrics?.predictions.inc({ outcome: 'sampled' }, counting.length);
      metrics?.withoutId.inc(withoutId);
      await checkAlerts(topic, current);
    },

    releaseDue,

    revoked(owned) {
      // A partition we own again later may have been advanced by another instance: re-read it then
      // (a restart of its log seen here is then the new owner's to find, or already in its rows).
      for (const { topic, partition } of owned) {
        partitions.delete(partitionId(topic, partition));
        restartedLogs.delete(partitionId(topic, partition));
      }
      // A release position is kept only while the topic stays owned: owned again after a while,
      // the sweep catches up from the bounded span, as at start-up.
      for (const { topic } of owned) released.delete(topic);
    },

    logRestarted(topic, partition) {
      // The topic was deleted and created again: its offsets start over and name other records.
      // The windows' rows of the old log keep its counts; the new log's are written in a new epoch.
      const state = partitions.get(partitionId(topic, partition));
      if (state === undefined) restartedLogs.add(partitionId(topic, partition));
      else startLog(state, topic, partition, 'next batch', 'source log restarted');
    },
  };
}

/**
 * At a take-up after a restart the consumer reported, whether the batch (the restarted log from its
 * start) starts the next epoch after `latest`. `latest` may already count this log: its starter
 * wrote rows and lost its commit, and this consumer reports the same restart again. It does when
 * the batch's record at the offset `latest` began with has that record's fingerprint: `latest`
 * goes on. Another record there, or an epoch naming none (the first log), is a new log. A batch not
 * holding that offset (retention moved the log's start past it) goes on in `latest` too: rows read
 * back naming offsets past the log's end then start the next (`ofAnotherLog`).
 */
function afterReportedRestart(
  latest: PartitionLog,
  items: ReadonlyArray<DecodedRecord<SkewRecord>>,
): { next: boolean; why: string } {
  const reported = 'the consumer reported a restart of the log';
  const began = latest.start;
  if (began === undefined) {
    const which = latest.epoch === 0 ? ' (the first log)' : '';
    return {
      next: true,
      why: `${reported}, and epoch ${latest.epoch}${which} names no record it began with: a new log`,
    };
  }
  const there = items.find((i) => Number(i.record.offset) === began.offset);
  if (there === undefined) {
    const batch = `offsets ${items[0]!.record.offset} to ${items.at(-1)!.record.offset}`;
    return {
      next: false,
      why: `${reported}, but this batch (${batch}) does not hold offset ${began.offset}, which epoch ${latest.epoch} began with (the log's start moved past it?): it goes on unless rows read back name offsets past the log's end`,
    };
  }
  return startOf(there.record).fingerprint === began.fingerprint
    ? {
        next: false,
        why: `${reported}, and its record at offset ${began.offset} is the one epoch ${latest.epoch} began with: that log, already counted in it (a commit lost)`,
      }
    : {
        next: true,
        why: `${reported}, and its record at offset ${began.offset} is not the one epoch ${latest.epoch} began with: a new log`,
      };
}

/** A record as the start of a log epoch: its offset and fingerprint. */
function startOf(record: InboundRecord): LogStart {
  const { key, value, timestamp } = record;
  return {
    offset: Number(record.offset),
    fingerprint: recordFingerprint({ key, value, timestamp: String(timestamp) }),
  };
}

function add(
  into: { compared: number; mismatched: number; newerRow: number; missingInStore: number; expired: number },
  c: SkewCounts,
): void {
  into.compared += c.compared;
  into.mismatched += c.mismatched;
  into.newerRow += c.newerRow;
  into.missingInStore += c.missingInStore;
  into.expired += c.expired;
}

/**
 * What a re-send is known by: its (model, version, window), prediction id, entity and features
 * (`resendKey` of `@driftline/skew`: predictions merely sharing an id are not re-sends). Ids are
 * unique per model only (two models may score one request under one id), and a copy re-sent with
 * a later event time (an SDK call retried with its input, drawing `now` again) in another window
 * is counted there. An empty id is no id: never taken for a re-send.
 */
function sentKey(s: {
  readonly id: string;
  readonly predictionId: string;
  readonly p: Pick<SampledPrediction, 'entity' | 'features'>;
}): string {
  return resendKey(s.id, s.predictionId, s.p.entity, s.p.features);
}
