import {
  alertNameProblem,
  type EventTimeBounds,
  type EventTimeCheck,
  eventNameProblem,
  eventTimeProblem,
  keyedLineLimit,
  type Logger,
  PoisonRecordError,
  windowTimeProblem,
} from '@driftline/core';
import type { BatchProcessor, DecodedRecord, InboundRecord } from '@driftline/kafka';
import { counter, gauge, type Registry } from '@driftline/observability';
import {
  type Baseline,
  type DecideResult,
  dataQualityHeld,
  decide,
  emptyModelState,
  type ModelState,
  modelStateProblem,
  type Policy,
  policyFor,
  type RetrainPlan,
  remembersAlert,
  withValidDataQuality,
} from '@driftline/policy';
import type { DriftAlert, RetrainRequest } from '@driftline/schemas';
import { chTime, type DecisionRow, type DecisionStore } from '@driftline/warehouse';

/**
 * The decision row. `first = 0` for an alert seen before (a duplicate the policy recognised, or an
 * id already in retrain_decisions): retrain_decisions keeps the row with the greatest `first` per
 * (model, alert_id) and, between equals, the last written, so a replay written with `first = 1`
 * replaced the original decision (a fire overwritten by too_late; found by a review). `state` is
 * written by the caller on the rows that must carry it (`withModelStates`), `''` here.
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
    state: '',
    decided_at: chTime(now),
  };
}

/**
 * The rows with each model's state after the batch on its last first-sighting row (the newest
 * `seq`), the others `''`. A state on every row made a batch of one model's per-feature alerts
 * hundreds of MB (a 340 KB state × 6,520 rows: ClickHouse refused the insert, the partition
 * stopped for good; found by a review). Only a first-sighting row: a duplicate's (`first = 0`)
 * is replaced by its key's first row in the ReplacingMergeTree. The last row in insert order:
 * an insert that lands in part lands a prefix, so a model's state row landing means its earlier
 * rows did; rows that landed without theirs are decided again (`recordedAlerts`'s `includedThrough`).
 */
function withModelStates(
  rows: readonly DecisionRow[],
  states: ReadonlyMap<string, ModelState | undefined>,
): DecisionRow[] {
  const last = new Map<string, number>();
  rows.forEach((r, i) => {
    if (r.first === 1) last.set(r.model, i);
  });
  const out = [...rows];
  for (const [model, i] of last) {
    const state = states.get(model);
    if (state !== undefined) out[i] = { ...rows[i]!, state: JSON.stringify(state) };
  }
  return out;
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
    // The id is looked up in retrain_decisions as a query parameter: bounded like the names.
    eventNameProblem('alert_id', alert.alert_id) ??
    eventTimeProblem(alert.event_time, time.now, time.bounds) ??
    windowTimeProblem(alert.window_start, alert.window_end, time.now, time.bounds);
  if (problem !== undefined) throw new PoisonRecordError('VALIDATION_FAILED', `alert ${alert.alert_id}: ${problem}`);
  return alert;
}

