import { setTimeout as sleep } from 'node:timers/promises';
import {
  fullBucket,
  groupAlerts,
  planSends,
  type Receiver,
  type RoutedAlert,
  type RoutingTable,
  receiversFor,
  severityOf,
  type TokenBucket,
} from '@driftline/alerting';
import {
  DriftlineError,
  type EventTimeBounds,
  eventTimeProblem,
  type Logger,
  modelNameProblem,
  PoisonRecordError,
  windowTimeProblem,
} from '@driftline/core';
import type { BatchProcessor, DecodedRecord, InboundRecord } from '@driftline/kafka';
import { counter, histogram, type Registry } from '@driftline/observability';
import type { DriftAlert } from '@driftline/schemas';
import type { AlertDeliveryRow, AlertDeliveryStore } from '@driftline/warehouse';
import { type DeliverOptions, deliver } from './deliver.js';

export interface RouterDeps {
  readonly routes: RoutingTable;
  /**
   * The one receiver this processor delivers to (its consumer group is the receiver's own, so a
   * receiver that is down holds back only its own alerts); every receiver when absent.
   */
  readonly receiver?: string;
  /** Whether this processor logs and counts the alerts no route matched (one of the receivers' does). */
  readonly reportsUnrouted?: boolean;
  readonly store: AlertDeliveryStore;
  readonly decode: (record: InboundRecord) => Promise<DriftAlert> | DriftAlert;
  readonly eventTime: EventTimeBounds;
  readonly deliver: Omit<DeliverOptions, 'onAttempt'>;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly now?: () => number;
}

const ID_LOG_LIMIT = 20;

/**
 * The router's batch processor. Per batch: route every alert (model, kind, severity → receivers),
 * drop the ids a receiver already got (alert_deliveries, and deliveries not yet recorded), group
 * each receiver's alerts, spend its token bucket (excess merged into a digest, or wait for a
 * token), deliver — receivers in parallel, each message until delivered or its retry budget is
 * spent — record every outcome in alert_deliveries, and only then let the loop commit.
 *
 * So: at-least-once per receiver. A receiver that stays down (no answer, 408, 425, 429, 5xx) fails
 * the batch retriably once its retry budget, shared by the batch's messages to it, is spent: the
 * loop backs off and retries it, nothing committed, the deliveries already made recorded and
 * skipped. Only a permanent refusal (another 4xx, a request that cannot be built) is recorded
 * `failed` and given up. It never delays the other receivers' deliveries of the batch, and the
 * service runs one processor per receiver (`receiver` set), each in its own consumer group, so it
 * does not delay their later batches either.
 */
