import { DEFAULT_EVENT_TIME_BOUNDS, type Logger, toDriftlineError } from '@driftline/core';
import { counter, gauge, type Registry } from '@driftline/observability';
import {
  awaitsAnswered,
  type ComparisonPlan,
  closedArrivalBound,
  comparisonsOf,
  decideTick,
  type LabelDelays,
  labelOrderBiased,
  MAX_SHADOWS,
  type ModelClock,
  type PairInput,
  type PairSource,
  type PlanOutcome,
  planKey,
  policyOf,
  type RolloutPolicies,
  type RolloutPolicy,
  rolloutPolicyFor,
  runPlan,
  sameTransitions,
  transitionEvent,
  usableClock,
  usableTransitions,
  viewOf,
} from '@driftline/policy';
import type { ModelEvent } from '@driftline/schemas';
import type { ModelTransitionStore, TransitionRow } from '@driftline/warehouse';
import type { Ownership } from './ownership.js';

/**
 * The reads of the warehouse's PredictionStore: the paired read (readPairsCounted: labelled rows
 * answered as the plan says and scored by both versions, IN THE ORDER THEY ARRIVED — by closed
 * arrival bucket then a hash of the id (the policy's arrival_bucket), or joined_at then prediction
 * id — so each tick's replay of the test extends the path the last one tested;
 * and the count of those left out as unusable), the model's clock, and whether a version answered
 * at all.
 */
export interface PairReader {
  readPairs(q: {
    model: string;
    incumbent: string;
    challenger: string;
    from: number;
    limit: number;
    /** The answered requests the comparison is about (its plan's `answeredBy`): always given. */
    answeredBy: PairSource;
    /**
     * A model with `label_maturity`: only rows predicted at or before this (the plan's
     * `matureUntil`), in prediction order (prediction_time, prediction_id) instead of arrival.
     */
    matureUntil?: number;
    /**
     * Without `matureUntil` (the policy's `arrival_bucket` above 0): only rows joined before
     * `before` (every arrival bucket before it closed, see closedArrivalBound), by bucket, then a
     * hash of the prediction id, then the id; the earliest prediction time of the pairs not read
     * (joined since `before`) is `waitingFrom`.
     */
    arrival?: { bucketMs: number; before: number };
  }): Promise<{
    /** `joinedAt`: when the label-joiner joined the row (its wall clock), the bound of its plausible times. */
    readonly pairs: ReadonlyArray<PairInput & { readonly predictionId: string; readonly joinedAt: number }>;
    /** Rows scored by both versions since `from` that the test cannot use (never among `pairs`). */
    readonly unusable: {
      readonly labelNotBinary: number;
      readonly scoreNotProbability: number;
      /** A shadow's or a watch's rows where a version could not score (only a canary's charges them). */
      readonly unscored?: number;
    };
    /** With `arrival`: the earliest prediction time among the pairs that wait for their bucket to close. */
    readonly waitingFrom?: number;
    /**
     * The newest `joinedAt` of all the query's pairs (read, beyond the limit, or waiting for their
     * bucket): with `arrival` every pair read was joined before `before`, so the pairs read alone
     * never show a label-joiner's clock ahead of this host's (sayClockBehind). Absent: none.
     */
    readonly newestJoined?: number;
  }>;
  /**
   * The model's event clock from its labelled predictions, paired or not (event time moves on
   * while a comparison gets no pairs): per time, the newest at or before `now` (the wall clock), or
   * the LABEL_CLOCK_QUORUM-th newest within `notAfter` when later — so a few rows dated ahead (a
   * client's clock) cannot move it, while event time running ahead as a whole (a replay, the demo)
   * does.
   */
  labelClock(model: string, now: number, notAfter: number): Promise<ModelClock | undefined>;
  /**
   * Whether `version` of `model` answered any prediction (a row whose model_version is it,
   * labelled or expired) predicted at or after `since`: one bounded query. Asked only of a
   * rollback watch whose max_time is up with no pair.
   */
  answeredSince(model: string, version: string, since: number): Promise<boolean>;
  /**
   * `model`'s label delays by binary label over predictions made since `since` (any version), for
   * the warning that one class arrives much later than the other; absent: no such warning.
   */
  labelDelays?(model: string, since: number): Promise<LabelDelays>;
}

/** How long a model's label delays are used before they are read again. */
export const LABEL_DELAYS_REFRESH_MS = 3_600_000;
/** How far back (prediction time) a model's label delays are read. */
export const LABEL_DELAYS_LOOKBACK_MS = 90 * 86_400_000;

export interface ControllerDeps {
  readonly transitions: ModelTransitionStore;
  readonly pairs: PairReader;
  /** Publishes model events in order; resolves once Kafka has them. */
  readonly publish: (events: readonly ModelEvent[]) => Promise<void>;
  readonly policies: RolloutPolicies;
  /** Most pairs one comparison reads per tick. */
  readonly maxPairs: number;
  readonly logger: Logger;
  readonly registry: Registry;
  /** Wall clock: recorded_at of new rows, and with maxFutureMs the bound of plausible event times. */
  readonly now?: () => number;
  /**
   * Largest skew of an event time into the future (DRIFTLINE_EVENT_TIME_MAX_FUTURE): a pair whose
   * label or prediction time lies beyond its ARRIVAL (joined_at) + this (µs read as ms, a year
   * 2099) is left out for good as implausible (counted, and said once per comparison); the wall
   * clock bounds the model's clock with it. Event time may run ahead of the
   * wall clock within it (a replay, a clock ahead, the demo's accelerated time); the model's clock
   * is the LABEL_CLOCK_QUORUM-th newest time, so one row dated ahead does not end a comparison on
   * `max_time`.
   */
  readonly maxFutureMs?: number;
  /**
   * What this controller may do with a model now (its share of the controllers' group, see
   * ownership.ts): `decide`, `publish` only (a model just taken over, settling), or `none` (another
   * controller's). Asked when the model's tick begins and again just before a decision is
   * recorded. Absent: every model is this controller's (one controller).
   */
  readonly ownership?: (model: string) => Ownership;
}

export interface TickSummary {
  readonly models: number;
  readonly transitions: TransitionRow[];
  readonly republished: number;
  /** Models whose tick failed (logged; retried on the next tick). */
  readonly failed: number;
  /** Models left to another controller (not this one's now: nothing read, published or decided). */
  readonly notOwned: number;
}

/** The most a row's newest time lies past its arrival (joined_at), for the warning (a loop: a read holds up to a million). */
function mostAhead(rows: ReadonlyArray<PairInput & { readonly joinedAt: number }>): number {
  let most = Number.NEGATIVE_INFINITY;
  for (const r of rows) most = Math.max(most, Math.max(r.labelTime, r.predictionTime) - r.joinedAt);
  return most;
}

