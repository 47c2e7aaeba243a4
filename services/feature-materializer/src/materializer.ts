import type { SchemaRegistryCodec } from '@driftline/codec';
import { cutText, type EventTimeBounds, keyedLineLimit, type Logger } from '@driftline/core';
import { type FeatureViews, planWrites, type ValidatedEvent, validateFeatureEvent } from '@driftline/features';
import {
  type BackoffPolicy,
  type ConsumerHandle,
  type EventProducer,
  type KafkaClient,
  startConsumer,
} from '@driftline/kafka';
import { counter, gauge, histogram, MAX_LABEL_VALUES, type Registry } from '@driftline/observability';
import type { OnlineStore } from '@driftline/online-store';
import { type FreshnessResult, type FreshnessSpec, FreshnessTracker } from '@driftline/quality';
import { contracts, type FeatureEvent } from '@driftline/schemas';

export interface MaterializerOptions {
  readonly kafka: KafkaClient;
  readonly producer: EventProducer;
  readonly codec: SchemaRegistryCodec;
  /** Where rows are written (the Redis online store in the service). */
  readonly store: OnlineStore;
  readonly views: FeatureViews;
  /** Accepted event times: an event outside them is poison (DLQ), never a row. */
  readonly eventTime: EventTimeBounds;
  /** Wall clock the event-time bounds are relative to (default Date.now). */
  readonly now?: () => number;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly groupId: string;
  /** Prepended to every view's source topic. */
  readonly topicPrefix?: string;
  readonly partitionsConsumedConcurrently?: number;
  readonly maxBytesPerPartition?: number;
  readonly sessionTimeoutMs?: number;
  /** DRIFTLINE_STALL_TIMEOUT: a partition with lag whose commit has not moved for this long is stalled. */
  readonly stallTimeoutMs?: number;
  readonly backoff?: BackoffPolicy;
  /** Called after the store acknowledged a batch (the events are readable from then on); for probes and benchmarks. */
  readonly onWritten?: (events: readonly ValidatedEvent[]) => void;
  /**
   * Freshness of the views that declare it: measured per source partition, reported to `sink` at the
   * end of every processing-time window of `windowMs` (aligned to the epoch).
   */
  readonly freshness?: {
    readonly specs: readonly FreshnessSpec[];
    readonly windowMs: number;
    readonly sink: (results: readonly FreshnessResult[]) => Promise<void>;
  };
}

/** At most one warning line per (view, undeclared feature) this often. */
const IGNORED_FEATURE_WARNING_MS = 10 * 60_000;
/** Characters of an undeclared feature name kept in a label or a warning (the name comes from the event). */
const IGNORED_NAME_CHARS = 128;
const LONE_SURROGATES = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;

/** An undeclared name as a label value or a log field: cut, lone surrogates (no UTF-8) replaced. */
function shownName(name: string): string {
  const cut = cutText(name, IGNORED_NAME_CHARS);
  return (cut === name ? name : `${cut}…`).replace(LONE_SURROGATES, '\uFFFD');
}

/**
 * Values per (view, feature) of the names `namesOf` gives for each event (undeclared or removed
 * features), each shown as `show` gives it; undefined when no event has any.
 */
function countByViewFeature(
  events: readonly ValidatedEvent[],
  namesOf: (e: ValidatedEvent) => readonly string[] | undefined,
  show: (name: string) => string,
): Map<string, { view: string; feature: string; n: number }> | undefined {
  let counts: Map<string, { view: string; feature: string; n: number }> | undefined;
  for (const e of events) {
    const names = namesOf(e);
    if (names === undefined) continue;
    for (const name of names) {
      const feature = show(name);
      const key = `${e.view.name}\u0000${feature}`;
      counts ??= new Map();
      const c = counts.get(key);
      if (c === undefined) counts.set(key, { view: e.view.name, feature, n: 1 });
      else c.n++;
    }
  }
  return counts;
}

export interface MaterializerHandle {
  readonly topics: readonly string[];
  ready(): boolean;
  /**
   * The consumer's liveness (`ConsumerHandle.healthy`: not crashed for good, not crash-looping on a
   * missing topic, no stalled partition). The service's `/healthz` left it out (its consumer is not
   * started through `ctx.consume`): a consumer kafkajs had crashed for good stayed 200, consuming nothing.
   */
  healthy(): boolean;
  stop(): Promise<void>;
}