/** The decision recorded for an alert decided before: a duplicate, the state unchanged. */
function replayOf(state: ModelState | undefined, alert: DriftAlert, offset: string): DecideResult {
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

/**
 * An unambiguous key of two names: names are bounded in length only and may hold any character, so
 * a NUL join made ("a\0b", "c") and ("a", "b\0c") one key, and an alert of one model a duplicate
 * of another's within a batch, or its version given the other's serving answer (found by a review).
 */
const pairKey = (a: string, b: string) => JSON.stringify([a, b]);

const alertKeyOf = (alert: DriftAlert) => pairKey(alert.model, alert.alert_id);

/**
 * The batch's alert ids split by the model states before it: the ones they remember (by
 * `alertKeyOf`), duplicates whatever the batch does to the state, and the others by model, the
 * ones to look up in retrain_decisions.
 */
function idsByMemory(
  items: ReadonlyArray<DecodedRecord<DriftAlert>>,
  stateOf: (model: string) => ModelState | undefined,
): { remembered: Set<string>; forgotten: Map<string, string[]> } {
  const remembered = new Set<string>();
  const forgotten = new Map<string, string[]>();
  for (const { value: alert } of items) {
    const state = stateOf(alert.model);
    if (state !== undefined && remembersAlert(state, alert.alert_id)) {
      remembered.add(alertKeyOf(alert));
      continue;
    }
    const ids = forgotten.get(alert.model) ?? [];
    ids.push(alert.alert_id);
    forgotten.set(alert.model, ids);
  }
  return { remembered, forgotten };
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

/** Request ids remembered as sent but not recorded, at most (the oldest forgotten first). */
const MAX_SENT_UNRECORDED = 10_000;

/** Default of `maxModelStates`: models come from alerts, so the in-memory states are bounded. */
export const MAX_MODEL_STATES = 10_000;

/** At most one "held by the data-quality veto" warning per model this often (wall clock). */
export const DATA_QUALITY_HOLD_WARNING_INTERVAL_MS = 3_600_000;

/** At most one "no policy applies to this model" warning per model this often (wall clock). */
export const UNKNOWN_MODEL_WARNING_INTERVAL_MS = 3_600_000;

/** Models with such a warning per interval; the others share one line. */
const UNKNOWN_MODEL_WARNING_KEYS = 100;

/**
 * How long (wall clock) a model's new `driftline_retrain_data_quality_overdue_total` series stays
 * at 0 before its counts are added: Prometheus' increase() does not count a series' first sample,
 * so the 0 must be scraped first (two scrapes at the default 1 m interval).
 */
export const OVERDUE_SERIES_SETTLE_MS = 120_000;

/** A model's data_quality holds in one batch: how long the veto had held its fires at the last one. */
interface VetoedModel {
  heldMs: number;
  since: number | undefined;
  /** Holds decided while the veto had held its fires longer than its cooldown. */
  overdue: number;
  cooldownMs: number;
}

/** Where a model's stored state is, for the line that says it cannot be used. */
const STATE_ROW =
  "retrain_decisions: the model's first = 1 row of greatest seq whose state is not '' (argMax(state, seq))";

/**
 * `store.loadStates(models)`, a model whose stored state is not JSON left out and reported: the
 * store parses every state of a query and throws the first SyntaxError (its query failures are
 * DriftlineErrors, never one), so the models are split in halves until that model is alone — a
 * query more per half, only while a bad row is there. Before, one such row (written by hand, a
 * buggy writer) failed every batch of its model, and of any model sharing its batches, for ever
 * (found by a review).
 */
async function loadStatesIsolating(
  store: DecisionStore,
  models: readonly string[],
  unreadable: (model: string, problem: string) => void,
): Promise<Map<string, unknown>> {
  if (models.length === 0) return new Map();
  try {
    return await store.loadStates(models);
  } catch (error) {
    if (!(error instanceof SyntaxError)) throw error;
    if (models.length === 1) {
      unreadable(models[0]!, `not JSON: ${error.message}`);
      return new Map();
    }
    const middle = Math.ceil(models.length / 2);
    const left = await loadStatesIsolating(store, models.slice(0, middle), unreadable);
    const right = await loadStatesIsolating(store, models.slice(middle), unreadable);
    return new Map([...left, ...right]);
  }
}

/**
 * The stored states, checked. A state that is not JSON or no ModelState (`modelStateProblem`) is
 * not used: the model decides from no state — its sustain runs and cooldown forgotten, as for a new
 * model — with its `seq` when the state had a usable one, so the batch's state row, of a greater
 * `seq`, replaces it for good; a text that is not JSON has none, and is met again (and warned
 * about) at every load until the row is fixed. One warning per model and load names the row.
 * Before, such a state made every batch of the model throw (found by a review). A malformed
 * `dataQuality` / `dataQualityHold` is dropped, one warning per model: such a field made every
 * decision of the model throw too; dropped, the veto starts again with the next DATA_QUALITY alert.
 */
async function loadValidStates(
  store: DecisionStore,
  models: readonly string[],
  logger: Logger,
): Promise<Map<string, ModelState>> {
  const refuse = (model: string, problem: string, seq?: number) =>
    logger.warn(
      { model, row: STATE_ROW, problem, ...(seq === undefined ? {} : { seq }) },
      "stored retrain state cannot be used: the model decides from no state (its sustain runs and cooldown forgotten); fix or delete that row's state",
    );
  const loaded = await loadStatesIsolating(store, models, refuse);
  const out = new Map<string, ModelState>();
  for (const [model, stored] of loaded) {
    const problem = modelStateProblem(stored);
    if (problem !== undefined) {
      const seq = (stored as { seq?: unknown } | null)?.seq;
      const usable = typeof seq === 'number' && Number.isSafeInteger(seq) && seq >= 0 ? seq : undefined;
      refuse(model, problem, usable);
      if (usable !== undefined) out.set(model, { ...emptyModelState, seq: usable });
      continue;
    }
    const { state, problems } = withValidDataQuality(stored as ModelState);
    if (problems.length > 0) {
      logger.warn(
        { model, problems },
        'stored retrain state has a malformed data-quality field: dropped (the veto starts again with the next DATA_QUALITY alert)',
      );
    }
    out.set(model, state);
  }
  return out;
}

/**
 * The trigger's batch processor. Per batch: load the state of models not in memory (from the last
 * persisted decision), look up in retrain_decisions the ids those states do not remember (one
 * query), decide each alert in order — an id those states remember or retrain_decisions records is
 * a duplicate whatever its offset, any other new — publish the fired requests, then record every
 * decision (each model's state after the batch on its last row), and only then adopt the new state
 * and let the loop commit.
 *
 * By id, not by position: offsets restart at 0 when alerts.v1 is recreated (a new alert there
 * was taken for a replay), and a producer may publish an id again at a later offset (decided as
 * new, its row replaced the first); both found by a review.
 *
 * Publishing before recording is deliberate: a crash in between replays the alerts against the old
 * state, fires again with the same request_id (the trainer trains once per request_id); recording
 * first could lose a request (the replay would see the alert as a duplicate and hold). A failed
 * record does not publish again: the ids sent are remembered until their decisions are recorded
 * (or the partitions revoked), so only a crash or a rebalance in between sends a request twice.
 */
export function triggerProcessor(deps: TriggerDeps): BatchProcessor<DriftAlert> {
  const states = new Map<string, ModelState>();
  // Request ids published whose decisions are not recorded yet (the insert failed): skipped when
  // the loop's retry of the batch fires them again; dropped once recorded, or on revocation.
  const sentUnrecorded = new Set<string>();
  const now = deps.now ?? Date.now;
  // `model` comes from alerts: bounded (MAX_LABEL_VALUES, then `__other__`).
  const decisions = counter(
    deps.registry,
    'driftline_retrain_decisions_total',
    'Retrain policy decisions',
    ['model', 'decision', 'reason'],
    { bounded: ['model'] },
  );
  // Models whose DATA_QUALITY alerts are routine (an expectation failing every other window) stop
  // retraining for good under the veto, and only `data_quality` rows said so (found by a review).
  const heldSeconds = gauge(
    deps.registry,
    'driftline_retrain_data_quality_held_seconds',
    "How long (event time) the data-quality veto has held the model's retrains, at its last data_quality hold or fire (0)",
    ['model'],
    { bounded: ['model'] },
  );
  const overdue = counter(
    deps.registry,
    'driftline_retrain_data_quality_overdue_total',
    "data_quality holds decided while the veto had held the model's retrains for longer than its cooldown",
    ['model'],
    { bounded: ['model'] },
  );
  // Models come from alerts: as many remembered as model states (the least recently warned forgotten first).
  const holdWarnings = keyedLineLimit<string>({
    intervalMs: DATA_QUALITY_HOLD_WARNING_INTERVAL_MS,
    maxKeys: deps.maxModelStates ?? MAX_MODEL_STATES,
  });
  // Models no policy lists, as the alerts name them: at most UNKNOWN_MODEL_WARNING_KEYS lines an
  // hour, and one line for the others.
  const unknownWarnings = keyedLineLimit<string>({
    intervalMs: UNKNOWN_MODEL_WARNING_INTERVAL_MS,
    maxKeys: UNKNOWN_MODEL_WARNING_KEYS,
    onFull: 'overflow',
  });
  /**
   * A warning per model no policy lists (one per model per hour, with the holds left out since):
   * a typo in the policy file held every alert of the model as `unknown_model` and nothing said
   * so — its retraining silently off (found by a review).
   */
  const reportUnknown = (rows: readonly DecisionRow[]) => {
    const held = new Map<string, number>();
    for (const r of rows) if (r.reason === 'unknown_model') held.set(r.model, (held.get(r.model) ?? 0) + 1);
    if (held.size === 0) return;
    const wall = now();
    const listed = Object.keys(deps.policy.models);
    const policyModels = listed.slice(0, 20).concat(listed.length > 20 ? [`… ${listed.length - 20} more`] : []);
    for (const [model, n] of held) {
      const leftOut = unknownWarnings.admit(model, wall, n);
      if (leftOut === undefined) continue;
      deps.logger.warn(
        { model, policyModels, heldAlerts: leftOut + n },
        "no retrain policy applies to this model (not in the policy's models, no '*'): its alerts are held as unknown_model and it never retrains — a typo in the policy file, or add the model",
      );
    }
    const over = unknownWarnings.overflow(wall);
    if (over !== undefined) {
      deps.logger.warn(
        { models: `${over.keys}${over.keysAtLeast ? '+' : ''}`, heldAlerts: over.weight, policyModels },
        'more models no retrain policy applies to: their alerts are held as unknown_model (see retrain_decisions)',
      );
    }
  };
  /** Models whose overdue series is new: when it was created at 0, and the counts held back since. */
  const settling = new Map<string, { since: number; pending: number }>();
  /**
   * Counts overdue holds so that increase() sees them all. A series created with its first count
   * started above 0 and increase() missed that step: a model whose first `data_quality` hold in
   * this process is already overdue (after a restart, its state loaded with `dataQualityHold`),
   * or whose series its bounded label dropped while idle. So a new series is created at 0 and its
   * counts wait OVERDUE_SERIES_SETTLE_MS, added with the first batch after that (found by a review).
   */
  const countOverdue = async (vetoed: ReadonlyMap<string, VetoedModel>, wall: number) => {
    for (const [model, s] of settling) {
      if (wall - s.since < OVERDUE_SERIES_SETTLE_MS) continue;
      overdue.inc({ model }, s.pending);
      settling.delete(model);
    }
    if (vetoed.size === 0) return;
    const exported = new Set((await overdue.get()).values.map((v) => String(v.labels.model)));
    for (const [model, v] of vetoed) {
      const held = settling.get(model);
      if (held !== undefined) {
        held.pending += v.overdue;
      } else if (exported.has(model)) {
        overdue.inc({ model }, v.overdue);
      } else {
        overdue.inc({ model }, 0);
        settling.set(model, { since: wall, pending: v.overdue });
      }
    }
  };
  /** Metrics and a warning (at most one per model per DATA_QUALITY_HOLD_WARNING_INTERVAL_MS) for the batch's vetoed models. */
  const reportVetoes = async (vetoed: ReadonlyMap<string, VetoedModel>) => {
    await countOverdue(vetoed, now());
    for (const [model, v] of vetoed) {
      heldSeconds.set({ model }, v.heldMs / 1000);
      if (v.overdue === 0) continue;
      if (holdWarnings.admit(model, now()) === undefined) continue;
      deps.logger.warn(
        {
          model,
          heldSince: v.since === undefined ? undefined : new Date(v.since).toISOString(),
          heldHours: Math.round(v.heldMs / 36_000) / 100,
          cooldownHours: Math.round(v.cooldownMs / 36_000) / 100,
          overdueHolds: v.overdue,
        },
        "the data-quality veto has held this model's retrains for longer than its cooldown: an outage that long, or DATA_QUALITY alerts routine for the model (fix the expectation, or set data_quality_veto: false for it)",
      );
    }
  };
  return {
    decode: async (record) => checkAlertTimes(await deps.decode(record), { bounds: deps.eventTime, now: now() }),
    async process(items: ReadonlyArray<DecodedRecord<DriftAlert>>) {
      const missing = [...new Set(items.map((i) => i.value.model))].filter((m) => !states.has(m));
      const loaded = await loadValidStates(deps.store, missing, deps.logger);
      const work = new Map<string, ModelState | undefined>();
      for (const m of missing) work.set(m, loaded.get(m));
      const stateOf = (model: string) => (work.has(model) ? work.get(model) : states.get(model));
      const { remembered, forgotten } = idsByMemory(items, stateOf);
      // An id whose decision is newer than the state (its rows landed from an insert whose state
      // row did not) is decided again from that state: the same decision, `seq` and request id.
      // Held as a duplicate instead, the fire it made was forgotten (a second one in its cooldown).
      const includedThrough = new Map([...forgotten.keys()].map((m) => [m, stateOf(m)?.seq ?? 0]));
      const recorded = await deps.store.recordedAlerts(forgotten, includedThrough);
      // Ids decided earlier in this batch: not in retrain_decisions yet, and a hold that left the
      // state unchanged (too_late; no_signal for a kind without a signal) does not remember them either. With `remembered` and `recorded`
      // every id decided before is a duplicate: the batch's new ids can push a remembered id out of
      // the state (MAX_ALERT_IDS_PER_STATE) before it comes again, and decided as new its first = 1
      // row replaced the original decision (a fire lost; found by a review).
      const decidedHere = new Set<string>();
      const rows: DecisionRow[] = [];
      const requests: RetrainRequest[] = [];
      const at = now();
      const serving = new Map<string, boolean>();
      const vetoed = new Map<string, VetoedModel>();
      for (const { value: alert, record } of items) {
        const current = stateOf(alert.model);
        const alertKey = alertKeyOf(alert);
        if (remembered.has(alertKey) || recorded.get(alert.model)?.has(alert.alert_id) || decidedHere.has(alertKey)) {
          rows.push(decisionRow(alert, replayOf(current, alert, record.offset), at, true));
          continue;
        }
        decidedHere.add(alertKey);
        const key = pairKey(alert.model, alert.model_version);
        if (deps.isServing !== undefined && !serving.has(key)) {
          serving.set(key, await deps.isServing(alert.model, alert.model_version));
        }
        let baseline: Baseline | undefined;
        if (alert.kind === 'PERFORMANCE' && needsBaseline(deps.policy, alert.model)) {
          baseline = await deps.store.baseline(alert.model, alert.model_version);
        }
        const decided = decide(deps.policy, current, alert, baseline, serving.get(key) ?? true);
        if (decided.decision.kind === 'hold' && decided.decision.reason === 'duplicate') {
          // Remembered by the state (the checks above already catch it; kept so that a duplicate
          // never takes a `seq`): a `first = 0` row, the state as it is (nothing new to persist).
          rows.push(decisionRow(alert, decided, at));
          continue;
        }
        // Every decision orders after the one before it: a hold that leaves the policy state as it
        // was (too_late, not_serving, unknown_model…) would keep its `seq`, and argMax(state, seq)
        // between equal seqs picks either row.
        const state: ModelState = { ...decided.state, seq: (current?.seq ?? 0) + 1 };
        const result: DecideResult = { ...decided, state };
        work.set(alert.model, state);
        rows.push(decisionRow(alert, result, at));
        if (result.decision.kind === 'fire') requests.push(retrainRequestOf(result.decision.plan));
        const d = result.decision;
        if (d.kind === 'fire' || d.reason === 'data_quality') {
          const cooldownMs = policyFor(deps.policy, alert.model)?.cooldownMs ?? Number.POSITIVE_INFINITY;
          const held = dataQualityHeld(state);
          const heldMs = held === undefined ? 0 : held.through - held.since;
          const prior = vetoed.get(alert.model)?.overdue ?? 0;
          vetoed.set(alert.model, {
            heldMs,
            since: held?.since,
            overdue: prior + (d.kind === 'hold' && heldMs > cooldownMs ? 1 : 0),
            cooldownMs,
          });
        }
      }
      // A request already published by an earlier try of this batch is not published again: the
      // retry decides the same request id, and sent it on every retry of a failing insert (14
      // copies in 75 s of a full disk, each a fresh worker run in the trainer; found by a review).
      const unsent = requests.filter((r) => !sentUnrecorded.has(r.request_id));
      await deps.send(unsent);
      for (const r of unsent) sentUnrecorded.add(r.request_id);
      for (const id of sentUnrecorded) {
        if (sentUnrecorded.size <= MAX_SENT_UNRECORDED) break;
        sentUnrecorded.delete(id); // the oldest first: at worst sent once more
      }
      try {
        await deps.store.write(withModelStates(rows, work));
      } catch (error) {
        // The rows may have landed (a timeout after the server wrote them): the retry then finds
        // every id recorded and holds it as a duplicate, against a state in memory from before
        // them — a fire forgotten, the next one inside its cooldown (found by a review). So the
        // retry reloads these models' states from what was recorded.
        for (const m of work.keys()) states.delete(m);
        throw error;
      }
      for (const r of requests) sentUnrecorded.delete(r.request_id);
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
      reportUnknown(rows);
      await reportVetoes(vetoed);
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
      // Their unrecorded batches are that instance's to decide (and publish) again.
      sentUnrecorded.clear();
    },
  };
}