/**
 * When a comparison began, as its stage's records date it (event time): the later of its `since`,
 * its stored `servingFrom` and when its incumbent took its role — what the lag is measured from
 * while the model has no label clock at all.
 */
function comparisonStart(plan: ComparisonPlan): number {
  return Math.max(
    plan.since,
    plan.servingFrom ?? Number.NEGATIVE_INFINITY,
    plan.incumbentFrom?.since ?? Number.NEGATIVE_INFINITY,
  );
}
const transitionKey = (t: TransitionRow) => `${t.to_stage}\u0000${t.at}`;

/** How often (wall clock) a model's labels found after their maturity are said again. */
export const LATE_LABELS_LOG_INTERVAL_MS = 3_600_000;

/**
 * What a comparison of a model with `label_maturity` read at the last tick: its `matureUntil`, its
 * `settledUntil` (matureUntil less the tolerance, lateLabelsToleranceMs), how many pairs predicted
 * at or before that, and the newest arrival among the pairs mature (see checkLateLabels).
 */
interface MatureRead {
  readonly matureUntil: number;
  readonly settledUntil: number;
  readonly settled: number;
  readonly newestJoined: number;
}

/**
 * How long after its maturity (prediction time + label_maturity D, passed by the label clock) a
 * label may still arrive without being counted as after its maturity: max(1 min, 0.1 % of D). The
 * pipeline's own lag (label-joiner batch, warehouse insert) is seconds, and a label dated exactly
 * at D came a few seconds after the clock had passed it at every tick — counted as late every
 * tick, the alert always on (found by a review: 2-3 a tick, most 3.7 s late, with 5 s of lag). A
 * minute covers that lag many times over; 0.1 % of D lets the tolerance grow with D (43 min at 30
 * days: a pair so close to the front moves a month-long path by a hair) while a label a day late —
 * the review's case that promoted a worse version — stays counted for any D below 2.7 years.
 */
function lateLabelsToleranceMs(maturityMs: number): number {
  return Math.max(60_000, maturityMs / 1000);
}

/** How often (wall clock) a model whose label clock lags past its comparisons' max_time is said again. */
export const LABEL_CLOCK_LAG_LOG_INTERVAL_MS = 6 * 3_600_000;

/** How often (wall clock) a model's pairs found in arrival buckets already read are said again. */
export const LATE_ARRIVALS_LOG_INTERVAL_MS = 3_600_000;

/**
 * What a comparison read by closed arrival bucket read at the last tick: its bound (`before`) and
 * how many pairs it read, all joined before that bound (see countLateArrivals).
 */
interface ArrivalRead {
  readonly before: number;
  readonly read: number;
}

/** How far a row's arrival may lie past this host's clock before it says its clock runs behind. */
const CLOCK_BEHIND_TOLERANCE_MS = 5_000;

/**
 * The model-controller's work, one tick at a time. State lives in ClickHouse (model_transitions
 * and the paired labelled rows); the only memory is which transitions this process has seen on
 * models.v1, so that a start (empty memory) re-publishes the newest transition of every version.
 */
export class ModelController {
  /**
   * model → version → the newest transition of that version this process published. Only versions
   * of the model's last history read (`republish`): at most its MAX_HISTORY_ROWS rows' versions.
   */
  private readonly published = new Map<string, Map<string, string>>();
  /** Models whose bad transition rows were already logged. */
  private readonly badRows = new Set<string>();
  /** Manual models (`manual: true` in the policy) already logged. */
  private readonly manual = new Set<string>();
  /** Models with more shadows recorded than the model-server scores (logged once, until they have not). */
  private readonly manyShadowsLogged = new Set<string>();
  /** Models whose labels arrive in an order that depends on the label (logged once, until they do not). */
  private readonly labelDelayLogged = new Set<string>();
  /** Models whose label-delays read failed, said (once, until a read succeeds). */
  private readonly labelDelaysFailLogged = new Set<string>();
  /**
   * model → when its label delays were last read, or a read of them last failed, and the last
   * delays read (checkLabelOrder): absent while no read has succeeded.
   */
  private readonly labelDelays = new Map<string, { readonly at: number; readonly delays: LabelDelays | undefined }>();
  /** Models whose rows were seen joined ahead of this host's clock (logged once, until they are not). */
  private readonly clockBehindLogged = new Set<string>();
  /** model → the open comparisons (plan key and reason) whose unusable rows were logged. */
  private readonly unusableLogged = new Map<string, Set<string>>();
  /** model → per open comparison with label_maturity (plan key), what its last read saw (checkLateLabels). */
  private readonly matureReads = new Map<string, Map<string, MatureRead>>();
  /** model → when (wall clock) its labels found after their maturity were last said. */
  private readonly lateLabelsLogged = new Map<string, number>();
  /** model → per open comparison read by closed arrival bucket (plan key), what its last read saw (countLateArrivals). */
  private readonly arrivalReads = new Map<string, Map<string, ArrivalRead>>();
  /** model → when (wall clock) its pairs found in buckets already read were last said. */
  private readonly lateArrivalsLogged = new Map<string, number>();
  /** model → when (wall clock) its label clock lagging past max_time was last said (absent: not lagging). */
  private readonly clockLagLogged = new Map<string, number>();
  /** model → the comparisons whose gauges the last tick set: a closed one's series are removed. */
  private readonly shown = new Map<string, Map<string, { model: string; version: string; kind: string }>>();
  private readonly metrics;

  /** Versions whose published transition this process remembers, over every model (see `republish`). */
  get rememberedVersions(): number {
    let n = 0;
    for (const versions of this.published.values()) n += versions.size;
    return n;
  }