/**
 * The edge check of a decoded feature event read from `topic` (prefixed): its view, fields and
 * event time (within `bounds` at `now()`). A PoisonRecordError's message is the DLQ reason.
 */
export function featureRecordValidator(
  views: FeatureViews,
  prefix: string,
  bounds: EventTimeBounds,
  now: () => number = Date.now,
): (event: FeatureEvent, topic: string) => ValidatedEvent {
  const sourceOf = new Map(views.sources.map((s) => [`${prefix}${s}`, s]));
  return (event, topic) => validateFeatureEvent(views, event, sourceOf.get(topic), { bounds, now: now() });
}

/**
 * Feature events → the online store. Per partition batch: decode and validate each event (a bad
 * one is a PoisonRecordError, dead-lettered with its reason), group by (view, entity), one store
 * write per batch; the consumer loop commits the offsets only after the write resolved, and backs
 * off without committing while the store fails (a retriable SinkUnavailableError).
 */
export async function startFeatureMaterializer(options: MaterializerOptions): Promise<MaterializerHandle> {
  const { views, registry } = options;
  const prefix = options.topicPrefix ?? '';
  const sourceOf = new Map(views.sources.map((s) => [`${prefix}${s}`, s]));
  const topics = [...sourceOf.keys()];
  const codecs = new Map(topics.map((t) => [t, options.codec.forTopic(contracts.feature, t)]));
  const validate = featureRecordValidator(views, prefix, options.eventTime, options.now);
  const metrics = {
    rows: counter(
      registry,
      'driftline_feature_rows_total',
      'Entity writes by outcome (applied, stale, expired: older than the TTL on arrival, deleted; repaired: a row with an impossible stored time replaced, also counted in applied, or in expired when the replacing event is past the TTL)',
      ['outcome'],
    ),
    aggregates: counter(
      registry,
      'driftline_feature_aggregate_updates_total',
      'Entities whose served window aggregates were recomputed (not rows expired on arrival)',
      [],
    ),
    events: counter(registry, 'driftline_feature_events_total', 'Valid feature events materialized, by view', ['view']),
    // `feature` comes from the events (any name a producer sends): bounded like the model labels of
    // other services, past MAX_LABEL_VALUES names they share `__other__`. `view` is a configured name.
    ignored: counter(
      registry,
      'driftline_feature_values_ignored_total',
      'Values of materialized events for features their view does not declare (not written; the declared ones are), by view and feature',
      ['view', 'feature'],
      { bounded: ['feature'] },
    ),
    // Both labels are configured names (a view's removed_features): bounded by the view file.
    removed: counter(
      registry,
      'driftline_feature_values_removed_total',
      'Values of materialized events for features their view lists in removed_features (not written, not counted as ignored), by view and feature: flat once every producer stopped sending the name',
      ['view', 'feature'],
    ),
    pipeline: histogram(
      registry,
      'driftline_feature_redis_pipeline_seconds',
      'Duration of one batch write to Redis (its pipelined chunks, one after the other)',
      [],
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1],
    ),
    freshness: histogram(
      registry,
      'driftline_feature_event_age_seconds',
      'Event time to materialized, per batch (oldest event of the batch)',
      [],
      [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5, 30, 60, 300, 3600],
    ),
  };

  // One warning per (view, feature) per interval; past the pairs remembered (names come from the
  // events), one overflow line per interval counts the rest.
  const ignoredLines = keyedLineLimit<string>({
    intervalMs: IGNORED_FEATURE_WARNING_MS,
    maxKeys: MAX_LABEL_VALUES,
    onFull: 'overflow',
  });
  const noteIgnored = (events: readonly ValidatedEvent[]) => {
    const counts = countByViewFeature(events, (e) => e.ignored, shownName);
    if (counts === undefined) return;
    const at = Date.now();
    for (const [key, { view, feature, n }] of counts) {
      metrics.ignored.inc({ view, feature }, n);
      const leftOut = ignoredLines.admit(key, at, n);
      if (leftOut === undefined) continue;
      options.logger.warn(
        { view, feature, values: n + leftOut },
        `events carry feature "${feature}", which view "${view}" does not declare: its values are ignored (the declared features are written) — a feature removed from the view file, a producer ahead of it, or a misspelt name; to write them once fixed, resend with a new event_id or a later event_time (a copy with the same id and time is kept by digest, about half the time)`,
      );
    }
    const over = ignoredLines.overflow(at);
    if (over !== undefined) {
      options.logger.warn(
        { keys: over.keys, keysAtLeast: over.keysAtLeast, values: over.weight },
        `values of ${over.keysAtLeast ? 'at least ' : ''}${over.keys} more undeclared (view, feature) pairs ignored`,
      );
    }
  };

  // Every (view, removed feature) series from the start at 0: "no value since" reads as a flat
  // series, on an instance that has not seen one since it started too.
  for (const view of views.views) {
    for (const feature of view.removedFeatures) metrics.removed.inc({ view: view.name, feature }, 0);
  }
  const noteRemoved = (events: readonly ValidatedEvent[]) => {
    const counts = countByViewFeature(
      events,
      (e) => e.removed,
      (name) => name,
    );
    if (counts === undefined) return;
    for (const { view, feature, n } of counts.values()) metrics.removed.inc({ view, feature }, n);
  };

  const tracker = new FreshnessTracker(options.freshness?.specs ?? []);
  const lag = gauge(
    registry,
    'driftline_feature_view_lag_seconds',
    'Processing time minus the newest event time of a view, or minus the re-assignment of a partition that had no newer event here (largest over the partitions this instance owns and has seen the view on; no series without one: alert on absence)',
    ['view'],
  );
  /** Source topic (prefixed) → the views read from it that declare freshness. */
  const freshViews = new Map<string, string[]>();
  for (const spec of options.freshness?.specs ?? []) {
    const view = views.get(spec.view);
    if (view === undefined) continue;
    const topic = `${prefix}${view.source}`;
    freshViews.set(topic, [...(freshViews.get(topic) ?? []), view.name]);
  }
  let handle: ConsumerHandle | undefined;
  /**
   * Tells the tracker the partitions this member holds, each since it was assigned (the group
   * membership's clock, moved onto the wall clock); the tracker reports again only those that
   * carried the view here before (a topic's views need not reach all its partitions). Called after
   * every join — the first one comes before `startConsumer` returns, hence again once it has — and
   * before every freshness window.
   */
  const noteAssignments = () => {
    if (!tracker.enabled || handle === undefined) return;
    const wallMinusPerf = Date.now() - performance.now();
    for (const p of handle.membership().partitions) {
      const names = freshViews.get(p.topic);
      if (names === undefined) continue;
      const at = Math.round(wallMinusPerf + p.heldSince);
      for (const view of names) tracker.assigned(view, `${p.topic}/${p.partition}`, at);
    }
  };

  const consumer: ConsumerHandle = await startConsumer<ValidatedEvent>({
    kafka: options.kafka,
    groupId: options.groupId,
    topics,
    producer: options.producer,
    logger: options.logger,
    registry,
    partitionsConsumedConcurrently: options.partitionsConsumedConcurrently ?? 6,
    ...(options.maxBytesPerPartition === undefined ? {} : { maxBytesPerPartition: options.maxBytesPerPartition }),
    ...(options.sessionTimeoutMs === undefined ? {} : { sessionTimeoutMs: options.sessionTimeoutMs }),
    ...(options.stallTimeoutMs === undefined ? {} : { stallTimeoutMs: options.stallTimeoutMs }),
    ...(options.backoff === undefined ? {} : { backoff: options.backoff }),
    processor: {
      async decode(record) {
        const event = await codecs.get(record.topic)!.decode(record.value);
        return validate(event, record.topic);
      },
      async process(items) {
        const events = items.map((i) => i.value);
        const started = performance.now();
        const stats = await options.store.write(planWrites(events));
        metrics.pipeline.observe((performance.now() - started) / 1000);
        metrics.rows.inc({ outcome: 'applied' }, stats.rowsApplied);
        metrics.rows.inc({ outcome: 'expired' }, stats.rowsExpired);
        metrics.rows.inc({ outcome: 'stale' }, stats.entities - stats.rowsApplied - stats.rowsExpired);
        metrics.aggregates.inc(stats.aggregatesUpdated);
        if (stats.rowsRepaired > 0) {
          metrics.rows.inc({ outcome: 'repaired' }, stats.rowsRepaired);
          options.logger.warn(
            { rowsRepaired: stats.rowsRepaired },
            `replaced ${stats.rowsRepaired} online row(s) whose stored event time no accepted event can have (written before event times were bounded)`,
          );
        }
        let oldest = Number.POSITIVE_INFINITY;
        const perView = new Map<string, number>();
        for (const item of items) {
          // After the store acknowledged: a view is fresh when its rows are, not when events arrive.
          if (tracker.enabled)
            tracker.observe(
              item.value.view.name,
              `${item.record.topic}/${item.record.partition}`,
              item.value.eventTime,
            );
        }
        for (const e of events) {
          if (e.eventTime < oldest) oldest = e.eventTime;
          perView.set(e.view.name, (perView.get(e.view.name) ?? 0) + 1);
        }
        for (const [view, n] of perView) metrics.events.inc({ view }, n);
        noteIgnored(events);
        noteRemoved(events);
        metrics.freshness.observe(Math.max(0, Date.now() - oldest) / 1000);
        options.onWritten?.(events);
      },
      revoked(partitions) {
        for (const p of partitions) tracker.revoked(`${p.topic}/${p.partition}`);
      },
      rebalanced: noteAssignments,
    },
  });
  handle = consumer;
  noteAssignments();
  const stopFreshness =
    tracker.enabled && options.freshness !== undefined
      ? reportFreshness(tracker, noteAssignments, options.freshness, lag, options.logger)
      : () => {};
  return {
    topics,
    ready: () => consumer.ready() && options.store.ready(),
    healthy: () => consumer.healthy(),
    stop: async () => {
      stopFreshness();
      await consumer.stop();
    },
  };
}

