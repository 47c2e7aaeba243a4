import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AlertMessage,
  ANSWERS_TO_GIVE_UP,
  type AttemptVerdict,
  checkShows,
  checkSpacingMs,
  failingMessageVerdict,
  fullBucket,
  halvesOf,
  looksMisconfigured,
  mayHaveBeenTaken,
  misconfiguredSign,
  planSends,
  type Receiver,
  type RoutedAlert,
  type RoutingTable,
  receiversFor,
  receiverWaitUntil,
  regroupAlerts,
  severityOf,
  splitSends,
  type TokenBucket,
} from '@driftline/alerting';
import {
  alertNameProblem,
  cutText,
  DriftlineError,
  type EventTimeBounds,
  eventNameProblem,
  eventTimeProblem,
  keyedLineLimit,
  type Logger,
  PoisonRecordError,
  windowTimeProblem,
} from '@driftline/core';
import type { BatchProcessor, DecodedRecord, InboundRecord, ProcessResult } from '@driftline/kafka';
import { counter, gauge, histogram, type Registry } from '@driftline/observability';
import type { DriftAlert } from '@driftline/schemas';
import type { AlertDeliveryRow, AlertDeliveryStore } from '@driftline/warehouse';
import {
  checkReceiver,
  type DeliverOptions,
  deliver,
  deliveryId,
  ReceiverFailingError,
  type ReceiverWait,
} from './deliver.js';

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
  readonly deliver: Omit<DeliverOptions, 'onAttempt' | 'heartbeat'>;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly now?: () => number;
}

const ID_LOG_LIMIT = 20;

/** At most one "matched no route" warning per (model, kind) this often (wall clock). */
export const UNROUTED_WARNING_INTERVAL_MS = 3_600_000;

/** (model, kind) pairs with such a warning per interval; the others share one line. */
const UNROUTED_WARNING_KEYS = 100;

/** Characters of an alert id shown in a dead letter's reason: an id too long is cut, the problem stays in the reason's bound. */
const ID_IN_REASON = 100;
const idInReason = (id: string) => (id.length > ID_IN_REASON ? `${cutText(id, ID_IN_REASON)}…` : id);

/** A message's delivery id (its `Idempotency-Key`) at a receiver. */
const idOf = (receiver: string, message: AlertMessage) =>
  deliveryId(
    receiver,
    message.alerts.map((a) => a.alert.alert_id),
  );

/**
 * A receiver that asked to be sent nothing until `until` (a `Retry-After` its retry budget cannot
 * hold): its deliveries stop there, and the batch is deferred rather than retried.
 */
class ReceiverWaitingError extends DriftlineError {
  readonly until: number;
  constructor(receiver: string, until: number) {
    super('SINK_UNAVAILABLE', `receiver ${receiver} asked to be sent nothing until ${new Date(until).toISOString()}`, {
      retriable: true,
    });
    this.name = 'ReceiverWaitingError';
    this.until = until;
  }
}

/** How a receiver answered meanwhile, for the record of a message given up. */
function answered(delivered: number, checks: number): string {
  const took = `it took ${checks} delivery check${checks === 1 ? '' : 's'}`;
  if (delivered === 0) return `${took} meanwhile`;
  const others = `${delivered} other message${delivered === 1 ? ' was' : 's were'} delivered`;
  return checks === 0 ? `${others} meanwhile` : `${others} and ${took} meanwhile`;
}

/** The log line of a delivery check that failed too: what the receiver answers, and what that may mean. */
function checkFailedText(status: number | undefined, code: string | undefined): string {
  const failed = 'alert delivery failing and the delivery check failed too';
  if (misconfiguredSign(status, code) === 'ENOTFOUND') {
    return `${failed}: the receiver's host name does not resolve (ENOTFOUND), as a mistyped or deleted host does for ever; the batch is retried until it resolves`;
  }
  if (status === undefined) return `${failed}: no answer, the receiver looks down; the batch is retried`;
  if (looksMisconfigured(status)) {
    return `${failed}: the receiver is answering HTTP ${status}, as a wrong URL, a deleted webhook or a revoked token does for ever; the batch is retried until it answers otherwise`;
  }
  return `${failed}: the receiver is answering HTTP ${status}, down or overloaded; the batch is retried`;
}