  constructor(private readonly deps: ControllerDeps) {
    const r = deps.registry;
    // Model and version names come from the warehouse, i.e. from events: bounded label values.
    this.metrics = {
      ticks: counter(r, 'driftline_model_controller_ticks_total', 'Controller ticks by outcome', ['outcome']),
      transitions: counter(
        r,
        'driftline_model_controller_transitions_total',
        'Stage transitions decided and recorded',
        ['model', 'to_stage'],
        { bounded: ['model'] },
      ),
      republished: counter(
        r,
        'driftline_model_controller_republished_total',
        'Transitions re-published on models.v1 (start-up, or a publish that failed)',
        [],
      ),
      skipped: counter(
        r,
        'driftline_model_controller_skipped_pairs_total',
        'Paired rows left out of a comparison, by reason: label_not_binary, score_not_probability, unscored (a version could not score: left out of shadow and watch comparisons), time_beyond_future (dated beyond its arrival + the allowed future), invalid',
        ['reason'],
      ),
      pairedRows: counter(
        r,
        'driftline_model_controller_paired_rows_total',
        "Paired rows the comparisons' reads covered (pairs, and rows counted as unusable), at every tick: the base of skipped_pairs_total",
        [],
      ),
      labels: gauge(
        r,
        'driftline_model_controller_comparison_labels',
        'Labelled pairs of an open comparison at the last tick',
        ['model', 'version', 'kind'],
        { bounded: ['model', 'version'] },
      ),
      labelsAfterMaturity: counter(
        r,
        'driftline_model_controller_labels_after_maturity_total',
        "Labelled pairs of a model with label_maturity found after their maturity: read only after the model's label clock had passed their prediction time + label_maturity, or labelled more than label_maturity after their prediction (each counted once by this process)",
        ['model'],
        { bounded: ['model'] },
      ),
      lateArrivals: counter(
        r,
        'driftline_model_controller_late_arrivals_total',
        'Pairs read in an arrival bucket that had already closed and been read at the previous tick (rows inserted after their bucket closed: a label-joiner or ClickHouse outage across its end, a joiner clock behind this host): placed inside a path already tested, up to a bucket back, not at its end (net of rows that left the read: a lower bound)',
        ['model'],
        { bounded: ['model'] },
      ),
      owned: gauge(
        r,
        'driftline_model_controller_models',
        "Models at the last tick by what this controller may do with them: decide, publish (just taken over, settling), none (another controller's)",
        ['ownership'],
      ),
      labelOrderBias: gauge(
        r,
        'driftline_model_controller_label_order_bias',
        "1 while an open comparison's labels of one class arrive much later than the other's and the model has no label_maturity (its decisions are biased), else 0",
        ['model'],
        { bounded: ['model'] },
      ),
      labelDelaysFailing: gauge(
        r,
        'driftline_model_controller_label_delays_read_failing',
        "1 while the last read of a model's label delays failed (its label-order check is off: label_order_bias keeps its last value, or has none), else 0",
        ['model'],
        { bounded: ['model'] },
      ),
      clockLag: gauge(
        r,
        'driftline_model_controller_label_clock_lag_seconds',
        "Wall clock minus the model's label clock (its newest label time) at the last tick, for a model with an open comparison: every comparison's max_time runs on the label clock, which stands still while no label arrives",
        ['model'],
        { bounded: ['model'] },
      ),
      clockLagLimit: gauge(
        r,
        'driftline_model_controller_label_clock_lag_limit_seconds',
        "The shortest max_time of a model's open comparisons at the last tick: a label_clock_lag_seconds above it means a comparison that max_time would have ended on the wall clock waits for labels",
        ['model'],
        { bounded: ['model'] },
      ),
      estimate: gauge(
        r,
        'driftline_model_controller_comparison_estimate',
        'Open comparison: mean loss(incumbent) - loss(challenger), and its always-valid bounds',
        ['model', 'version', 'kind', 'bound'],
        { bounded: ['model', 'version'] },
      ),
    };
  }

  /** One tick over every model with recorded transitions. A failing model does not stop the others. */
  async tick(): Promise<TickSummary> {
    let models: readonly string[];
    try {
      models = await this.deps.transitions.models();
    } catch (error) {
      this.metrics.ticks.inc({ outcome: 'failed' }); // alerted: DriftlineModelControllerTicksFailing
      throw error;
    }
    const transitions: TransitionRow[] = [];
    let republished = 0;
    let failed = 0;
    const owned: Record<Ownership, number> = { decide: 0, publish: 0, none: 0 };
    for (const model of models) {
      const ownership = this.ownershipOf(model);
      owned[ownership]++;
      if (ownership === 'none') {
        this.forget(model); // its open comparisons are another controller's to show
        continue;
      }
      try {
        const r = await this.tickModel(model);
        republished += r.republished;
        if (r.transition !== undefined) transitions.push(r.transition);
      } catch (error) {
        // An outage (ClickHouse, Kafka) is retriable by construction: nothing was decided that is
        // not recorded, and what was recorded but not published is re-published next tick.
        failed++;
        const e = toDriftlineError(error);
        this.deps.logger.warn({ model, code: e.code, err: e.message }, 'model tick failed; retried next tick');
      }
    }
    this.metrics.ticks.inc({ outcome: failed === 0 ? 'ok' : 'failed' });
    for (const [ownership, n] of Object.entries(owned)) this.metrics.owned.set({ ownership }, n);
    return { models: models.length, transitions, republished, failed, notOwned: owned.none };
  }

  /**
   * Drops what this controller showed and remembered of a model it no longer decides (another
   * controller's, or settling after a take-over): its comparisons' gauges, its label_order_bias
   * series (a 1 left behind kept DriftlineModelControllerLabelOrderBias firing, under `max by
   * (service, model)`, after the operator had fixed it on the owner — found by a review), its
   * label delays, and its late-labels reads (an owner again, it starts from its next read rather
   * than counting the labels that came in under another owner, who counted them). The
   * labels_after_maturity_total counter stays: it does not move while not owned, so its increase()
   * alerts nothing.
   */
  private forget(model: string): void {
    this.closeComparisons(model, []);
    this.matureReads.delete(model);
    this.lateLabelsLogged.delete(model);
    this.arrivalReads.delete(model);
    this.lateArrivalsLogged.delete(model);
    this.labelDelays.delete(model);
    this.labelDelayLogged.delete(model);
    this.labelDelaysFailLogged.delete(model);
    this.metrics.labelOrderBias.remove({ model });
    this.metrics.labelDelaysFailing.remove({ model });
    this.showClockLag(model, [], undefined, undefined, 0);
  }

  private ownershipOf(model: string): Ownership {
    return this.deps.ownership?.(model) ?? 'decide';
  }