/**
 * Every `windowMs` (at epoch-aligned window ends) evaluates the tracker and hands the rows to the
 * sink. A failing sink is logged and the window's rows are lost: they are measurements of "now",
 * and the next window measures again (a ClickHouse outage never holds the materializer's commits).
 * A view with no partition owned here loses its gauge series: a kept last value froze under the
 * bound while the partition's new owner (or nobody) watched it.
 */
function reportFreshness(
  tracker: FreshnessTracker,
  noteAssignments: () => void,
  freshness: NonNullable<MaterializerOptions['freshness']>,
  lag: {
    set(labels: { view: string }, value: number): void;
    remove(labels: { view: string }): void;
  },
  logger: Logger,
): () => void {
  const { windowMs, sink } = freshness;
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  let gauged = new Set<string>();
  const schedule = () => {
    if (stopped) return;
    const now = Date.now();
    timer = setTimeout(tick, Math.floor(now / windowMs) * windowMs + windowMs - now + 1);
    timer.unref();
  };
  const tick = () => {
    const end = Math.floor(Date.now() / windowMs) * windowMs;
    noteAssignments();
    const results = tracker.evaluate(end - windowMs, end);
    const worst = new Map<string, number>();
    for (const r of results) worst.set(r.view, Math.max(worst.get(r.view) ?? Number.NEGATIVE_INFINITY, r.lagMs));
    for (const [view, ms] of worst) lag.set({ view }, ms / 1000);
    for (const view of gauged) if (!worst.has(view)) lag.remove({ view });
    gauged = new Set(worst.keys());
    const failed = results.filter((r) => !r.passed);
    if (failed.length > 0) {
      logger.warn(
        { views: [...new Set(failed.map((r) => r.view))], windowEnd: end },
        'feature view freshness expectation failed: no recent event',
      );
    }
    if (results.length === 0) return schedule();
    sink(results)
      .catch((error: unknown) =>
        logger.warn(
          { err: (error as Error).message, windowEnd: end },
          'freshness rows not written; next window measures again',
        ),
      )
      .finally(schedule);
  };
  schedule();
  return () => {
    stopped = true;
    if (timer !== undefined) clearTimeout(timer);
  };
}
