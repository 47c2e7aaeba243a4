import {
  checkEventTime,
  DriftlineError,
  type EventTimeBounds,
  keyedLineLimit,
  type Logger,
  modelNameProblem,
  PoisonRecordError,
  recentIdsHeapWatch,
  serialByKey,
  silentLogger,
  toDriftlineError,
} from '@driftline/core';
import {
  type CloseResult,
  DEFAULT_RECENT_IDS,
  flushMessages,
  idleAdvance,
  markerWithout,
  type OutboundPartials,
  PartitionWindows,
  type RestoredProgress,
  restoredFrontierProblem,
  type SourceClock,
  WATERMARK_MAX_AHEAD_MS,
  type WindowSpec,
  windowStartOf,
} from '@driftline/drift';
import {
  type BatchContext,
  type BatchProcessor,
  type DeadLetter,
  type DecodedRecord,
  isolateRejected,
  type ProcessResult,
} from '@driftline/kafka';
import { EMPTY_EXPECTATIONS, type ExpectationSet, QualityWindows } from '@driftline/quality';
import type { PredictionEvent } from '@driftline/schemas';
import type { Progress, ProgressStore } from '@driftline/warehouse';
import type { DriftMetrics } from './metrics.js';
import { saveProgress } from './progress.js';
import type { ReferenceCache } from './reference-cache.js';
import type { SequentialHook } from './sequential.js';

/**
 * How old a source partition count may be when the markers of a closing window name it: a window
 * closes once per window size and partition, so this is about one admin metadata request per
 * window close of an instance (its partitions close the same window within a moment).
 */
export const SOURCE_COUNT_MAX_AGE_MS = 1_000;

/**
 * At most one warning per (model, version) this often for predictions with no reference to be
 * measured against (`unreferenced`), the events left out since counted in the next; and how many
 * (model, version) pairs are remembered for it (versions come from events: bounded).
 */
export const UNREFERENCED_WARNING_INTERVAL_MS = 5 * 60_000;
export const UNREFERENCED_WARNING_MAX_KEYS = 1_000;

/**
 * The same for predictions dated too far ahead of their record's time to be summarized (`ahead`:
 * a producer's clock running ahead): at most one warning per (model, version) this often.
 */
export const AHEAD_WARNING_INTERVAL_MS = 5 * 60_000;

export interface StageOneDeps {
  readonly spec: WindowSpec;
  readonly references: ReferenceCache;
  readonly progress: ProgressStore;
  readonly group: string;
  readonly sourceTopic: string;
  /** The source topic's partition count at start-up. */
  readonly sourcePartitions: number;
  /**
   * Reads the source topic's partition count from the brokers (admin metadata, never kafkajs'
   * cached view): before the markers of windows it closes are built (at most once per
   * `SOURCE_COUNT_MAX_AGE_MS`), after a rebalance, and when a batch comes from a partition at or
   * past the count known (the topic grew after start-up, as the README's scaling allows).
   */
  readonly currentSourcePartitions?: () => Promise<number>;
  readonly mergePartitions: number;
  /** Sends the partials of a flush; resolves once Kafka has them (acks=all). */
  readonly emit: (messages: readonly OutboundPartials[]) => Promise<void>;
  readonly decode: (value: Buffer | null) => Promise<PredictionEvent>;
  /** Accepted event times: a prediction outside them is poison (DLQ), never window state. */
  readonly eventTime: EventTimeBounds;
  /** Wall clock the bounds are relative to (default Date.now). */
  readonly now?: () => number;
  readonly logger?: Logger;
  readonly metrics?: DriftMetrics;
  /** The online sequential detector (off when absent). */
  readonly sequential?: SequentialHook;
  /** Data-quality expectations counted beside the summaries and sent in the partials (none by default). */
  readonly expectations?: ExpectationSet;
  /**
   * Source idleness (`idleAdvance` of @driftline/drift): a partition read to its end and silent
   * this long advances its watermark on processing time. 0 or absent: only events move it.
   */
  readonly sourceIdleMs?: number;
  /** How often `advanceIdle` is called (a longer gap between calls starts quiet time over). */
  readonly sourceIdleCheckMs?: number;
  /** Most versions per model and window on a borrowed reference (`PartitionWindows`; its default when absent). */
  readonly maxBorrowedVersions?: number;
  /**
   * Prediction ids remembered per source partition to recognise a producer's re-send
   * (`PartitionWindows`' `recentIds`; DEFAULT_RECENT_IDS when absent, 0: off).
   */
  readonly recentIds?: number;
  /** V8's heap limit, against which the remembered ids of the partitions owned are checked (the process's when absent). */
  readonly heapLimit?: number;
  /** How often at most the unreferenced warning of one (model, version) is written (UNREFERENCED_WARNING_INTERVAL_MS). */
  readonly unreferencedWarningMs?: number;
  /** (model, version) pairs warned of one by one (UNREFERENCED_WARNING_MAX_KEYS); the rest in one overflow line. */
  readonly unreferencedWarningKeys?: number;
  /** How often at most the ahead warning of one (model, version) is written (AHEAD_WARNING_INTERVAL_MS). */
  readonly aheadWarningMs?: number;
}