  /**
   * One model: re-publish what models.v1 may have missed, run the open comparisons, and record
   * then publish at most one transition. ClickHouse first: a crash between the two leaves a
   * recorded transition that the next start re-publishes; the reverse order could publish a
   * transition that no record (hence no later tick) knows about.
   */
  async tickModel(model: string): Promise<{ republished: number; transition?: TransitionRow }> {
    const { deps } = this;
    const recorded = await deps.transitions.history(model);
    // A row whose time is not epoch ms or whose stage is none of ours (written by hand, or by a
    // bug) would fail this model's every tick (the stage: no models.v1 kind to publish it under,
    // so no comparison, no rollback ever ran again): it is left out, and said once.
    const history = usableTransitions(recorded);
    if (history.length < recorded.length && !this.badRows.has(model)) {
      this.badRows.add(model);
      deps.logger.warn(
        { model, rows: recorded.length - history.length },
        'model_transitions rows whose `at` is not epoch ms or whose stage is unknown left out',
      );
    }
    const view = viewOf(history);
    if (this.ownershipOf(model) === 'none') return { republished: 0 }; // lost while its history was read
    const republished = await this.republish(model, history, view.versions);
    if (this.ownershipOf(model) !== 'decide') {
      this.forget(model);
      return { republished };
    }
    const policy = rolloutPolicyFor(deps.policies, model);
    if (policy === undefined) {
      // Only an explicit `manual: true` gets here (a model not listed gets `*` or the defaults): said once.
      if (!this.manual.has(model)) {
        this.manual.add(model);
        deps.logger.info(
          { model },
          'rollout policy says manual: no comparison for this model; its versions move only by `driftline model stage`',
        );
      }
      return { republished };
    }
    const now = (deps.now ?? Date.now)();
    const maxFutureMs = deps.maxFutureMs ?? DEFAULT_EVENT_TIME_BOUNDS.maxFutureMs;
    const notAfter = now + maxFutureMs;
    // The event clock of max_time (see labelClock), read before the pairs: it decides where a
    // stage recorded off event time reads them from (comparisonsOf), and a pair that arrives
    // between the two reads then waits for the next tick's clock rather than being passed by it.
    // Not capped at the wall clock: event time runs ahead of it in a replay or an accelerated run
    // (capped, the demo's comparisons waited for ever, found by running it).
    const labelled = comparisonsOf(view).length === 0 ? undefined : await deps.pairs.labelClock(model, now, notAfter);
    const clock = usableClock(labelled, notAfter, maxFutureMs);
    const plans = comparisonsOf(view, clock, policy.labelMaturityMs);
    this.sayManyShadows(model, plans);
    this.showClockLag(model, plans, policy, clock, now);
    const logged = this.unusableLogged.get(model) ?? new Set<string>();
    const stillLogged = new Set<string>();
    let newestJoined = Number.NEGATIVE_INFINITY;
    // Each plan is read and run before the next one is read, and only its outcome is kept: every
    // plan's pairs held until the last was read (~23 MiB per open comparison at 100k pairs) took a
    // model with 16 shadows to a 393 MiB peak, and one with 48 out of a 1 GiB heap, a crash loop
    // at every restart (found by a review). The decisions are the same (tickModel = runPlan per
    // plan, then decideTick).
    const outcomes: PlanOutcome[] = [];
    const lastReads = this.matureReads.get(model);
    const reads = new Map<string, MatureRead>();
    const late = { arrived: 0, dated: 0, mostLateMs: Number.NEGATIVE_INFINITY };
    const arrivals = { last: this.arrivalReads.get(model), next: new Map<string, ArrivalRead>(), late: 0 };
    for (const plan of plans) {
      const read = await this.runPlanOnItsPairs(
        model,
        plan,
        policy,
        clock,
        maxFutureMs,
        now,
        logged,
        stillLogged,
        { last: lastReads, next: reads, late },
        arrivals,
      );
      outcomes.push(read.outcome);
      newestJoined = Math.max(newestJoined, read.newestJoined);
    }
    this.sayClockBehind(model, newestJoined, now);
    if (reads.size === 0) this.matureReads.delete(model);
    else this.matureReads.set(model, reads);
    if (arrivals.next.size === 0) this.arrivalReads.delete(model);
    else this.arrivalReads.set(model, arrivals.next);
    this.sayLateArrivals(model, policy.arrivalBucketMs, arrivals.late, now);
    this.sayLateLabels(model, policy.labelMaturityMs, late, now);
    if (plans.length > 0 && policy.labelMaturityMs === 0) await this.checkLabelOrder(model, now);
    else if (this.labelDelays.delete(model)) {
      // No comparison open any more, or label_maturity set: nothing biased to tell, nothing to read.
      this.labelDelayLogged.delete(model);
      this.labelDelaysFailLogged.delete(model);
      this.metrics.labelOrderBias.set({ model }, 0);
      this.metrics.labelDelaysFailing.set({ model }, 0);
    }
    if (stillLogged.size === 0) this.unusableLogged.delete(model);
    else this.unusableLogged.set(model, stillLogged);
    const result = decideTick(history, outcomes, policy, clock);
    for (const o of result.outcomes) {
      const labels = { model, version: o.plan.subject, kind: o.plan.kind };
      this.metrics.labels.set(labels, o.decision.evidence.n);
      this.metrics.estimate.set({ ...labels, bound: 'estimate' }, o.decision.evidence.estimate);
      this.metrics.estimate.set({ ...labels, bound: 'lower' }, o.decision.evidence.lower);
      this.metrics.estimate.set({ ...labels, bound: 'upper' }, o.decision.evidence.upper);
      if (o.skipped > 0) this.metrics.skipped.inc({ reason: 'invalid' }, o.skipped);
      deps.logger.debug(
        {
          model,
          kind: o.plan.kind,
          incumbent: o.plan.incumbent,
          challenger: o.plan.challenger,
          action: o.decision.action,
          detail: o.decision.detail,
        },
        'comparison',
      );
    }
    this.closeComparisons(
      model,
      result.outcomes.map((o) => ({ model, version: o.plan.subject, kind: o.plan.kind })),
    );
    for (const w of result.waiting) deps.logger.info({ model }, w);
    if (result.transition === undefined) return { republished };
    // Checked again just before the write: the reads above take time, and the model may have gone
    // to another controller meanwhile (a rebalance, or this member's membership unconfirmed for
    // the lease). Its new owner decides it from the rows; two owners would record contradictions.
    if (this.ownershipOf(model) !== 'decide') {
      deps.logger.info(
        { model, version: result.transition.version, to: result.transition.to_stage },
        'the model went to another controller during its tick: this decision is not recorded (its owner decides)',
      );
      return { republished };
    }
    // The model's transitions read again just before the write: an operator's move (`driftline
    // model stage`) or a trainer's record can land during the reads above (seconds), and the
    // decision was taken on the history before it. Recorded anyway, it could undo the operator:
    // a rollback of a canary followed by this tick's promotion of it, dated later, left the canary
    // in production and the rollback never published (found by a review). The next tick decides
    // on the new history. (A write in the milliseconds between this read and the record is not
    // caught.)
    const fresh = usableTransitions(await deps.transitions.history(model));
    if (!sameTransitions(history, fresh)) {
      deps.logger.info(
        { model, version: result.transition.version, to: result.transition.to_stage },
        "the model's transitions changed during its tick (an operator's or trainer's record): this decision is not recorded, the next tick decides on them",
      );
      return { republished };
    }
    const row: TransitionRow = { ...result.transition, model, recorded_at: (deps.now ?? Date.now)() };
    await deps.transitions.record([row]);
    this.metrics.transitions.inc({ model, to_stage: row.to_stage });
    deps.logger.info(
      {
        model,
        version: row.version,
        from: row.from_stage,
        to: row.to_stage,
        at: row.at,
        reason: row.reason,
        detail: row.detail,
      },
      'model version transition',
    );
    await this.publish([row]);
    return { republished, transition: row };
  }

