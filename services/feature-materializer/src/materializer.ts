import type { SchemaRegistryCodec } from '@driftline/codec';
import type { EventTimeBounds, Logger } from '@driftline/core';
import { type FeatureViews, planWrites, type ValidatedEvent, validateFeatureEvent } from '@driftline/features';
import {
  type BackoffPolicy,
  type ConsumerHandle,
  type EventProducer,
  type KafkaClient,
  startConsumer,
} from '@driftline/kafka';
import { counter, histogram, type Registry } from '@driftline/observability';
import type { OnlineStore } from '@driftline/online-store';
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
  readonly backoff?: BackoffPolicy;
  /** Called after the store acknowledged a batch (the events are readable from then on); for probes and benchmarks. */
  readonly onWritten?: (events: readonly ValidatedEvent[]) => void;
}

export interface MaterializerHandle {
  readonly topics: readonly string[];
  ready(): boolean;
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
      'Entity writes by outcome (applied, stale; repaired also counts in applied)',
      ['outcome'],
    ),
    aggregates: counter(registry, 'driftline_feature_aggregate_updates_total', 'Entity window aggregates updated', []),
    events: counter(registry, 'driftline_feature_events_total', 'Valid feature events materialized, by view', ['view']),
    pipeline: histogram(
      registry,
      'driftline_feature_redis_pipeline_seconds',
      'Duration of one batch pipeline to Redis',
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
        metrics.rows.inc({ outcome: 'stale' }, stats.entities - stats.rowsApplied);
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
        for (const e of events) {
          if (e.eventTime < oldest) oldest = e.eventTime;
          perView.set(e.view.name, (perView.get(e.view.name) ?? 0) + 1);
        }
        for (const [view, n] of perView) metrics.events.inc({ view }, n);
        metrics.freshness.observe(Math.max(0, Date.now() - oldest) / 1000);
        options.onWritten?.(events);
      },
    },
  });
  return {
    topics,
    ready: () => consumer.ready() && options.store.ready(),
    stop: () => consumer.stop(),
  };
}