export function routerProcessor(deps: RouterDeps): BatchProcessor<DriftAlert> {
  const now = deps.now ?? Date.now;
  const buckets = new Map<string, TokenBucket>();
  // Deliveries made but not yet recorded (the insert failed): they count for deduplication when
  // the loop retries the batch, and are written with it.
  let unrecorded: AlertDeliveryRow[] = [];
  const m = {
    routed: counter(deps.registry, 'driftline_alerts_routed_total', 'Alerts routed to a receiver', ['receiver']),
    unrouted: counter(deps.registry, 'driftline_alerts_unrouted_total', 'Alerts no route and no default matched', [
      'kind',
    ]),
    deduplicated: counter(
      deps.registry,
      'driftline_alerts_deduplicated_total',
      'Alerts not sent again: already delivered to the receiver',
      ['receiver'],
    ),
    digests: counter(
      deps.registry,
      'driftline_alert_digests_total',
      'Messages that merged groups because the receiver reached its rate limit',
      ['receiver'],
    ),
    deliveries: counter(deps.registry, 'driftline_alert_deliveries_total', 'Alert messages finished, by outcome', [
      'receiver',
      'status',
    ]),
    attempts: counter(deps.registry, 'driftline_alert_delivery_attempts_total', 'HTTP attempts to receivers', [
      'receiver',
      'outcome',
    ]),
    seconds: histogram(
      deps.registry,
      'driftline_alert_delivery_seconds',
      'First attempt to final outcome of one message',
      ['receiver'],
      [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300],
    ),
  };

  async function toReceiver(
    receiver: Receiver,
    routed: readonly RoutedAlert[],
    heartbeat: () => Promise<void>,
  ): Promise<AlertDeliveryRow[]> {
    const alerts = [...new Map(routed.map((a) => [a.alert.alert_id, a])).values()]; // an id once per batch
    const pending = new Set(
      unrecorded.filter((r) => r.receiver === receiver.name && r.status === 'delivered').flatMap((r) => r.alert_ids),
    );
    const done = await deps.store.delivered(
      receiver.name,
      alerts.map((a) => a.alert.alert_id),
    );
    const fresh = alerts.filter((a) => !done.has(a.alert.alert_id) && !pending.has(a.alert.alert_id));
    if (alerts.length > fresh.length) m.deduplicated.inc({ receiver: receiver.name }, alerts.length - fresh.length);
    let messages = groupAlerts(fresh, deps.routes.groupWindowMs);
    const rows: AlertDeliveryRow[] = [];
    // One retry budget for the batch's messages to this receiver (see DeliverOptions.sharedBudget).
    const sharedBudget = { startedAt: undefined as number | undefined };
    while (messages.length > 0) {
      const plan = planSends(
        messages,
        buckets.get(receiver.name) ?? fullBucket(receiver.rateLimit, now()),
        receiver.rateLimit,
        now(),
      );
      buckets.set(receiver.name, plan.bucket);
      if (plan.send.length === 0) {
        // Out of tokens: wait for one (heartbeating), never drop.
        await sleep(Math.min(plan.waitMs, 3_000), undefined, { signal: deps.deliver.signal }).catch(() => {
          throw new DriftlineError('SINK_UNAVAILABLE', 'stopping while rate limited', { retriable: true });
        });
        await heartbeat();
        continue;
      }
      for (const message of plan.send) {
        if (message.key === 'digest') m.digests.inc({ receiver: receiver.name });
        const row = await deliver(receiver, message, {
          ...deps.deliver,
          sharedBudget,
          onAttempt: async (verdict) => {
            m.attempts.inc({ receiver: receiver.name, outcome: verdict });
            if (verdict !== 'delivered') await heartbeat();
          },
        });
        rows.push(row);
        unrecorded.push(row);
        m.deliveries.inc({ receiver: receiver.name, status: row.status });
        m.seconds.observe({ receiver: receiver.name }, row.latency_ms / 1000);
        const fields = {
          receiver: receiver.name,
          deliveryId: row.delivery_id,
          alerts: row.alert_ids.length,
          alertIds: row.alert_ids.slice(0, ID_LOG_LIMIT),
          attempts: row.attempts,
          httpStatus: row.http_status,
          latencyMs: row.latency_ms,
        };
        if (row.status === 'failed') {
          deps.logger.error({ ...fields, error: row.error }, 'alert delivery refused: recorded and given up');
        } else if (row.attempts > 1) {
          deps.logger.info({ ...fields, lastError: row.error }, 'alert delivered after retries');
        }
      }
      messages = []; // every message of the plan went out (the excess inside a digest)
    }
    return rows;
  }

  return {
    decode: async (record) => {
      const alert = await deps.decode(record);
      // The model name is bounded like the producers' (a route glob is matched against it).
      const nameProblem = modelNameProblem(alert.model, alert.model_version);
      if (nameProblem !== undefined)
        throw new PoisonRecordError('VALIDATION_FAILED', `alert ${alert.alert_id}: ${nameProblem}`);
      // The window too: rendering an out-of-range window_start threw a RangeError at delivery,
      // dead-lettered as INTERNAL after every good message of the batch was re-sent (bisection).
      const problem =
        eventTimeProblem(alert.event_time, now(), deps.eventTime) ??
        windowTimeProblem(alert.window_start, alert.window_end, now(), deps.eventTime);
      if (problem !== undefined)
        throw new PoisonRecordError('VALIDATION_FAILED', `alert ${alert.alert_id}: ${problem}`);
      return alert;
    },
    async process(items: ReadonlyArray<DecodedRecord<DriftAlert>>, context) {
      const perReceiver = new Map<string, RoutedAlert[]>();
      for (const { value: alert } of items) {
        const severity = severityOf(alert);
        const all = receiversFor(deps.routes, alert, severity);
        const names = deps.receiver === undefined ? all : all.filter((n) => n === deps.receiver);
        if (all.length === 0 && (deps.reportsUnrouted ?? true)) {
          m.unrouted.inc({ kind: alert.kind });
          deps.logger.warn(
            { alertId: alert.alert_id, model: alert.model, kind: alert.kind, severity },
            'alert matched no route and there is no default receiver: not sent',
          );
        }
        for (const name of names) {
          let list = perReceiver.get(name);
          if (list === undefined) {
            list = [];
            perReceiver.set(name, list);
          }
          list.push({ alert, severity });
          m.routed.inc({ receiver: name });
        }
      }
      const heartbeat = async () => {
        await context.heartbeat?.();
      };
      // Settled, not all: a receiver that fails must not hand the batch to a retry while the
      // others' deliveries still run (the retry would send those again).
      const settled = await Promise.allSettled(
        [...perReceiver].map(([name, alerts]) => toReceiver(deps.routes.receivers.get(name)!, alerts, heartbeat)),
      );
      // Record every outcome before the loop commits; a failed insert is retried with the batch.
      // Also when a receiver failed the batch (an outage, or stopping): the deliveries it made are
      // recorded first, so the retry — maybe by another instance after a SIGTERM — skips them.
      const rows = [...unrecorded];
      await deps.store.write(rows);
      unrecorded = unrecorded.slice(rows.length);
      const failed = settled.find((r) => r.status === 'rejected');
      if (failed !== undefined) throw failed.reason;
    },
  };
}