  /**
   * One open comparison: reads its pairs, counts what it leaves out, and runs its test (asking
   * whether production answered when a watch's time is up with no pair). Only the outcome
   * leaves this frame, so the pairs are unreachable before the next comparison is read (in the
   * loop's own frame the last read's were still held during the next read: two comparisons'
   * pairs at a time).
   */
  private async runPlanOnItsPairs(
    model: string,
    plan: ComparisonPlan,
    policy: RolloutPolicy,
    clock: ModelClock | undefined,
    maxFutureMs: number,
    now: number,
    logged: ReadonlySet<string>,
    stillLogged: Set<string>,
    maturity: {
      readonly last: ReadonlyMap<string, MatureRead> | undefined;
      readonly next: Map<string, MatureRead>;
      readonly late: { arrived: number; dated: number; mostLateMs: number };
    },
    arrivals: {
      readonly last: ReadonlyMap<string, ArrivalRead> | undefined;
      readonly next: Map<string, ArrivalRead>;
      late: number;
    },
  ): Promise<{ outcome: PlanOutcome; newestJoined: number }> {
    const { deps } = this;
    let newestJoined = Number.NEGATIVE_INFINITY;
    const comparison = policyOf(policy, plan);
    // With label_maturity, nothing is mature yet below `from` (or without a clock): no read.
    const nothingMature = plan.matureUntil !== undefined && !(plan.matureUntil >= plan.from);
    // Without label_maturity, by closed arrival bucket (arrival_bucket above 0): the order within
    // a bucket depends on no label, and the read grows at its end as the wall clock moves on — but
    // for rows inserted after their bucket closed, which land inside it (countLateArrivals).
    const arrival =
      plan.matureUntil === undefined && policy.arrivalBucketMs > 0
        ? { bucketMs: policy.arrivalBucketMs, before: closedArrivalBound(now, policy.arrivalBucketMs) }
        : undefined;
    const {
      pairs: rows,
      unusable,
      waitingFrom,
      newestJoined: newestOfAll,
    } = nothingMature
      ? {
          pairs: [],
          unusable: { labelNotBinary: 0, scoreNotProbability: 0 },
          waitingFrom: undefined,
          newestJoined: undefined,
        }
      : await deps.pairs.readPairs({
          model,
          incumbent: plan.incumbent,
          challenger: plan.challenger,
          from: plan.from,
          limit: Math.min(deps.maxPairs, comparison.maxLabels),
          answeredBy: plan.answeredBy,
          ...(plan.matureUntil === undefined ? {} : { matureUntil: plan.matureUntil }),
          ...(arrival === undefined ? {} : { arrival }),
        });
    this.metrics.pairedRows.inc(
      rows.length + unusable.labelNotBinary + unusable.scoreNotProbability + (unusable.unscored ?? 0),
    );
    if (plan.matureUntil !== undefined) this.checkLateLabels(model, plan, rows, maturity);
    if (arrival !== undefined) arrivals.late += this.countLateArrivals(model, plan, rows, arrival.before, arrivals);
    // Bounded by the row's own arrival, not by this tick's wall clock: a row's inclusion never
    // changes between ticks, so each tick's path extends the last one's. Bounded by `now`, a row
    // left out at first came back into the middle of a path already tested once the wall clock
    // caught up, and held back pairs already used: the path shrank (found by a review). A row
    // kept is labelled at most the bound after it arrived, so a pair waiting for the clock waits
    // at most that long (see runPlan).
    const plausible = rows.filter(
      (r) => !(r.labelTime > r.joinedAt + maxFutureMs) && !(r.predictionTime > r.joinedAt + maxFutureMs),
    );
    const ahead = rows.length - plausible.length;
    for (const r of rows) if (r.joinedAt > newestJoined) newestJoined = r.joinedAt;
    // And of the pairs not read (waiting for their bucket, beyond the limit): by closed bucket,
    // every row read was joined before the bound, a wall clock − 30 s or more, so a joiner's clock
    // ahead of this host's was never seen there (found by a review).
    if (newestOfAll !== undefined && newestOfAll > newestJoined) newestJoined = newestOfAll;
    // How far past their arrival the rows lie, against the bound, for the warning.
    const clockDetail = ahead === 0 ? {} : { max_future_ms: maxFutureMs, most_ahead_ms: mostAhead(rows) };
    this.countLeftOut(
      model,
      plan,
      { ...unusable, unscored: unusable.unscored ?? 0, timeBeyondFuture: ahead },
      logged,
      stillLogged,
      clockDetail,
    );
    let outcome = runPlan(plan, comparison, plausible, clock, undefined, waitingFrom);
    // A rollback watch whose time is up with no pair is decided by whether production answered
    // since it began (no pair cannot tell: a production never loaded, a margin-score model and
    // rows without `scores` all give none). Read only then. A failed read never defaults to a
    // decision: that watch waits (next tick), and the model's other comparisons decide as usual
    // — a failing read had held them all, a bad canary serving on (found by a review).
    if (awaitsAnswered(plan, outcome.decision)) {
      try {
        const answered = await deps.pairs.answeredSince(model, plan.incumbent, plan.from);
        outcome = runPlan(plan, comparison, plausible, clock, answered, waitingFrom);
      } catch (error) {
        const e = toDriftlineError(error);
        deps.logger.warn(
          { model, version: plan.incumbent, code: e.code, err: e.message },
          'whether production answered could not be read; its watch waits for the next tick',
        );
      }
    }
    return { outcome, newestJoined };
  }