/**
 * Stage 1: per owned partition, tumbling event-time windows of mergeable summaries. After each
 * batch the windows the watermark passed are emitted to the partials topic, the frontier is
 * recorded, and the commit is held back to the first offset of the oldest open window.
 */
interface PartitionEntry {
  readonly windows: PartitionWindows;
  /** Last offset applied: a retried (or bisected) batch must not add its events twice. */
  lastOffset: number;
  /** Closed windows whose messages are not yet acknowledged (a failed send): sent first on retry. */
  unsent: OutboundPartials[];
  /** The frontier of windows already sent, not yet recorded in drift_progress: saved first on retry. */
  unsentProgress: Progress | undefined;
  /**
   * Windows closed whose messages are not built yet: `send` builds them once the source partition
   * count is read (kept here when the read fails, so the retry still sends them).
   */
  closing: CloseResult | undefined;
  /** Data-quality counts of the same added events, taken when their window closes. */
  readonly quality: QualityWindows;
  /** Dead letters of the current batch's refused events, by offset: named again if it is retried. */
  readonly refused: Map<number, DeadLetter>;
  /** The watermark horizon's clock (Kafka timestamps, never backwards); 0 before the first event. */
  clock: number;
}

export interface StageOne extends BatchProcessor<PredictionEvent> {
  openWindows(): number;
  /**
   * Source idleness, called on a timer: `readToEnd` lists the source partitions this member owns
   * that are read to their end (from `ConsumerHandle.positions()`). Each that has been silent long
   * enough advances its watermark on processing time and emits the windows that closes. Nothing
   * happens when the assignment changed meanwhile; failures are thrown after every partition was
   * tried (the next call retries).
   */
  advanceIdle(readToEnd: () => Promise<readonly number[]>): Promise<void>;
  /** Stops idle advances: none writes after this resolves (the one in flight is waited for). */
  stopIdle(): Promise<void>;
}

