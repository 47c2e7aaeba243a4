import {
  alertNameProblem,
  type EventTimeBounds,
  type EventTimeCheck,
  eventTimeProblem,
  type Logger,
  PoisonRecordError,
  windowTimeProblem,
} from '@driftline/core';
import type { BatchProcessor, DecodedRecord, InboundRecord } from '@driftline/kafka';
import { counter, type Registry } from '@driftline/observability';
import {
  type Baseline,
  type DecideResult,
  decide,
  emptyModelState,
  type ModelState,
  type Policy,
  policyFor,
  type RetrainPlan,
} from '@driftline/policy';
import type { DriftAlert, RetrainRequest } from '@driftline/schemas';
import { chTime, type DecisionRow, type DecisionStore } from '@driftline/warehouse';

/**
 * A model's policy state as the trigger persists it: with the position of the last alert decided
 * into it. Alerts are keyed by model, so a model's alerts come from one partition in offset order:
 * an alert at or before that position was decided already, and is a replay (a crash after the
 * record, before the commit) even when the policy has forgotten its id (its window pruned, or
 * pushed out of the ids a window remembers).
 */
type TriggerState = ModelState & { readonly decidedThrough?: DecidedThrough };

interface DecidedThrough {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
  /**
   * The latest window_end of every alert decided into the state, holds included (a shadow's
   * not_serving alert leaves `maxWindowEnd` as it was). Absent in states persisted before.
   */
  readonly windowEnd?: number;
}

interface RecordPosition {
  readonly topic: string;
  readonly partition: number;
  readonly offset: string;
}

/**
 * Whether the alert was decided into `state` already: same partition, offset not past its
 * position, AND a window not newer than every window decided. The offset alone took a recreated
 * topic's alerts (offsets from 0 again) for replays until they passed the old offsets, maybe never
 * (found by a review); a replayed record carries a window that was decided, a new alert past them
 * never is one.
 */
function isReplay(state: TriggerState | undefined, record: RecordPosition, alert: DriftAlert): boolean {
  const at = state?.decidedThrough;
  if (state === undefined || at === undefined) return false;
  return (
    at.topic === record.topic &&
    at.partition === record.partition &&
    BigInt(record.offset) <= BigInt(at.offset) &&
    alert.window_end <= (at.windowEnd ?? state.maxWindowEnd)
  );
}

/**
 * The decision row. `first = 0` for an alert seen before (a duplicate the policy recognised, or a
 * replay): retrain_decisions keeps the row with the greatest `first` per (model, alert_id) and,
 * between equals, the last written, so a replay written with `first = 1` replaced the original
 * decision (a fire overwritten by too_late; found by a review).
 */
export function decisionRow(alert: DriftAlert, result: DecideResult, now: number, seenBefore = false): DecisionRow {
  const d = result.decision;
  const plan = d.kind === 'fire' ? d.plan : undefined;
  return {
    model: alert.model,
    alert_id: alert.alert_id,
    alert_kind: alert.kind,
    model_version: alert.model_version,
    window_start: chTime(alert.window_start),
    window_end: chTime(alert.window_end),
    alert_time: chTime(alert.event_time),
    decision: d.kind,
    fired: d.kind === 'fire' ? 1 : 0,
    reason: d.kind === 'fire' ? 'fire' : d.reason,
    detail: d.kind === 'fire' ? d.plan.reason : d.detail,
    signals: d.signals,
    streak: d.streak,
    request_id: plan?.requestId ?? null,
    data_from: plan === undefined ? null : chTime(plan.dataFrom),
    data_to: plan === undefined ? null : chTime(plan.dataTo),
    seq: result.state.seq,
    first: seenBefore || (d.kind === 'hold' && d.reason === 'duplicate') ? 0 : 1,
    state: JSON.stringify(result.state),
    decided_at: chTime(now),
  };
}

/**
 * Rejects an alert whose times the decisions table cannot hold or the policy cannot use: event_time
 * and window_end within the event-time bounds, window_start not before 1900 (ClickHouse DateTime64)
 * and strictly before window_end (an empty window is no evidence).
 */
export function checkAlertTimes(alert: DriftAlert, time: EventTimeCheck): DriftAlert {
  const problem =
    // Bounded like the producers' events: the model name is part of every state, row and metric.
    alertNameProblem(alert.model, alert.model_version) ??
    eventTimeProblem(alert.event_time, time.now, time.bounds) ??
    windowTimeProblem(alert.window_start, alert.window_end, time.now, time.bounds);
  if (problem !== undefined) throw new PoisonRecordError('VALIDATION_FAILED', `alert ${alert.alert_id}: ${problem}`);
  return alert;
}

/** The decision recorded for a replayed alert: a duplicate, the state unchanged. */
function replayOf(state: TriggerState | undefined, alert: DriftAlert, offset: string): DecideResult {
  return {
    state: state ?? emptyModelState,
    decision: {
      kind: 'hold',
      reason: 'duplicate',
      detail: `alert ${alert.alert_id} at offset ${offset} was decided before (a replay)`,
      signals: [],
      streak: 0,
    },
  };
}

export function retrainRequestOf(plan: RetrainPlan): RetrainRequest {
  return {
    request_id: plan.requestId,
    model: plan.model,
    model_version: plan.modelVersion,
    reason: plan.reason,
    evidence: JSON.stringify(plan.evidence),
    data_from: plan.dataFrom,
    data_to: plan.dataTo,
    event_time: plan.eventTime,
  };
}