  /**
   * For a model with open comparisons and no label_maturity: reads its label delays by class
   * (at most once per LABEL_DELAYS_REFRESH_MS, over LABEL_DELAYS_LOOKBACK_MS of predictions) and,
   * when one class arrives much later (labelOrderBiased), says so once (again after it recovered)
   * and keeps `driftline_model_controller_label_order_bias{model}` at 1 (alerted): in arrival order
   * its comparisons see the faster class first, and may promote or keep a worse version (a review
   * promoted a worse candidate 100 times in 100). Told, not corrected: only label_maturity can. A
   * failed read keeps the last verdict, never fails the tick, and is tried again only after
   * LABEL_DELAYS_REFRESH_MS: a 90-day scan that times out (30 s) was run again at every tick
   * (found by a review). It is said once (again after a read succeeded) and keeps
   * `driftline_model_controller_label_delays_read_failing{model}` at 1 (alerted): a read that
   * kept failing switched the check off with a debug line only, the bias gauge never set and its
   * alert unable to fire (found by a review).
   */
  private async checkLabelOrder(model: string, now: number): Promise<void> {
    const read = this.deps.pairs.labelDelays;
    if (read === undefined) return;
    let cached = this.labelDelays.get(model);
    if (cached === undefined || now - cached.at >= LABEL_DELAYS_REFRESH_MS || now < cached.at) {
      try {
        cached = { at: now, delays: await read(model, now - LABEL_DELAYS_LOOKBACK_MS) };
        this.labelDelaysFailLogged.delete(model);
        this.metrics.labelDelaysFailing.set({ model }, 0);
      } catch (error) {
        const e = toDriftlineError(error);
        const last = cached?.delays;
        const verdict = last === undefined ? 'none' : labelOrderBiased(last) ? 'biased' : 'not biased';
        const detail = { model, code: e.code, err: e.message, retry_in_ms: LABEL_DELAYS_REFRESH_MS, verdict };
        if (this.labelDelaysFailLogged.has(model)) {
          this.deps.logger.debug(detail, 'label delays could not be read again; the label-order check stays off');
        } else {
          this.labelDelaysFailLogged.add(model);
          this.deps.logger.warn(
            detail,
            'label delays could not be read: the label-order check of this model is off (its last verdict kept, if any) until a read succeeds, tried again hourly',
          );
        }
        this.metrics.labelDelaysFailing.set({ model }, 1);
        cached = { at: now, delays: last };
      }
      this.labelDelays.set(model, cached);
    }
    const delays = cached.delays;
    if (delays === undefined) return;
    const biased = labelOrderBiased(delays);
    this.metrics.labelOrderBias.set({ model }, biased ? 1 : 0);
    if (!biased) {
      this.labelDelayLogged.delete(model);
      return;
    }
    if (this.labelDelayLogged.has(model)) return;
    this.labelDelayLogged.add(model);
    const hours = (ms: number) => Math.round(ms / 360_000) / 10;
    this.deps.logger.warn(
      {
        model,
        positives: delays.positives,
        negatives: delays.negatives,
        positive_median_delay_h: hours(delays.positiveMedianMs),
        negative_median_delay_h: hours(delays.negativeMedianMs),
      },
      "labels of one class arrive much later than the other's: in arrival order the comparisons see the faster class first and may promote or keep a worse version; set label_maturity in the rollout policy to the longest label delay plus its delivery lag",
    );
  }

  /**
   * For a comparison of a model with `label_maturity` D: finds the labels that came after their
   * maturity, which `label_maturity` assumes never happens (every label is in the warehouse once
   * the label clock passes its prediction time + D). Such a pair lands in the middle of a path the
   * test already looked at, and the guarantee is void: labels dated 31 days after their prediction
   * with D = 30d, or dated at 30 days and delivered a day late, promoted a worse candidate 100
   * times in 100, and nothing said so (found by a regression review). Two kinds, each pair counted
   * once (in `late`, for sayLateLabels, and in `labels_after_maturity_total`):
   * - **arrived late**: this read has more pairs predicted at or before the last tick's
   *   `matureUntil` less the tolerance (lateLabelsToleranceMs) than that tick's read had (the rows
   *   of the same plan: same `from`, same requests): each was missing when the label clock had
   *   passed its maturity by more than the tolerance. One delivered within the tolerance (the
   *   pipeline's lag) is not counted. In memory: none at a comparison's first tick after a start.
   * - **dated late**: labelled more than D after the prediction, among the pairs newly mature at
   *   this tick (all of them at its first).
   * How late: for a pair dated late, its label time − prediction time − D; for one that arrived
   * late (and joined after the last read's newest row), how far the last tick's `matureUntil` was
   * past its prediction time — the label clock had passed its maturity at least that much while it
   * was missing. A read cut at its limit sees fewer (the comparison then decides on `max_labels`).
   */
  private checkLateLabels(
    model: string,
    plan: ComparisonPlan,
    rows: ReadonlyArray<PairInput & { readonly joinedAt: number }>,
    maturity: {
      readonly last: ReadonlyMap<string, MatureRead> | undefined;
      readonly next: Map<string, MatureRead>;
      readonly late: { arrived: number; dated: number; mostLateMs: number };
    },
  ): void {
    const matureUntil = plan.matureUntil as number;
    const maturityMs = plan.labelMaturityMs ?? 0;
    const key = planKey(plan);
    const last = maturity.last?.get(key);
    // The clock went back (rows expired, or a host's clock): start again from this read.
    const previous = last !== undefined && last.matureUntil <= matureUntil ? last : undefined;
    const settledUntil = matureUntil - lateLabelsToleranceMs(maturityMs);
    let settled = 0;
    let settledLast = 0;
    let newestJoined = Number.NEGATIVE_INFINITY;
    let arrived = 0;
    let dated = 0;
    let mostLateMs = Number.NEGATIVE_INFINITY;
    for (const r of rows) {
      if (!(r.predictionTime <= matureUntil)) continue;
      if (r.predictionTime <= settledUntil) settled++;
      if (r.joinedAt > newestJoined) newestJoined = r.joinedAt;
      const wasMature = previous !== undefined && r.predictionTime <= previous.matureUntil;
      if (previous !== undefined && r.predictionTime <= previous.settledUntil) {
        settledLast++;
        if (r.joinedAt > previous.newestJoined)
          mostLateMs = Math.max(mostLateMs, previous.matureUntil - r.predictionTime);
      }
      const labelledAfter = r.labelTime - r.predictionTime - maturityMs;
      if (labelledAfter > 0) {
        mostLateMs = Math.max(mostLateMs, labelledAfter);
        if (!wasMature) dated++; // a late one among the pairs this tick first sees mature
      }
    }
    if (previous !== undefined) arrived = Math.max(0, settledLast - previous.settled);
    maturity.next.set(key, {
      matureUntil,
      settledUntil,
      settled,
      newestJoined: Math.max(newestJoined, previous?.newestJoined ?? Number.NEGATIVE_INFINITY),
    });
    if (arrived + dated === 0) return;
    this.metrics.labelsAfterMaturity.inc({ model }, arrived + dated);
    maturity.late.arrived += arrived;
    maturity.late.dated += dated;
    maturity.late.mostLateMs = Math.max(maturity.late.mostLateMs, mostLateMs);
  }

  /**
   * Says, at most once per LATE_LABELS_LOG_INTERVAL_MS per model, that labels came after their
   * maturity at this tick (checkLateLabels): the model, its label_maturity, how many and how late.
   */
  private sayLateLabels(
    model: string,
    maturityMs: number,
    late: { readonly arrived: number; readonly dated: number; readonly mostLateMs: number },
    now: number,
  ): void {
    if (late.arrived + late.dated === 0) return;
    const said = this.lateLabelsLogged.get(model);
    if (said !== undefined && now - said < LATE_LABELS_LOG_INTERVAL_MS && now >= said) return;
    this.lateLabelsLogged.set(model, now);
    this.deps.logger.warn(
      {
        model,
        label_maturity_ms: maturityMs,
        arrived_after_maturity: late.arrived,
        labelled_after_maturity: late.dated,
        ...(Number.isFinite(late.mostLateMs) ? { most_late_ms: late.mostLateMs } : {}),
      },
      "labels came after their label_maturity (read after the label clock had passed their prediction + label_maturity, or labelled more than label_maturity after their prediction): they land in the middle of the comparisons' paths, whose guarantee is then void (a worse version can be promoted or kept); set label_maturity above the longest label delay plus its delivery lag",
    );
  }