/**
 * The router's batch processor. Per batch: route every alert (model, kind, severity → receivers),
 * drop the ids a receiver already got (alert_deliveries, and deliveries not yet recorded), group
 * each receiver's alerts, spend its token bucket (excess merged into a digest, or wait for a
 * token), deliver — receivers in parallel, each message until delivered or its retry budget is
 * spent — record every outcome in alert_deliveries, and only then let the loop commit.
 *
 * So: at-least-once per receiver. A receiver that stays down (no answer, a redirect, 401, 403,
 * 404, 429, 5xx, …) fails the batch retriably once its retry budget, shared by the batch's messages
 * to it, is spent: the loop backs off and retries it, nothing committed, the outcomes already
 * reached recorded and skipped. A permanent refusal (400, 413, 415, 422, a request that cannot be
 * built) is recorded `failed` and given up, and so is a message still failing transiently while
 * the receiver takes others (or, with nothing else sent after it, a delivery check). It never
 * delays the other receivers' deliveries of the batch, and the service runs one processor per
 * receiver (`receiver` set), each in its own consumer group, so it does not delay their later
 * batches either.
 */
export function routerProcessor(deps: RouterDeps): BatchProcessor<DriftAlert> {
  const now = deps.now ?? Date.now;
  const buckets = new Map<string, TokenBucket>();
  // Deliveries made but not yet recorded (the insert failed): they count for deduplication when
  // the loop retries the batch, and are written with it.
  let unrecorded: AlertDeliveryRow[] = [];
  // Models and kinds come from alerts: at most UNROUTED_WARNING_KEYS lines an hour, one for the rest.
  const unroutedLines = keyedLineLimit<string>({
    intervalMs: UNROUTED_WARNING_INTERVAL_MS,
    maxKeys: UNROUTED_WARNING_KEYS,
    onFull: 'overflow',
  });
  /**
   * The batch's unrouted alerts: one warning per (model, kind) per hour, counting the alerts left
   * out since. One per alert wrote 6,520 lines for one backlog batch (found by a review); the
   * count is `driftline_alerts_unrouted_total{kind}`.
   */
  const reportUnrouted = (unrouted: ReadonlyMap<string, { alert: DriftAlert; severity: string; count: number }>) => {
    if (unrouted.size === 0) return;
    const wall = now();
    for (const { alert, severity, count } of unrouted.values()) {
      const leftOut = unroutedLines.admit(`${alert.model}\u0000${alert.kind}`, wall, count);
      if (leftOut === undefined) continue;
      deps.logger.warn(
        { model: alert.model, kind: alert.kind, alerts: leftOut + count, alertId: alert.alert_id, severity },
        'alerts matched no route and there is no default receiver: not sent (one line per model and kind an hour; alertId is one of them)',
      );
    }
    const over = unroutedLines.overflow(wall);
    if (over !== undefined) {
      deps.logger.warn(
        { modelKinds: `${over.keys}${over.keysAtLeast ? '+' : ''}`, alerts: over.weight },
        'alerts of more models and kinds matched no route and there is no default receiver: not sent',
      );
    }
  };
  const m = {
    routed: counter(deps.registry, 'driftline_alerts_routed_total', 'Alerts routed to a receiver', ['receiver']),
    unrouted: counter(deps.registry, 'driftline_alerts_unrouted_total', 'Alerts no route and no default matched', [
      'kind',
    ]),
    deduplicated: counter(
      deps.registry,
      'driftline_alerts_deduplicated_total',
      'Alerts not sent again: already delivered to the receiver, or given up',
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
    checks: counter(
      deps.registry,
      'driftline_alert_delivery_checks_total',
      'Delivery checks sent to a receiver whose message kept failing with nothing else delivered, by verdict',
      ['receiver', 'outcome'],
    ),
    // Alerted on (DriftlineAlertReceiverMisconfigured): such a receiver is retried for ever, and
    // the generic backing-off warning alone hid a wrong URL (found by a review).
    refusing: gauge(
      deps.registry,
      'driftline_alert_receiver_refusing',
      "1 while the receiver's last answer is a redirect, 401, 403, 404, 405 or 410 (by status), or its host name does not resolve (status ENOTFOUND): retried, as a wrong URL, a deleted webhook or a revoked token answers for ever",
      ['receiver', 'status'],
    ),
    // Alerted on (DriftlineAlertReceiverWaiting): a deferral ends the consumer's backoff, so a
    // receiver asking to wait for ever held its alerts with no alert firing, until alerts.v1's
    // retention deleted them (found by a review).
    waiting: gauge(
      deps.registry,
      'driftline_alert_receiver_waiting',
      "1 while the receiver's asked wait (a 429 or 503 Retry-After beyond the retry budget) lasts: it is sent nothing, its alerts held",
      ['receiver'],
    ),
    seconds: histogram(
      deps.registry,
      'driftline_alert_delivery_seconds',
      'First attempt to final outcome of one message',
      ['receiver'],
      [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300],
    ),
  };

  // Per receiver, the status its series of driftline_alert_receiver_refusing shows.
  const refusingWith = new Map<string, string>();
  /**
   * Shows a receiver's answer (undefined: none; then `code`, the connection error's) in
   * driftline_alert_receiver_refusing (`misconfiguredSign`).
   */
  function answeredWith(receiver: string, status: number | undefined, code?: string): void {
    const shown = refusingWith.get(receiver);
    const refusal = misconfiguredSign(status, code);
    if (shown === refusal) return;
    if (shown !== undefined) m.refusing.remove({ receiver, status: shown });
    if (refusal === undefined) refusingWith.delete(receiver);
    else {
      m.refusing.set({ receiver, status: refusal }, 1);
      refusingWith.set(receiver, refusal);
    }
  }

  // Per receiver, the alert ids of messages that still failed transiently when an earlier attempt of
  // the batch failed it: on the retry each goes out alone. In a digest with healthy messages, its
  // failure failed theirs too, and the receiver never answered anything 2xx (found by a review).
  const suspects = new Map<string, Set<string>>();
  // Delivery ids of the messages an attempt of which got no answer (`mayHaveBeenTaken`): the
  // receiver may have taken them, so they are never split (the parts' new keys would make it act
  // again), and, per receiver, those of them still failing when the batch failed, sent again on its
  // retry as they were (a digest included) rather than as groups alone, under the same key. Before,
  // a receiver slower than the timeout that honours the key acted on each alert 3 times (a split)
  // or twice (a digest's groups sent alone on the retry; found by a review).
  const unanswered = new Set<string>();
  const sentAsIs = new Map<string, AlertMessage[]>();
  /** The batch failed or was deferred with `failing` not taken: on its retry they go alone, those maybe taken as they were. */
  function holdSuspects(receiver: string, failing: readonly AlertMessage[], merge: boolean): void {
    const ids = merge ? (suspects.get(receiver) ?? new Set<string>()) : new Set<string>();
    const asIs = merge ? (sentAsIs.get(receiver) ?? []) : [];
    for (const message of failing) {
      for (const a of message.alerts) ids.add(a.alert.alert_id);
      if (unanswered.has(idOf(receiver, message))) asIs.push(message);
    }
    suspects.set(receiver, ids);
    sentAsIs.set(receiver, asIs);
  }
  // Messages delivered per receiver by this process (any batch, any partition): the evidence, for a
  // message that keeps failing, that the receiver answers others meanwhile.
  const delivered = new Map<string, number>();
  const deliveredTo = (receiver: string) => delivered.get(receiver) ?? 0;
  // Per receiver, until when it asked to be sent nothing (a Retry-After beyond its retry budget),
  // for every batch and partition of this process: a batch for it meanwhile is deferred without a
  // request. Kept when a partition is revoked: it is the receiver's, not the partition's.
  // Shown in driftline_alert_receiver_waiting while it lasts (removed once it has passed, and
  // when a partition is revoked: see `revoked`).
  const waitingUntil = new Map<string, number>();
  function waitOf(receiver: string): number | undefined {
    const until = waitingUntil.get(receiver);
    if (until === undefined || until > now()) return until;
    waitingUntil.delete(receiver);
    m.waiting.remove({ receiver });
    return undefined;
  }

  async function toReceiver(
    receiver: Receiver,
    routed: readonly RoutedAlert[],
    heartbeat: () => Promise<void>,
  ): Promise<AlertDeliveryRow[]> {
    const alerts = [...new Map(routed.map((a) => [a.alert.alert_id, a])).values()]; // an id once per batch
    const pending = new Set(unrecorded.filter((r) => r.receiver === receiver.name).flatMap((r) => r.alert_ids));
    // Recorded outcomes, failed ones included: a given-up message is never sent again, by this
    // process or the next (a new process re-sent failed ids once when only delivered rows counted).
    const done = await deps.store.outcomes(
      receiver.name,
      alerts.map((a) => a.alert.alert_id),
    );
    const known = (id: string) => done.has(id) || pending.has(id);
    const fresh = alerts.filter((a) => !known(a.alert.alert_id));
    if (alerts.length > fresh.length) m.deduplicated.inc({ receiver: receiver.name }, alerts.length - fresh.length);
    // Messages the receiver may have taken on an earlier attempt of the batch are formed again as
    // they were (the same key); the rest grouped.
    const { asSent, grouped } = regroupAlerts(fresh, deps.routes.groupWindowMs, sentAsIs.get(receiver.name) ?? []);
    const messages = [...grouped, ...asSent];
    const suspect = suspects.get(receiver.name) ?? new Set<string>();
    const failedBefore = (message: AlertMessage) => message.alerts.some((a) => suspect.has(a.alert.alert_id));
    const rows: AlertDeliveryRow[] = [];
    // One retry budget for the batch's messages to this receiver (see DeliverOptions.sharedBudget).
    const sharedBudget = { startedAt: undefined as number | undefined };

    /** Before any request (a message, a check, a rate-limit token): nothing while the receiver asked to wait. */
    function unlessWaiting(): void {
      const until = waitOf(receiver.name);
      if (until === undefined) return;
      m.waiting.set({ receiver: receiver.name }, 1); // again, after a revocation removed it
      throw new ReceiverWaitingError(receiver.name, until);
    }

    /**
     * The receiver asked to wait beyond what its retry budget holds: it is sent nothing more, no
     * delivery check either (its answer already says it is down until then: a check sent at once
     * met the same 429, counted as an outage, and the loop retried the batch every few seconds;
     * found by a review). `failing`, the message it answered so, goes alone after the others when
     * the batch comes back. Throws: the batch is deferred until then (`process`).
     */
    function askedToWait(
      asked: ReceiverWait,
      status: number | null | undefined,
      failing: readonly AlertMessage[],
    ): never {
      waitingUntil.set(receiver.name, asked.until);
      m.waiting.set({ receiver: receiver.name }, 1);
      holdSuspects(receiver.name, failing, true);
      deps.logger.warn(
        {
          receiver: receiver.name,
          httpStatus: status,
          retryAfterMs: asked.askedMs,
          waitMs: Math.max(0, asked.until - now()),
          until: new Date(asked.until).toISOString(),
          retryBudgetMs: deps.deliver.retry.budgetMs,
        },
        'the receiver asked to wait (Retry-After) beyond its retry budget: no request to it until then (at most an hour), its alerts held (the partition deferred, nothing committed)',
      );
      throw new ReceiverWaitingError(receiver.name, asked.until);
    }

    /** The unit's messages as the rate limit lets them out (the excess in a digest); waits for a token. */
    async function whenAllowed(unit: readonly AlertMessage[]): Promise<readonly AlertMessage[]> {
      unlessWaiting();
      for (;;) {
        const plan = planSends(
          unit,
          buckets.get(receiver.name) ?? fullBucket(receiver.rateLimit, now()),
          receiver.rateLimit,
          now(),
        );
        buckets.set(receiver.name, plan.bucket);
        if (plan.send.length > 0) return plan.send;
        // Out of tokens: wait for one (heartbeating), never drop.
        await sleep(Math.min(plan.waitMs, 3_000), undefined, { signal: deps.deliver.signal }).catch(() => {
          throw new DriftlineError('SINK_UNAVAILABLE', 'stopping while rate limited', { retriable: true });
        });
        await heartbeat();
      }
    }

    async function onAttempt(verdict: AttemptVerdict, status: number | undefined, code?: string): Promise<void> {
      m.attempts.inc({ receiver: receiver.name, outcome: verdict });
      answeredWith(receiver.name, status, code);
      if (verdict !== 'delivered') await heartbeat();
    }

    /** `onAttempt` for `message`'s attempts, noting one the receiver may have taken unanswered (`unanswered`). */
    function attemptsOf(message: AlertMessage): NonNullable<DeliverOptions['onAttempt']> {
      const id = idOf(receiver.name, message);
      return (verdict, status, code) => {
        if (mayHaveBeenTaken(verdict, status, code)) unanswered.add(id);
        return onAttempt(verdict, status, code);
      };
    }

    /**
     * A message the receiver did not take, about to be recorded failed (`failedText`): one alert
     * is kept as it is; a message of several is sent in halves, alone (`halvesOf`), and each half
     * not taken again in halves, at most `splitSends` sends, so that only the alert the receiver
     * refuses is recorded failed. One alert it refused (422) or always failed (500) took its group
     * of 40, or a digest of 22 models, with it (found by a review). Each part gets one attempt:
     * a part not taken is recorded failed as the whole would have been (its error says so), so
     * the split never gives up an alert the whole would have kept; what it delivers is recorded
     * delivered. A part answered with a `Retry-After` beyond the budget defers the batch as any
     * answer does: the parts delivered are recorded, the rest sent again when it comes back.
     *
     * Only a message (or part) refused by an answer on every attempt is split: one an attempt of
     * which got no answer may have been taken (`unanswered`), and its parts, under new keys, would
     * be acted on again. And the split stops when neither half is taken: one alert the receiver
     * cannot take fails one half, and a receiver that takes none of them (500 to every message)
     * cost 2·⌈log₂ n⌉ sends per message, each a rate-limit token (10 groups of 40 at 30 a minute:
     * 154 requests and 266 s instead of 27 and 26 s, new alerts waiting behind; found by a review).
     */
    async function keepOrSplit(message: AlertMessage, row: AlertDeliveryRow, failedText: string): Promise<void> {
      if (row.status !== 'failed' || message.alerts.length < 2) {
        keep(row, failedText);
        return;
      }
      if (unanswered.has(row.delivery_id)) {
        const error = `${row.error}; not sent in parts: an attempt got no answer, the receiver may have taken it`;
        keep({ ...row, error: error.slice(0, 1_024) }, failedText);
        return;
      }
      deps.logger.warn(
        {
          receiver: receiver.name,
          deliveryId: row.delivery_id,
          alerts: message.alerts.length,
          httpStatus: row.http_status,
          sendsAtMost: splitSends(message.alerts.length),
        },
        'alert message not taken: sent in parts, alone, to find the alerts the receiver does not take',
      );
      const left = { sends: splitSends(message.alerts.length) };
      const whole = `the receiver did not take a message of ${message.alerts.length} alerts holding it (${row.error})`;
      await split(message, row);

      /** `part`, not taken (`partRow`): recorded failed, or halved. */
      async function split(part: AlertMessage, partRow: AlertDeliveryRow): Promise<void> {
        if (part.alerts.length < 2 || left.sends < 2 || unanswered.has(partRow.delivery_id)) {
          failed(part, partRow);
          return;
        }
        left.sends -= 2;
        const notTaken: Array<readonly [AlertMessage, AlertDeliveryRow]> = [];
        for (const half of halvesOf(part)) {
          const halfRow = await sendOnce(half);
          // Kept at once: a stop or a deferral at the next send must not leave it unrecorded (re-sent).
          if (halfRow.status === 'delivered') keep(halfRow, failedText);
          else notTaken.push([half, halfRow]);
        }
        // Neither half taken: not one alert the receiver cannot take, but several, or none it takes
        // at all; halving further would spend the sends for little. Both recorded failed as they are.
        if (notTaken.length === 2) for (const [half, halfRow] of notTaken) failed(half, halfRow);
        else for (const [half, halfRow] of notTaken) await split(half, halfRow);
      }

      /** `part` recorded failed, its error saying it was a part of `message`. */
      function failed(part: AlertMessage, partRow: AlertDeliveryRow): void {
        let error = part === message ? partRow.error : `${partRow.error}; sent in parts: ${whole}`;
        if (unanswered.has(partRow.delivery_id)) error += '; no answer: the receiver may have taken it';
        keep({ ...partRow, error: error.slice(0, 1_024) }, failedText);
      }
    }

    /** One attempt of a part of a message (`keepOrSplit`), its row returned, not kept. */
    async function sendOnce(part: AlertMessage): Promise<AlertDeliveryRow> {
      const [alone = part] = await whenAllowed([part]);
      try {
        return await deliver(receiver, alone, {
          ...deps.deliver,
          retry: { ...deps.deliver.retry, maxAttempts: 1 },
          sharedBudget: { startedAt: undefined },
          onAttempt: attemptsOf(alone),
          heartbeat,
        });
      } catch (error) {
        if (!(error instanceof ReceiverFailingError)) throw error; // stopping
        if (error.asked !== undefined) askedToWait(error.asked, error.row.http_status, [part]);
        return error.row;
      }
    }

    /** One message's delivery, its row kept for the record; a transient failure past the budget returned. */
    async function send(
      message: AlertMessage,
      budget: DeliverOptions['sharedBudget'] = sharedBudget,
    ): Promise<AlertDeliveryRow | ReceiverFailingError> {
      unlessWaiting();
      if (message.key === 'digest') m.digests.inc({ receiver: receiver.name });
      try {
        const row = await deliver(receiver, message, {
          ...deps.deliver,
          sharedBudget: budget,
          onAttempt: attemptsOf(message),
          heartbeat,
        });
        await keepOrSplit(message, row, 'alert delivery refused: recorded and given up');
        return row;
      } catch (error) {
        if (error instanceof ReceiverFailingError) {
          if (error.asked !== undefined) askedToWait(error.asked, error.row.http_status, [message]);
          return error;
        }
        throw error; // stopping
      }
    }

    function keep(row: AlertDeliveryRow, failedText: string): void {
      rows.push(row);
      unrecorded.push(row);
      if (row.status === 'delivered') delivered.set(receiver.name, deliveredTo(receiver.name) + 1);
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
        deps.logger.error({ ...fields, error: row.error }, failedText);
      } else if (row.attempts > 1) {
        deps.logger.info({ ...fields, lastError: row.error }, 'alert delivered after retries');
      }
    }

    // Past the budget a message's transient failure no longer fails the batch at once: the other
    // messages still get their attempt (one each, the budget being spent), and they tell whether
    // the receiver is down or only cannot take that message (found by a review: one message it
    // always answered 5xx held the rest, and every later batch, for ever).
    const failing: Array<{
      readonly message: AlertMessage;
      readonly error: ReceiverFailingError;
      readonly from: number;
    }> = [];
    // The healthy messages first, then each that failed before, alone.
    const units = [messages.filter((x) => !failedBefore(x)), ...messages.filter(failedBefore).map((x) => [x])];
    for (const unit of units) {
      if (unit.length === 0) continue;
      for (const message of await whenAllowed(unit)) {
        const from = deliveredTo(receiver.name);
        const outcome = await send(message);
        if (outcome instanceof ReceiverFailingError) failing.push({ message, error: outcome, from });
      }
    }
    if (failing.length === 0) return rows;
    // The evidence that the receiver is up while a message fails: answers of the receiver after
    // that message's budget began — other messages delivered or, when too few were (alone in its
    // batch, or last), delivery checks it answered. Any 2xx of the batch is not enough: a receiver
    // that went down after the batch's first message (an outage) would have lost the rest. Shown
    // up, the failing messages get a retry budget again (the receiver may have come back only
    // after the first was spent, or be browning out); still failing, and the receiver shown up by
    // ANSWERS_TO_GIVE_UP answers more, each is a message this receiver cannot take: recorded
    // failed like a refusal (logged, counted: DriftlineAlertDeliveryFailing), and the batch goes
    // on. One attempt more right after one 2xx lost messages to a receiver answering most requests
    // 503, and that attempt ignored Retry-After (found by a review).
    const first = await receiverShownUp(failing, 1);
    const secondBudget = { startedAt: undefined as number | undefined };
    const stillFailing: typeof failing = [];
    for (const f of failing) {
      const [alone = f.message] = await whenAllowed([f.message]);
      const from = deliveredTo(receiver.name);
      const outcome = await send(alone, secondBudget);
      if (outcome instanceof ReceiverFailingError) stillFailing.push({ message: f.message, error: outcome, from });
    }
    const second = await receiverShownUp(stillFailing, ANSWERS_TO_GIVE_UP);
    for (const f of stillFailing) {
      const row = f.error.row;
      const why = `${first.get(f.message)}, retried again; ${second.get(f.message)}: given up`;
      await keepOrSplit(
        f.message,
        { ...row, error: `${row.error}; ${why}`.slice(0, 1_024) },
        'alert delivery failing while the receiver takes other messages: recorded and given up',
      );
    }
    return rows;

    /**
     * Per failing message of `round`, how its receiver answered at least `needed` times since its
     * budget began: other messages delivered, then delivery checks (spaced by `checkSpacingMs`,
     * so a receiver's own rate limit does not refuse the second; heartbeats around each). Throws
     * the batch's retriable error when a check shows the receiver down: an outage as far as can be
     * told, nothing recorded failed, nothing lost.
     */
    async function receiverShownUp(round: typeof failing, needed: number): Promise<Map<AlertMessage, string>> {
      let checks = 0;
      const since = ({ from }: { readonly from: number }) => deliveredTo(receiver.name) - from;
      for (;;) {
        const unproven = round.filter((f) => failingMessageVerdict(since(f) + checks, needed) === 'check');
        if (unproven.length === 0) break;
        if (checks > 0) {
          // A wait the consumer must see as progress: silent, a spacing of _RETRY_INITIAL (10 min
          // accepted beside a 30 s _RETRY_MAX_DELAY) marked the partition stalled and failed
          // /healthz, the pod restarted in a loop (found by a review).
          await heartbeat();
          await sleep(checkSpacingMs(deps.deliver.retry), undefined, { signal: deps.deliver.signal }).catch(() => {
            throw new DriftlineError('SINK_UNAVAILABLE', 'stopping during delivery checks', { retriable: true });
          });
          await heartbeat();
        }
        const { shows, status, asked } = await sendCheck(unproven);
        await heartbeat();
        if (asked !== undefined)
          askedToWait(
            asked,
            status,
            round.map((f) => f.message),
          );
        const outage = unproven.find((f) => failingMessageVerdict(since(f) + checks, needed, shows) === 'outage');
        if (outage !== undefined) {
          // On the retry each goes out alone (see `suspects`).
          holdSuspects(
            receiver.name,
            round.map((f) => f.message),
            false,
          );
          throw outage.error;
        }
        checks++;
      }
      return new Map(round.map((f) => [f.message, answered(since(f), checks)]));
    }

    /**
     * One delivery check (a token spent like any message): what it shows of the receiver. Before,
     * a message the receiver always failed with nothing sent after it looked exactly like an
     * outage and held the receiver's alerts, and its partition's commit, for ever (found by a review).
     */
    async function sendCheck(
      unproven: ReadonlyArray<{ readonly message: AlertMessage; readonly error: ReceiverFailingError }>,
    ) {
      await whenAllowed([unproven[0]!.message]);
      const failingDeliveries = unproven.map(({ error: { row } }) => ({
        deliveryId: row.delivery_id,
        alerts: row.alert_ids.length,
        attempts: row.attempts,
        httpStatus: row.http_status,
      }));
      const answer = await checkReceiver(receiver, failingDeliveries, deps.deliver);
      m.checks.inc({ receiver: receiver.name, outcome: answer.verdict });
      answeredWith(receiver.name, answer.status, answer.code);
      const shows = checkShows(answer.status);
      // A check comes once a budget has ended: any wait its answer asks is beyond the budget.
      if (shows === 'down' && answer.askedMs !== undefined && answer.askedMs > 0) {
        const asked = { askedMs: answer.askedMs, until: receiverWaitUntil(answer.askedMs, now()) };
        return { shows, status: answer.status, asked };
      }
      const fields = {
        receiver: receiver.name,
        deliveryIds: failingDeliveries.slice(0, ID_LOG_LIMIT).map((d) => d.deliveryId),
        checkStatus: answer.status,
      };
      if (shows === 'up') {
        deps.logger.warn(
          fields,
          'alert delivery failing with the receiver up (it answered a delivery check): retried again, or given up after its second budget',
        );
      } else {
        const location = answer.location === undefined ? {} : { location: answer.location };
        deps.logger.warn(
          { ...fields, checkError: answer.error, ...location },
          checkFailedText(answer.status, answer.code),
        );
      }
      return { shows, status: answer.status, asked: undefined };
    }
  }

  /**
   * The batch held, whole, until a receiver's asked wait ends (the earliest, with several): the
   * loop's deferral pauses only this partition, commits nothing of it and offers it again then
   * (a receiver still waiting is skipped again without a request). Retried instead, a receiver
   * answering `429 Retry-After: 600` got a request every few seconds (found by a review). What
   * was delivered meanwhile is recorded; the redelivery skips it.
   */
  function deferUntil(items: ReadonlyArray<DecodedRecord<DriftAlert>>, until: number): ProcessResult {
    return {
      defer: {
        offset: items[0]!.record.offset,
        delayMs: Math.max(0, until - now()),
        reason: `a receiver asked to wait (Retry-After) until ${new Date(until).toISOString()}`,
      },
    };
  }

  return {
    // The series is the last answer this instance saw; with the partition gone, it sees no more of
    // them. Kept, DriftlineAlertReceiverMisconfigured (max by receiver and status) stayed firing
    // after the new owner delivered (a short 404 in a rolling restart; found by a review). A
    // partition still owned here shows the answer again on its next attempt.
    revoked() {
      for (const receiver of [...refusingWith.keys()]) answeredWith(receiver, undefined);
      // The wait itself is kept (no request from here until it ends), but its series is dropped
      // like the refusing one: an instance left with no partition of the receiver's group would
      // show it until it restarts, the alert firing on after the new owner delivered. A partition
      // still owned here is offered again at once and shows it again (`unlessWaiting`).
      for (const receiver of waitingUntil.keys()) m.waiting.remove({ receiver });
    },
    decode: async (record) => {
      const alert = await deps.decode(record);
      // Model, version and id are bounded like the producers' (a route glob is matched against the
      // model; ids are hashes). Feature and method names are not bounded upstream: refusing them
      // here dead-lettered alerts the retrain-trigger acted on (found by a review), so the bodies
      // show them cut instead (a 100,000-character feature had rendered a 200 KB body, 413).
      const nameProblem =
        alertNameProblem(alert.model, alert.model_version) ?? eventNameProblem('alert_id', alert.alert_id);
      if (nameProblem !== undefined)
        throw new PoisonRecordError('VALIDATION_FAILED', `alert ${idInReason(alert.alert_id)}: ${nameProblem}`);
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
      const unrouted = new Map<string, { alert: DriftAlert; severity: string; count: number }>();
      for (const { value: alert } of items) {
        const severity = severityOf(alert);
        const all = receiversFor(deps.routes, alert, severity);
        const names = deps.receiver === undefined ? all : all.filter((n) => n === deps.receiver);
        if (all.length === 0 && (deps.reportsUnrouted ?? true)) {
          m.unrouted.inc({ kind: alert.kind });
          const key = `${alert.model}\u0000${alert.kind}`;
          const seen = unrouted.get(key);
          if (seen === undefined) unrouted.set(key, { alert, severity, count: 1 });
          else seen.count++;
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
      reportUnrouted(unrouted);
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
      // An outage or a stop fails the batch (retried); receivers that only asked to wait defer it.
      const failed = settled.find((r) => r.status === 'rejected' && !(r.reason instanceof ReceiverWaitingError));
      if (failed?.status === 'rejected') throw failed.reason;
      const waits = settled.flatMap((r) =>
        r.status === 'rejected' && r.reason instanceof ReceiverWaitingError ? [r.reason.until] : [],
      );
      if (waits.length > 0) return deferUntil(items, Math.min(...waits));
      // The batch is done: its retries are over.
      suspects.clear();
      sentAsIs.clear();
      unanswered.clear();
    },
  };
}