const needsBaseline = (policy: Policy, model: string): boolean =>
  policyFor(policy, model)?.signals.performance.some(
    (r) => r.below_baseline_by !== undefined || r.above_baseline_by !== undefined,
  ) ?? false;

export interface TriggerDeps {
  readonly policy: Policy;
  readonly store: DecisionStore;
  readonly decode: (record: InboundRecord) => Promise<DriftAlert> | DriftAlert;
  /** Accepted event times: an alert outside them is poison (DLQ), never a decision (default clock: `now`). */
  readonly eventTime: EventTimeBounds;
  /** Publishes the requests; resolves once Kafka has them (acks=all). */
  readonly send: (requests: readonly RetrainRequest[]) => Promise<void>;
  readonly logger: Logger;
  readonly registry: Registry;
  readonly now?: () => number;
  /**
   * Whether a version serves production traffic (the model-controller's stages); alerts of shadow,
   * canary or retired versions are held as `not_serving`. Default: every version serves.
   */
  readonly isServing?: (model: string, version: string) => Promise<boolean>;
  /** Model states kept in memory (least recently used evicted; reloaded from the store). Default 10,000. */
  readonly maxModelStates?: number;
}

/** Default of `maxModelStates`: models come from alerts, so the in-memory states are bounded. */
export const MAX_MODEL_STATES = 10_000;

/**
 * The trigger's batch processor. Per batch: load the state of models not in memory (from the last
 * persisted decision), decide each alert in order, publish the fired requests, then record every
 * decision (with the state after it), and only then adopt the new state and let the loop commit.
 *
 * Publishing before recording is deliberate: a crash in between replays the alerts against the old
 * state, fires again with the same request_id (the trainer trains once per request_id); recording
 * first could lose a request (the replay would see the alert as a duplicate and hold).
 */
export function triggerProcessor(deps: TriggerDeps): BatchProcessor<DriftAlert> {
  const states = new Map<string, TriggerState>();
  const now = deps.now ?? Date.now;
  // `model` comes from alerts: bounded (MAX_LABEL_VALUES, then `__other__`).
  const decisions = counter(
    deps.registry,
    'driftline_retrain_decisions_total',
    'Retrain policy decisions',
    ['model', 'decision', 'reason'],
    { bounded: ['model'] },
  );
  return {
    decode: async (record) => checkAlertTimes(await deps.decode(record), { bounds: deps.eventTime, now: now() }),
    async process(items: ReadonlyArray<DecodedRecord<DriftAlert>>) {
      const missing = [...new Set(items.map((i) => i.value.model))].filter((m) => !states.has(m));
      const loaded = await deps.store.loadStates(missing);
      const work = new Map<string, TriggerState | undefined>();
      for (const m of missing) work.set(m, loaded.get(m));
      const rows: DecisionRow[] = [];
      const requests: RetrainRequest[] = [];
      const at = now();
      const serving = new Map<string, boolean>();
      for (const { value: alert, record } of items) {
        const current = work.has(alert.model) ? work.get(alert.model) : states.get(alert.model);
        if (isReplay(current, record, alert)) {
          rows.push(decisionRow(alert, replayOf(current, alert, record.offset), at, true));
          continue;
        }
        const key = `${alert.model}\u0000${alert.model_version}`;
        if (deps.isServing !== undefined && !serving.has(key)) {
          serving.set(key, await deps.isServing(alert.model, alert.model_version));
        }
        let baseline: Baseline | undefined;
        if (alert.kind === 'PERFORMANCE' && needsBaseline(deps.policy, alert.model)) {
          baseline = await deps.store.baseline(alert.model, alert.model_version);
        }
        const decided = decide(deps.policy, current, alert, baseline, serving.get(key) ?? true);
        const position: DecidedThrough = {
          topic: record.topic,
          partition: record.partition,
          offset: record.offset,
          windowEnd: Math.max(current?.decidedThrough?.windowEnd ?? current?.maxWindowEnd ?? 0, alert.window_end),
        };
        // Every decision orders after the one before it: a hold that leaves the policy state as it
        // was (too_late, not_serving, unknown_model…) kept its `seq`, so argMax(state, seq) could
        // reload the state before it, with an older decidedThrough (found by a review).
        const seq = (current?.seq ?? 0) + 1;
        const state: TriggerState = { ...decided.state, seq, decidedThrough: position };
        const result: DecideResult = { ...decided, state };
        work.set(alert.model, state);
        rows.push(decisionRow(alert, result, at));
        if (result.decision.kind === 'fire') requests.push(retrainRequestOf(result.decision.plan));
      }
      await deps.send(requests);
      await deps.store.write(rows);
      for (const [m, s] of work) {
        if (s === undefined) continue;
        states.delete(m); // re-inserted: Map order is least recently used first
        states.set(m, s);
      }
      // Every adopted state is already in retrain_decisions: an evicted model reloads the same state.
      const max = deps.maxModelStates ?? MAX_MODEL_STATES;
      for (const m of states.keys()) {
        if (states.size <= max) break;
        states.delete(m);
      }
      for (const r of rows) decisions.inc({ model: r.model, decision: r.decision, reason: r.reason });
      for (const r of requests) {
        deps.logger.info(
          { model: r.model, requestId: r.request_id, dataFrom: r.data_from, dataTo: r.data_to, reason: r.reason },
          'retrain requested',
        );
      }
    },
    revoked() {
      // Another instance may own these models now: reload their state from the store when they come back.
      states.clear();
    },
  };
}