  /**
   * For a comparison read by closed arrival bucket: how many of this read's pairs were joined
   * before the last tick's bound — in buckets that last read had already closed and read — beyond
   * the pairs it read. Those rows were inserted after their bucket closed (a label-joiner keeps a
   * row's joined_at through its retries, so an outage of it or of ClickHouse across a bucket's end
   * does this; so does a joiner clock behind this host's by more than the grace): each lands at its
   * hash's place inside its bucket, so the path already tested changes up to a bucket back (a
   * review's read put 4 such rows at places 5, 8, 11 and 12 of 14). Counted, not corrected:
   * bucketing by the insert's time instead (`written_at`, the server's) would move an already-read
   * row at every redelivery (FINAL keeps the last insert), and reads as now() on parts written
   * before 0500 until merged. Net of rows that left the read since (expired, re-joined), and
   * none at a comparison's first tick after a start: a lower bound.
   */
  private countLateArrivals(
    model: string,
    plan: ComparisonPlan,
    rows: ReadonlyArray<{ readonly joinedAt: number }>,
    before: number,
    arrivals: { readonly last: ReadonlyMap<string, ArrivalRead> | undefined; readonly next: Map<string, ArrivalRead> },
  ): number {
    const key = planKey(plan);
    const last = arrivals.last?.get(key);
    arrivals.next.set(key, { before, read: rows.length });
    // The wall clock went back (a host's clock): start again from this read.
    if (last === undefined || last.before > before) return 0;
    let closedBefore = 0;
    for (const r of rows) if (r.joinedAt < last.before) closedBefore++;
    const late = Math.max(0, closedBefore - last.read);
    if (late > 0) this.metrics.lateArrivals.inc({ model }, late);
    return late;
  }

  /** Says, at most once per LATE_ARRIVALS_LOG_INTERVAL_MS per model, that pairs came into buckets already read (countLateArrivals). */
  private sayLateArrivals(model: string, bucketMs: number, late: number, now: number): void {
    if (!(late > 0)) return;
    const said = this.lateArrivalsLogged.get(model);
    if (said !== undefined && now - said < LATE_ARRIVALS_LOG_INTERVAL_MS && now >= said) return;
    this.lateArrivalsLogged.set(model, now);
    this.deps.logger.warn(
      { model, late_pairs: late, arrival_bucket_ms: bucketMs },
      "pairs were inserted into arrival buckets this controller had already read (a label-joiner or ClickHouse outage across a bucket's end, or a joiner's clock behind this host's): they land inside the paths already tested, up to a bucket back, not at their end (see driftline_model_controller_late_arrivals_total)",
    );
  }

  /**
   * Shows how far the model's label clock lags the wall clock while it has open comparisons
   * (`label_clock_lag_seconds`, and the shortest open max_time in `label_clock_lag_limit_seconds`;
   * both removed when none is open, or without a clock), and says at most once per
   * LABEL_CLOCK_LAG_LOG_INTERVAL_MS per model when the lag is past that max_time. Decisions stay
   * on event time: max_time runs on the label clock, which does not move while no label arrives —
   * a label source that stops holds every open comparison (a canary serving on) for good, and
   * nothing said so (found by a review: 60 days of ticks, still canary, no line). A model with no
   * clock at all (no labelled prediction ever, or none left once labeled_predictions' retention
   * dropped them) lags from the start of its oldest open comparison (comparisonStart): it waits
   * just as well, and had no gauge and no line (found by a regression review).
   */
  private showClockLag(
    model: string,
    plans: readonly ComparisonPlan[],
    policy: RolloutPolicy | undefined,
    clock: ModelClock | undefined,
    now: number,
  ): void {
    if (plans.length === 0 || policy === undefined) {
      this.metrics.clockLag.remove({ model });
      this.metrics.clockLagLimit.remove({ model });
      this.clockLagLogged.delete(model);
      return;
    }
    const oldest = Math.min(...plans.map(comparisonStart));
    const lagMs = now - (clock === undefined ? oldest : clock.labelTime);
    const limitMs = Math.min(...plans.map((p) => policyOf(policy, p).maxTimeMs));
    this.metrics.clockLag.set({ model }, lagMs / 1000);
    this.metrics.clockLagLimit.set({ model }, limitMs / 1000);
    if (!(lagMs > limitMs)) {
      this.clockLagLogged.delete(model);
      return;
    }
    const said = this.clockLagLogged.get(model);
    if (said !== undefined && now - said < LABEL_CLOCK_LAG_LOG_INTERVAL_MS && now >= said) return;
    this.clockLagLogged.set(model, now);
    const open = plans.map((p) => `${p.kind}:${p.subject}:${p.stage}`);
    if (clock === undefined) {
      this.deps.logger.warn(
        { model, oldest_comparison_from: oldest, lag_ms: lagMs, max_time_ms: limitMs, open },
        "the model has no labelled prediction (none ever, or none left within the labelled rows' retention), and its oldest open comparison began longer ago than its max_time: max_time runs on the label clock, so these comparisons wait for labels, their versions in the stage meanwhile (a label source or the label-joiner not running for this model? move them by hand with `driftline model stage` if labels will not come)",
      );
      return;
    }
    this.deps.logger.warn(
      {
        model,
        label_clock: clock.labelTime,
        lag_ms: lagMs,
        max_time_ms: limitMs,
        open,
      },
      "the model's label clock lags the wall clock by more than its open comparisons' max_time: no label has arrived since (a label source or the label-joiner stopped?); max_time runs on event time, so these comparisons wait for labels, their versions in the stage meanwhile (move them by hand with `driftline model stage` if labels will not come)",
    );
  }

  /**
   * Says once per model (again after it recovered) when more shadows are open than the model-server
   * scores (MAX_SHADOWS): it ignores a SHADOW beyond them, so those get no pair and are rejected at
   * max_time; and each open comparison costs a read of up to max_labels pairs at every tick.
   */
  private sayManyShadows(model: string, plans: readonly ComparisonPlan[]): void {
    const shadows = plans.filter((p) => p.kind === 'promotion' && p.stage === 'shadow').length;
    if (shadows <= MAX_SHADOWS) {
      this.manyShadowsLogged.delete(model);
      return;
    }
    if (this.manyShadowsLogged.has(model)) return;
    this.manyShadowsLogged.add(model);
    this.deps.logger.warn(
      { model, shadows, max_shadows: MAX_SHADOWS },
      'more shadows open than the model-server scores: those beyond its limit get no pair and are rejected at max_time, and every open comparison is read at each tick; reject or retire stale shadows (`driftline model stage`)',
    );
  }