export function stageOneProcessor(deps: StageOneDeps): StageOne {
  const states = new Map<number, PartitionEntry>();
  /** Partitions found read to their end by `advanceIdle`, since when (processing time). */
  const quietSince = new Map<number, number>();
  /** Moves at every rebalance and revocation: an idle advance read before one does nothing. */
  let assignment = 0;
  /** When `advanceIdle` last finished looking (processing time). */
  let lastCheck: number | undefined;
  /** Set by `stopIdle`: idle advances write nothing more. */
  let stopped = false;
  /** Source partitions whose log restarted before their state was made: it forgets the progress it loads. */
  const restartedLogs = new Set<number>();
  /**
   * One batch or idle advance of a partition at a time (a timer drives the advances); a stale
   * advance of a revoked partition finishes before a new owner's batch of it starts.
   */
  const locked = serialByKey();
  const now = deps.now ?? Date.now;
  let sourcePartitions = deps.sourcePartitions;
  // Set by a rebalance: partitions added to the source topic start one on every member, also on
  // those that own none of the new ones and would otherwise keep naming the old count.
  let recountSource = false;
  /** When the source partition count was last read (processing time, at the read's start). */
  let countedAt = Number.NEGATIVE_INFINITY;
  /** The read in flight: partitions closing a window meanwhile share it. */
  let counting: Promise<void> | undefined;
  /** Re-reads the source topic's partition count (a topic only grows); one line when it grew. */
  const recount = async (topic: string): Promise<void> => {
    const started = now();
    const n = (await deps.currentSourcePartitions?.()) ?? 0;
    countedAt = started;
    if (n <= sourcePartitions) return;
    sourcePartitions = n;
    logger.info({ topic, partitions: n }, 'source topic has more partitions now');
  };
  /**
   * The source partition count the markers of windows closing now name. kafkajs' view of a grown
   * topic lags by up to its metadata age (30 s) and a rejoin: partitions 0 and 1 closed windows
   * naming 2 partitions while producers already wrote to partition 2, and the merge completed the
   * windows without it, its events excluded. Read from the brokers, at most once per
   * `SOURCE_COUNT_MAX_AGE_MS`; a failed read is retriable (the windows wait in `closing`).
   */
  async function closingSourcePartitions(topic: string): Promise<number> {
    if (deps.currentSourcePartitions === undefined || now() - countedAt < SOURCE_COUNT_MAX_AGE_MS) {
      return sourcePartitions;
    }
    counting ??= recount(topic).finally(() => {
      counting = undefined;
    });
    try {
      await counting;
    } catch (error) {
      // Retriable whatever the cause (an outage ends as NOT_FOUND after the admin's retries): a
      // non-retriable error here would dead-letter records already counted in the windows.
      throw new DriftlineError(
        'SOURCE_UNAVAILABLE',
        `${topic}: the partition count for the markers of closing windows could not be read: ${toDriftlineError(error).message}`,
        { retriable: true, cause: error },
      );
    }
    return sourcePartitions;
  }
  const logger = deps.logger ?? silentLogger;
  // Predictions no reference measures (a version promoted without one, a model that never had
  // one): a counter alone said nothing of which, and a version that served production without a
  // reference went unmonitored for good while the one line at its promotion scrolled away.
  // Past the pairs remembered, one overflow line per interval counts the rest: evicting the oldest
  // pair wrote a line for every event once more pairs than that cycled (invented versions).
  const unreferencedKeys = deps.unreferencedWarningKeys ?? UNREFERENCED_WARNING_MAX_KEYS;
  const unreferencedLines = keyedLineLimit<string>({
    intervalMs: deps.unreferencedWarningMs ?? UNREFERENCED_WARNING_INTERVAL_MS,
    maxKeys: unreferencedKeys,
    onFull: 'overflow',
  });
  /**
   * One line per (model, version) with unreferenced events in a batch, at most once per interval:
   * `unmonitoredEvents` are those of every partition of this instance since its last line.
   */
  const warnUnreferenced = (counts: ReadonlyMap<string, number>) => {
    const at = now();
    for (const [key, events] of counts) {
      const leftOut = unreferencedLines.admit(key, at, events);
      if (leftOut === undefined) continue;
      const [model = '', version = ''] = key.split('\u0000');
      logger.warn(
        {
          model,
          version,
          unmonitoredEvents: events + leftOut,
          fix: `driftline reference --model ${model} --version ${version} --file <training data>.csv (or the trainer's reference save)`,
        },
        'predictions of a version without a reference profile are not monitored for drift (no drift_windows rows, no alerts): store its reference',
      );
    }
    const more = unreferencedLines.overflow(at);
    if (more !== undefined) {
      logger.warn(
        {
          pairs: more.keys,
          pairsAtLeast: more.keysAtLeast,
          unmonitoredEvents: more.weight,
          rememberedPairs: unreferencedLines.size,
        },
        `${more.keysAtLeast ? 'over ' : ''}${more.keys} more (model, version) pairs without a reference profile, ${more.weight} events not monitored for drift (past the ${unreferencedKeys} pairs warned of one by one; invented versions?)`,
      );
    }
  };
  // Predictions dated past the horizon (`ahead`): summarized nowhere, counted in the late count of
  // the horizon's window. The SDK and the decoder accept an hour ahead, the horizon is a minute:
  // a producer 10 minutes ahead had every event excluded with no log line, and the service-wide
  // late-events alert (5 %) never fires for a small model.
  const aheadLines = keyedLineLimit<string>({
    intervalMs: deps.aheadWarningMs ?? AHEAD_WARNING_INTERVAL_MS,
    maxKeys: unreferencedKeys,
    onFull: 'overflow',
  });
  const maxAheadMs = deps.spec.maxAheadMs ?? WATERMARK_MAX_AHEAD_MS;
  /** One line per (model, version) with events ahead in a batch, at most once per interval; `leadMs` the batch's largest. */
  const warnAhead = (counts: ReadonlyMap<string, { events: number; leadMs: number }>) => {
    const at = now();
    for (const [key, { events, leadMs }] of counts) {
      const leftOut = aheadLines.admit(key, at, events);
      if (leftOut === undefined) continue;
      const [model = '', version = ''] = key.split('\u0000');
      logger.warn(
        {
          model,
          version,
          aheadEvents: events + leftOut,
          leadMs,
          lead: `${(leadMs / 60_000).toFixed(1)} min`,
          maxAheadMs,
          windowMs: deps.spec.sizeMs,
          setting: 'DRIFTLINE_DRIFT_MAX_AHEAD',
          fix: "the producer's clock runs ahead: synchronise it (NTP) or set event_time from a clock that does not",
        },
        `predictions dated ${(leadMs / 60_000).toFixed(1)} min ahead of their arrival are not measured for drift (an event counts only when its window opens no later than that of its arrival + DRIFTLINE_DRIFT_MAX_AHEAD, ${maxAheadMs / 1000} s): they are counted in late_events only`,
      );
    }
    const more = aheadLines.overflow(at);
    if (more !== undefined) {
      logger.warn(
        { pairs: more.keys, pairsAtLeast: more.keysAtLeast, aheadEvents: more.weight, maxAheadMs },
        `${more.keysAtLeast ? 'over ' : ''}${more.keys} more (model, version) pairs with predictions dated past DRIFTLINE_DRIFT_MAX_AHEAD, ${more.weight} events not measured for drift`,
      );
    }
  };
  const recentIds = deps.recentIds ?? DEFAULT_RECENT_IDS;
  const watchHeap = recentIdsHeapWatch('DRIFTLINE_DRIFT_RECENT_IDS', recentIds, logger, deps.heapLimit);
  /** The window start of the last `resolve` (`add`'s): an unreferenced event's reference is checked there. */
  let resolvedAt = 0;
  const resolve = (m: string, v: string, w: number) => {
    resolvedAt = w;
    return deps.references.resolve(m, v, w);
  };
  const openWindows = () => {
    let n = 0;
    for (const s of states.values()) n += s.windows.openWindows();
    return n;
  };
  /**
   * Emits what is closed but unsent, then records the frontier. Each step is forgotten as soon as
   * it is acknowledged: when ClickHouse (the progress store) is down, a retry of the batch saves
   * the progress again but never re-sends partials Kafka already has.
   */
  /**
   * Thrown by an idle advance whose partition was given away or stopped while it sent. Retriable,
   * so that isolating a refused partial rethrows it rather than taking it for Kafka's refusal.
   */
  class NoLongerOwned extends DriftlineError {
    constructor() {
      super('SOURCE_UNAVAILABLE', 'partition no longer owned by this member', { retriable: true });
    }
  }
  async function send(
    entry: PartitionEntry,
    topic: string,
    partition: number,
    owned: () => boolean = () => true,
  ): Promise<void> {
    // An idle advance runs outside the consumer's rebalance protocol: it checks before every write
    // that the partition is still this member's (another may be restoring its frontier already).
    const check = () => {
      if (!owned()) throw new NoLongerOwned();
    };
    if (entry.closing !== undefined) {
      const partitions = await closingSourcePartitions(topic);
      const built = flushMessages(
        { topic, partition, partitions },
        entry.closing,
        deps.spec.sizeMs,
        deps.mergePartitions,
      );
      entry.unsent = [...entry.unsent, ...built];
      entry.closing = undefined;
    }
    // Window by window (a window's partials, then its markers), each step forgotten once sent.
    while (entry.unsent.length > 0) {
      check();
      // One step: the partials up to the first marker, and the markers that follow them.
      let end = entry.unsent.findIndex((m) => m.marker !== undefined);
      if (end < 0) end = entry.unsent.length;
      while (end < entry.unsent.length && entry.unsent[end]?.marker !== undefined) end++;
      const step = entry.unsent.slice(0, end);
      const partials = step.filter((m) => m.marker === undefined);
      // A message Kafka refuses as it is (larger than the partials topic's max.message.bytes: a
      // model with thousands of features) is isolated and left out, loudly: kept, it failed every
      // later send of the partition, which then dead-lettered every prediction and stalled.
      const refused = await isolateRejected(partials, (part) => {
        check();
        return deps.emit(part);
      });
      for (const { item, error } of refused) {
        logger.error(
          {
            topic,
            partition,
            model: item.key,
            bytes: item.value.length,
            events: item.events,
            code: error.code,
            reason: error.message,
          },
          'drift partials refused by Kafka: their events are left out of the window',
        );
        deps.metrics?.partialsDropped.inc({ reason: 'refused' });
        deps.metrics?.eventsExcluded.inc(item.events);
      }
      // The window's markers list only what was sent: a marker naming a refused partial made the
      // merge wait for it for ever, holding every later window of its merge partition.
      const left = refused.map((r) => r.item);
      const markers = step.filter((m) => m.marker !== undefined).map((m) => markerWithout(m, left));
      entry.unsent = [...markers, ...entry.unsent.slice(step.length)];
      check();
      if (markers.length > 0) await deps.emit(markers);
      entry.unsent = entry.unsent.slice(markers.length);
    }
    if (entry.unsentProgress !== undefined) {
      check();
      const progress = entry.unsentProgress;
      await saveProgress(deps.progress, 'stage1', deps.group, topic, partition, progress);
      // Replaced meanwhile by a log restart (`forgetLog`): the new log's progress is still to be saved.
      if (entry.unsentProgress === progress) entry.unsentProgress = undefined;
    }
  }
  /** The partition's state, restoring the frontier a previous owner recorded on first use. */
  async function entryFor(topic: string, partition: number): Promise<PartitionEntry> {
    const known = states.get(partition);
    if (known !== undefined) return known;
    const loaded = await deps.progress.load('stage1', deps.group, topic, partition);
    let restored: RestoredProgress | undefined;
    if (loaded !== undefined) {
      const problem = restoredFrontierProblem(loaded.position, deps.spec.sizeMs, now(), deps.eventTime);
      if (problem === undefined)
        restored = {
          closedUntil: loaded.position,
          offset: loaded.offset,
          ...(loaded.lateFrom === undefined ? {} : { lateFrom: loaded.lateFrom }),
        };
      else {
        // Written before event times were bounded: using it would make every event late forever.
        logger.error(
          { topic: topic, partition: partition, position: loaded.position, offset: loaded.offset },
          `restored drift progress refused and not used (stage 1): ${problem}`,
        );
      }
    }
    // Its memory of prediction ids goes with it: dropped on revoke, rebuilt by the replay.
    const windows = new PartitionWindows(deps.spec, resolve, restored, undefined, deps.maxBorrowedVersions, recentIds);
    const quality = new QualityWindows(deps.expectations ?? EMPTY_EXPECTATIONS);
    const entry: PartitionEntry = {
      windows,
      lastOffset: -1,
      unsent: [],
      unsentProgress: undefined,
      closing: undefined,
      quality,
      refused: new Map(),
      clock: 0,
    };
    states.set(partition, entry);
    watchHeap(states.size);
    if (restartedLogs.delete(partition)) forgetLog(entry);
    return entry;
  }
  /**
   * Progress restored by a partition that has applied nothing here yet, naming an offset past the
   * end of the log being read: the log started over where no process saw it (the topic deleted and
   * created again while the monitor was down, or while another member owned the partition: the
   * consumer's `logRestarted` needs the old position, and Kafka deletes the group's commits with
   * the topic). Its offsets name the old log's records: forgotten as on `logRestarted`, or the
   * new log's late events below them were dropped as replays (found by a review). A new log that
   * has grown past the old offset before the monitor reads it is not told apart.
   */
  function forgetRestoredOfAnotherLog(
    entry: PartitionEntry,
    ctx: { readonly topic: string; readonly partition: number; readonly highWatermark: string },
    items: ReadonlyArray<DecodedRecord<PredictionEvent>>,
  ): void {
    const restoredOffset = entry.windows.restored?.offset;
    if (entry.lastOffset >= 0 || restoredOffset === undefined || restoredOffset <= 0 || items.length === 0) return;
    const logEnd = Math.max(Number(ctx.highWatermark), Number(items[items.length - 1]!.record.offset) + 1);
    if (logEnd >= restoredOffset) return;
    logger.warn(
      { topic: ctx.topic, partition: ctx.partition, restoredOffset, logEnd },
      'restored drift progress names offsets past the end of the log (its topic was deleted and created again): its offsets are forgotten',
    );
    forgetLog(entry);
  }
  /**
   * The source partition's log restarted: offsets applied, refused or recorded before name the old
   * log's records. Forgotten by the replay guard (it dropped the new log's records up to the old
   * last offset), the windows (a restored offset made the new log's late events below it replays,
   * dropped: DESIGN says late events are counted) and drift_progress, whose old offsets a new owner
   * would restore: the frontier is recorded again before the new log's first batch, with offsets of
   * the new log (none of its records before it). The open windows stay: they are the old log's
   * events, still to be emitted; so do the closed frontier and the clock.
   */
  function forgetLog(entry: PartitionEntry): void {
    entry.lastOffset = -1;
    entry.refused.clear();
    entry.windows.logRestarted();
    const position = entry.windows.closedUntil();
    if (Number.isFinite(position)) entry.unsentProgress = { position, offset: 0, lateFrom: 0 };
  }
  return {
    openWindows,
    async decode(record) {
      const event = await deps.decode(record.value);
      checkEventTime(event.event_time, now(), deps.eventTime);
      const problem = modelNameProblem(event.model, event.model_version);
      if (problem !== undefined) throw new PoisonRecordError('VALIDATION_FAILED', problem);
      return event;
    },
    process: (items, ctx) =>
      locked(ctx.partition, async () => {
        try {
          return await processBatch(items, ctx);
        } finally {
          quietSince.delete(ctx.partition); // a record came: quiet again from the next check
        }
      }),
    advanceIdle,
    async stopIdle() {
      stopped = true;
      await locked.idle();
    },
    rebalanced() {
      recountSource = true;
      assignment++;
    },
    revoked(partitions) {
      assignment++;
      for (const p of partitions) {
        if (p.topic !== deps.sourceTopic) continue;
        states.delete(p.partition);
        quietSince.delete(p.partition);
        restartedLogs.delete(p.partition); // a new owner records the new log's progress itself
        deps.sequential?.revoked(p.partition);
      }
      deps.metrics?.windowsOpen.set(openWindows());
    },
    logRestarted(topic, partition) {
      // The source topic was deleted and created again: its offsets start over (see `forgetLog`).
      if (topic !== deps.sourceTopic) return;
      const entry = states.get(partition);
      logger.warn(
        { topic, partition, lastOffset: entry?.lastOffset },
        'source log restarted: offsets applied and recorded before are forgotten (stage 1)',
      );
      // Not owned yet here (revoked while the topic was gone): the progress loaded with it is the old log's.
      if (entry === undefined) restartedLogs.add(partition);
      else forgetLog(entry);
    },
  };

  async function processBatch(
    items: ReadonlyArray<DecodedRecord<PredictionEvent>>,
    ctx: BatchContext,
  ): Promise<void | ProcessResult> {
    quietSince.delete(ctx.partition);
    const last = items[items.length - 1];
    if (last === undefined) return;
    if (recountSource) {
      recountSource = false;
      await recount(ctx.topic).catch(() => {}); // best effort: the merge takes the most any source names
    }
    if (ctx.partition >= sourcePartitions) {
      // The topic grew after start-up. Partials naming the old count were refused by the merge
      // stage as malformed (partition ≥ partitions): dead-lettered, their events lost, and the
      // merge waited for the new partitions' markers until the idle timeout, window after window.
      await recount(ctx.topic);
      if (ctx.partition >= sourcePartitions) {
        throw new DriftlineError(
          'SOURCE_UNAVAILABLE',
          `${ctx.topic}: partition ${ctx.partition} is not in the topic's metadata yet (${sourcePartitions} partitions)`,
          { retriable: true },
        );
      }
    }
    const entry = await entryFor(ctx.topic, ctx.partition);
    forgetRestoredOfAnotherLog(entry, ctx, items);
    await send(entry, ctx.topic, ctx.partition); // what a failed attempt closed but could not send
    // One entry per (model, version) with the earliest window its events are counted in: a version
    // borrowing a promoted version's reference needs the lender in force there and every later one.
    // Placed as `add` places them (late: in the open window; ahead: in the horizon's; replayed or
    // applied already: in none): by their own windows, one late event made the batch load every
    // lender promoted since its long-closed window. The clocks move as in the loop below, on a wall
    // time read before it: a clock that is later there only moves an event to a later window.
    const pairs = new Map<string, { model: string; version: string; earliestWindowStart: number }>();
    const placedAt = now();
    let eventClock = entry.windows.eventClock();
    let recordClock = entry.clock;
    for (const { value: e, record } of items) {
      const offset = Number(record.offset);
      if (offset <= entry.lastOffset) continue;
      recordClock = Math.max(
        recordClock,
        record.timestamp > 0 && record.timestamp < placedAt ? record.timestamp : placedAt,
      );
      const placed = entry.windows.placement(e.event_time, offset, recordClock, eventClock);
      eventClock = placed.eventClock;
      const windowStart = placed.windowStart;
      if (windowStart === undefined) continue;
      const key = `${e.model}\u0000${e.model_version}`;
      const pair = pairs.get(key);
      if (pair === undefined)
        pairs.set(key, { model: e.model, version: e.model_version, earliestWindowStart: windowStart });
      else if (windowStart < pair.earliestWindowStart) pair.earliestWindowStart = windowStart;
    }
    await deps.references.ensure(pairs.values());
    await deps.sequential?.prepare(items.map((i) => i.value));

    const state = entry.windows;
    // Refusals of earlier batches were dead-lettered with them; these items' are named again on a retry.
    const first = Number(items[0]!.record.offset);
    for (const offset of entry.refused.keys()) if (offset < first) entry.refused.delete(offset);
    const deadLetters: DeadLetter[] = [];
    const before = {
      values: state.valuesAdded,
      late: state.lateEvents,
      ahead: state.aheadEvents,
      unref: state.unreferencedEvents,
      replayed: state.replayedEvents,
      refused: state.refusedEvents,
      duplicate: state.duplicateEvents,
    };
    let added = 0;
    let unreadableEvents = 0;
    /** Unreferenced events of this batch by (model, version). */
    const unreferenced = new Map<string, number>();
    /** Events ahead of the horizon in this batch by (model, version), with the largest lead. */
    const aheadOf = new Map<string, { events: number; leadMs: number }>();
    const at = now();
    for (const item of items) {
      const offset = Number(item.record.offset);
      if (offset <= entry.lastOffset) {
        const refusal = entry.refused.get(offset);
        if (refusal !== undefined) deadLetters.push(refusal);
        continue;
      }
      // The watermark's horizon runs on the record's Kafka timestamp (wall time when it has none
      // or is ahead of it): on the wall clock, a replay or a catch-up let one event dated an hour
      // ahead close that hour's windows, and excluded events live processing had counted.
      // Never backwards within a partition: producers' timestamps are not monotonic (clocks of
      // several instances), and a stamp behind the one before made an on-time event "ahead".
      const stamp = item.record.timestamp;
      entry.clock = Math.max(entry.clock, stamp > 0 && stamp < at ? stamp : at);
      const outcome = state.add(item.value, offset, entry.clock);
      // Its reference cannot be read (a profile of another format): this event alone is
      // dead-lettered, after `add` moved the clock with its time as with any event's (left out
      // before it, a partition carrying only that model held the merge's windows until the idle
      // timeout). Thrown from `ensure`, it failed the whole batch: the consumer held the partition
      // (every model in it) as a processor fault and bisected mixed batches, a query per attempt.
      const unreadable =
        outcome === 'unreferenced'
          ? deps.references.unreadableFor(item.value.model, item.value.model_version, resolvedAt)
          : undefined;
      if (unreadable !== undefined) {
        const refusal: DeadLetter = {
          record: item.record,
          code: 'CONFIG_INVALID',
          reason: `the reference ${unreadable.referenceId} of ${unreadable.model}/${unreadable.version} cannot be read (${unreadable.reason}): store it again with this release's driftline reference or trainer`,
        };
        entry.refused.set(offset, refusal);
        deadLetters.push(refusal);
        entry.lastOffset = offset;
        unreadableEvents++;
        continue;
      }
      if (outcome === 'refused') {
        const refusal: DeadLetter = {
          record: item.record,
          code: 'VALIDATION_FAILED',
          reason: state.refusal(item.value.model, item.value.model_version),
        };
        entry.refused.set(offset, refusal);
        deadLetters.push(refusal);
        entry.lastOffset = offset;
        continue;
      }
      if (outcome === 'unreferenced') {
        const key = `${item.value.model}\u0000${item.value.model_version}`;
        unreferenced.set(key, (unreferenced.get(key) ?? 0) + 1);
      }
      if (outcome === 'ahead') {
        const key = `${item.value.model}\u0000${item.value.model_version}`;
        const leadMs = item.value.event_time - entry.clock;
        const seen = aheadOf.get(key);
        aheadOf.set(key, { events: (seen?.events ?? 0) + 1, leadMs: Math.max(seen?.leadMs ?? 0, leadMs) });
      }
      // A re-send of a prediction summarized here: no window, quality or detector sees it again.
      if (outcome === 'duplicate') {
        entry.lastOffset = offset;
        continue;
      }
      // One read of each value: quality and the detector take what the summaries read (and the
      // slot they binned it in) for an added event; other outcomes read the event themselves.
      const read = outcome === 'added' ? state.added : undefined;
      // Exactly the events the summaries took (not late, replayed or unreferenced ones), so the
      // quality counts live, close and replay with the same windows.
      if (read !== undefined && entry.quality.enabled) {
        const e = item.value;
        entry.quality.add(windowStartOf(e.event_time, deps.spec.sizeMs), e.model, e.model_version, e.features, read);
      }
      deps.sequential?.observe(ctx.partition, item.value, offset, read);
      entry.lastOffset = offset;
      added++;
    }
    if (unreferenced.size > 0) warnUnreferenced(unreferenced);
    if (aheadOf.size > 0) warnAhead(aheadOf);
    const next = Number(last.record.offset) + 1;
    const flush = withQuality(state.closeReady(), entry.quality);
    if (hasMessages(flush)) {
      entry.closing = flush;
      entry.unsentProgress = {
        position: flush.closedUntil,
        offset: next,
        lateFrom: state.lateFrom(flush.closedUntil, next),
      };
      await send(entry, ctx.topic, ctx.partition);
    }
    const m = deps.metrics;
    if (m !== undefined) {
      const late = state.lateEvents - before.late;
      const ahead = state.aheadEvents - before.ahead;
      const unref = state.unreferencedEvents - before.unref - unreadableEvents; // dead-lettered, not unreferenced
      const replayed = state.replayedEvents - before.replayed;
      const refused = state.refusedEvents - before.refused;
      const duplicate = state.duplicateEvents - before.duplicate;
      m.values.inc(state.valuesAdded - before.values);
      m.events.inc({ outcome: 'added' }, added - late - ahead - unref - replayed);
      if (late > 0) m.events.inc({ outcome: 'late' }, late);
      if (ahead > 0) m.events.inc({ outcome: 'ahead' }, ahead);
      if (unref > 0) m.events.inc({ outcome: 'unreferenced' }, unref);
      if (replayed > 0) m.events.inc({ outcome: 'replayed' }, replayed);
      if (refused > 0) m.events.inc({ outcome: 'refused' }, refused);
      if (duplicate > 0) m.events.inc({ outcome: 'duplicate' }, duplicate);
      if (unreadableEvents > 0) m.events.inc({ outcome: 'unreadable_reference' }, unreadableEvents);
      if (flush.windows.length > 0) m.windowsClosed.inc(flush.windows.length);
      m.windowsOpen.set(openWindows());
    }
    await deps.sequential?.flush(ctx.topic, ctx.partition); // its rows and alerts before any commit
    const commitOffset = String(state.commitOffset(next));
    return deadLetters.length === 0 ? { commitOffset } : { commitOffset, deadLetters };
  }

  async function advanceIdle(readPositions: () => Promise<readonly number[]>): Promise<void> {
    const idleMs = deps.sourceIdleMs ?? 0;
    if (idleMs <= 0) return;
    const seen = assignment;
    // Quiet time is what this member saw continuously: a failed read or a long gap since the last
    // check ended (a broker outage, a stalled process) starts it over — producers buffer through
    // an outage. The gap allowed is three checks' spacing, at least half the idle time: a timer
    // fires a millisecond late, and a check may take a while (positions, ClickHouse).
    const gapMs = Math.max(idleMs / 2, 3 * (deps.sourceIdleCheckMs ?? 0));
    if (lastCheck !== undefined && now() - lastCheck > gapMs) quietSince.clear();
    let readToEnd: readonly number[];
    try {
      readToEnd = await readPositions();
    } catch (error) {
      quietSince.clear();
      lastCheck = now();
      throw error;
    }
    // Partitions given away meanwhile must not be written for: another member owns their progress.
    if (assignment !== seen) {
      lastCheck = now();
      return;
    }
    const at = now();
    const owned = new Set(readToEnd);
    for (const p of quietSince.keys()) if (!owned.has(p)) quietSince.delete(p);
    let failure: unknown;
    for (const partition of readToEnd) {
      if (!quietSince.has(partition)) quietSince.set(partition, at);
      // A partition the topic grew by is first seen by a batch (it recounts the topic).
      if (partition >= sourcePartitions) continue;
      try {
        await locked(partition, () => advancePartition(partition, at, idleMs, seen));
      } catch (error) {
        if (!(error instanceof NoLongerOwned)) failure ??= error;
      }
    }
    lastCheck = now();
    if (failure !== undefined) throw failure;
  }

  /** Moves a silent partition's watermark on processing time (`idleAdvance`) and emits what that closes. */
  async function advancePartition(partition: number, at: number, idleMs: number, seen: number): Promise<void> {
    const since = quietSince.get(partition);
    if (since === undefined || assignment !== seen || stopped) return; // a batch, a rebalance or a stop came meanwhile
    const topic = deps.sourceTopic;
    const existed = states.has(partition);
    const entry = await entryFor(topic, partition);
    if (assignment !== seen) {
      // Restored from a frontier that is not this member's to keep: its next owner restores its own.
      if (!existed && states.get(partition) === entry) states.delete(partition);
      return;
    }
    const owned = () => assignment === seen && !stopped;
    await send(entry, topic, partition, owned); // what a failed attempt closed but could not send
    const clockOf = (e: PartitionEntry, quietMs: number): SourceClock => ({
      latestEventTime: e.windows.latestEventTime(),
      restoredClock: e.windows.restoredClock(),
      eventClock: e.windows.eventClock(),
      recordClock: e.clock,
      quietMs,
    });
    const others: SourceClock[] = [];
    for (const [p, e] of states) if (p !== partition) others.push(clockOf(e, 0)); // followed, not moved
    const target = idleAdvance(clockOf(entry, at - since), others, at, idleMs);
    if (target === undefined) return;
    const state = entry.windows;
    const closedBefore = state.watermark();
    state.advanceTo(target);
    const flush = withQuality(state.closeReady(), entry.quality);
    if (!hasMessages(flush)) return;
    entry.closing = flush;
    // Not below a restored frontier's offset (0 once the log restarted: it named the old log's records).
    const offset = Math.max(entry.lastOffset + 1, state.restored?.offset ?? 0);
    entry.unsentProgress = { position: flush.closedUntil, offset, lateFrom: state.lateFrom(flush.closedUntil, offset) };
    await send(entry, topic, partition, owned);
    if (flush.windows.length > 0) deps.metrics?.windowsClosed.inc(flush.windows.length);
    deps.metrics?.windowsOpen.set(openWindows());
    deps.metrics?.idleAdvances.inc();
    logger.debug(
      { topic, partition, watermark: state.watermark(), before: closedBefore, windows: flush.windows.length },
      'silent partition advanced its watermark on processing time',
    );
  }
}

/** Whether `flushMessages` has anything to send for a flush: closed windows, or a frontier that moved. */
function hasMessages(flush: CloseResult): boolean {
  return flush.advanced || flush.windows.length > 0;
}

/** Puts each closed partial's quality section (if any) into it, and forgets it. */
function withQuality(flush: CloseResult, quality: QualityWindows): CloseResult {
  if (!quality.enabled || flush.windows.length === 0) return flush;
  return {
    ...flush,
    windows: flush.windows.map((w) => ({
      ...w,
      partials: w.partials.map((p) => {
        const section = quality.take(p.windowStart, p.model, p.version);
        return section === undefined ? p : { ...p, quality: section };
      }),
    })),
  };
}