  /**
   * Says once per model (again after it recovered) when a row arrived (joined_at, the
   * label-joiner's clock) more than CLOCK_BEHIND_TOLERANCE_MS after this host's now: this host's
   * clock runs slow, and every pair labelled near its arrival waits for the model clock about that
   * long, less the allowed future — every comparison late, with nothing left out to count (found by
   * a review: before e867833 such rows were counted time_beyond_future and warned about).
   */
  private sayClockBehind(model: string, newestJoined: number, now: number): void {
    const behindMs = newestJoined - now;
    if (!(behindMs > CLOCK_BEHIND_TOLERANCE_MS)) {
      this.clockBehindLogged.delete(model);
      return;
    }
    if (this.clockBehindLogged.has(model)) return;
    this.clockBehindLogged.add(model);
    this.deps.logger.warn(
      { model, behind_ms: behindMs },
      "paired rows joined after this host's clock: this host's clock runs behind the label-joiner's (check its time sync); decisions wait for the model clock that much longer",
    );
  }

  /**
   * Counts the rows left out of a comparison's pairs (at every tick that reads them), and says so
   * once per open comparison and reason: a comparison whose rows are all left out gets no pair, and
   * the operator saw only "no labels" (unusable rows: it ends on max_time) or nothing at all (rows
   * dated beyond their arrival + the allowed future, as every row is to a label-joiner whose clock
   * runs an hour slow: it never decides). `clockDetail`: the bound and how far the rows lie past
   * their arrival, for that warning.
   */
  private countLeftOut(
    model: string,
    plan: ComparisonPlan,
    left: {
      readonly labelNotBinary: number;
      readonly scoreNotProbability: number;
      readonly unscored: number;
      readonly timeBeyondFuture: number;
    },
    logged: ReadonlySet<string>,
    stillLogged: Set<string>,
    clockDetail: Readonly<Record<string, number>>,
  ): void {
    const reasons = [
      [
        'scoreNotProbability',
        'score_not_probability',
        left.scoreNotProbability,
        'paired rows with a score outside [0, 1] left out: a model whose objective is not a probability (e.g. binary:logitraw margins); its comparison gets no pair from them and ends on max_time',
      ],
      [
        'labelNotBinary',
        'label_not_binary',
        left.labelNotBinary,
        'paired rows with a label other than 0/1 left out: the comparison is of binary outcomes',
      ],
      [
        'unscored',
        'unscored',
        left.unscored,
        plan.kind === 'promotion' && plan.stage === 'canary'
          ? "paired rows where a version scored only beside the canary (a watched or replaced version, not this comparison's two) could not score the request left out of this canary comparison (see driftline_model_server_shadow_failures_total)"
          : "paired rows where one version could not score the request (the model-server's `unscored`: a value it cannot take, a score that is not finite, its scorer failing) left out of this shadow or watch comparison: the version that answers fails the request instead (no row), so charging only the other would be one-sided; a canary's comparison charges both (see driftline_model_server_shadow_failures_total)",
      ],
      [
        'timeBeyondFuture',
        'time_beyond_future',
        left.timeBeyondFuture,
        "paired rows dated beyond their arrival (joined_at) + DRIFTLINE_EVENT_TIME_MAX_FUTURE left out for good: this controller's DRIFTLINE_EVENT_TIME_MAX_FUTURE is smaller than the label-joiner's (keep it at least as large), or the joiners' clocks disagree; a comparison whose rows are all left out never decides",
      ],
    ] as const;
    for (const [reason, metricReason, n, message] of reasons) {
      if (!(n > 0)) continue;
      this.metrics.skipped.inc({ reason: metricReason }, n);
      const key = `${planKey(plan)}\u0000${reason}`;
      stillLogged.add(key);
      if (logged.has(key)) continue;
      this.deps.logger.warn(
        {
          model,
          kind: plan.kind,
          incumbent: plan.incumbent,
          challenger: plan.challenger,
          since: plan.since,
          from: plan.from,
          reason,
          rows: n,
          ...(reason === 'timeBeyondFuture' ? clockDetail : {}),
        },
        message,
      );
    }
  }

  /**
   * Removes the gauges of the model's comparisons that were open at the last tick and are not any
   * more (decided, or their version moved on): a closed comparison's last estimate would otherwise
   * be exported until a restart, and keep its place among the bounded label values.
   */
  private closeComparisons(model: string, open: ReadonlyArray<{ model: string; version: string; kind: string }>): void {
    const now = new Map(open.map((l) => [`${l.version}\u0000${l.kind}`, l]));
    for (const [key, labels] of this.shown.get(model) ?? []) {
      if (now.has(key)) continue;
      this.metrics.labels.remove(labels);
      for (const bound of ['estimate', 'lower', 'upper']) this.metrics.estimate.remove({ ...labels, bound });
    }
    if (now.size === 0) this.shown.delete(model);
    else this.shown.set(model, now);
  }

  /**
   * The newest transition of every version of the model that this process has not published yet,
   * oldest first. A version the history read no longer holds (past its MAX_HISTORY_ROWS newest
   * rows) is forgotten: it can never be pending again. Kept, every version ever trained stayed in
   * memory for the life of the process (~250 B each; found by a memory review).
   */
  private async republish(
    model: string,
    history: readonly TransitionRow[],
    current: ReturnType<typeof viewOf>['versions'],
  ): Promise<number> {
    const known = this.published.get(model);
    if (known !== undefined) {
      for (const version of known.keys()) if (!current.has(version)) known.delete(version);
      if (known.size === 0) this.published.delete(model);
    }
    // The row that brought each version to its current stage (history is ordered by `at`).
    const pending = history.filter(
      (t) => current.get(t.version)?.stage === t.to_stage && known?.get(t.version) !== transitionKey(t),
    );
    if (pending.length === 0) return 0;
    await this.publish(pending);
    this.metrics.republished.inc(pending.length);
    return pending.length;
  }

  private async publish(rows: readonly TransitionRow[]): Promise<void> {
    const events: ModelEvent[] = [];
    for (const row of rows)
      events.push(transitionEvent(row, await this.deps.transitions.artifacts(row.model, row.version)));
    await this.deps.publish(events);
    for (const row of rows) {
      let versions = this.published.get(row.model);
      if (versions === undefined) {
        versions = new Map();
        this.published.set(row.model, versions);
      }
      versions.set(row.version, transitionKey(row));
    }
  }
}
