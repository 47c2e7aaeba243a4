import { setImmediate } from 'node:timers/promises';
import {
  admitLine,
  DriftlineError,
  type EventTimeBounds,
  type Logger,
  lineLimit,
  serialByKey,
  toDriftlineError,
} from '@driftline/core';
import {
  type AlertContext,
  buildAlerts,
  type CompletedWindow,
  capReason,
  checkPartialsTime,
  DEFAULT_MISSING_ALERT_ALPHA,
  type DriftThresholds,
  dataQualityAlert,
  decodePartials,
  featureResults,
  LATE_ONLY_FEATURE,
  LATE_ONLY_METHOD,
  type MergeGroup,
  type MergeHold,
  MergeState,
  MISSING_SHARE_EXPECTATION,
  type MissingShareCheck,
  measuredOnWritten,
  mergeGroup,
  missingShareCheck,
  NO_MISSING_SHARE_CHECK,
  type PartialsMessage,
  type PrimaryMethod,
  primaryMethodFor,
  type QuarantineCause,
  quarantineAlert,
  type ReferencePart,
  type ReferenceSet,
  restoredFrontierProblem,
  wholeWindow,
  windowMissingCounts,
  windowVerdict,
} from '@driftline/drift';
import type { BatchProcessor } from '@driftline/kafka';
import { type ExpectationResult, type ExpectationSet, evaluateWindow, mergeSections } from '@driftline/quality';
import type { DriftAlert } from '@driftline/schemas';
import { KsExactBudget, type Summary } from '@driftline/stats';
import {
  chTime,
  type DataQualityRow,
  type DataQualityStore,
  type DriftQuarantineRow,
  type DriftQuarantineStore,
  type DriftWindowRow,
  type DriftWindowStore,
  type ProgressStore,
} from '@driftline/warehouse';
import type { DriftMetrics } from './metrics.js';
import { saveProgress } from './progress.js';
import type { ReferenceCache } from './reference-cache.js';

export interface MergeDeps {
  /** `writtenReferences`: the reference a split window's drift was first written on sticks. */
  readonly driftWindows: Pick<DriftWindowStore, 'insert' | 'writtenReferences'>;
  /** Where a (model, version, window) whose drift cannot be computed or stored is recorded. */
  readonly quarantine: DriftQuarantineStore;
  readonly references: ReferenceCache;
  readonly progress: ProgressStore;
  readonly group: string;
  readonly idleTimeoutMs: number;
  /** Window size: a restored window start is checked against the event-time bounds widened by it. */
  readonly windowMs: number;
  /** Accepted event times: a partials message or a restored window outside them is refused. */
  readonly eventTime: EventTimeBounds;
  readonly thresholds: DriftThresholds;
  readonly primary: PrimaryMethod;
  readonly alertShare: number;
  /**
   * Fewest events of a group for its drift alerts, and of a feature's whole-window count for the
   * built-in missing-share check (DRIFTLINE_DRIFT_ALERT_MIN_EVENTS); drift rows are written regardless.
   */
  readonly alertMinEvents: number;
  /**
   * The built-in missing-share check (DRIFTLINE_DRIFT_MISSING_ALERT, default true): the DATA_QUALITY
   * alert also reports input features whose missing share rose significantly over the whole window
   * (`missingShareCheck`), and each feature checked gets a `missing_share` row in `quality.store`.
   */
  readonly missingAlert?: boolean;
  /** Its level (DRIFTLINE_DRIFT_MISSING_ALERT_ALPHA, default `DEFAULT_MISSING_ALERT_ALPHA`). */
  readonly missingAlertAlpha?: number;
  readonly sendAlerts: (alerts: readonly DriftAlert[]) => Promise<void>;
  readonly logger: Logger;
  readonly metrics?: DriftMetrics;
  readonly now?: () => number;
  /** Data-quality expectations evaluated on the partials' quality sections, and where their rows go. */
  readonly quality?: { readonly expectations: ExpectationSet; readonly store: DataQualityStore };
}

/** Completed windows per partials partition whose sources are remembered for the log line of a late source. */
const COMPLETED_REMEMBERED = 256;

/** Who a completed window waited for: its source partition count, and the sources it found idle. */
interface CompletedSources {
  readonly sourcePartitions: number;
  readonly idle: readonly number[];
}

/**
 * Why a source's partial came after its window completed, as far as this member saw the completion.
 * A source at or past the window's count was not expected: the source topic grew after its markers
 * named the old count (the log said "idle" for it, within a second of the growth).
 */
function lateSourceMessage(source: number, completed: CompletedSources | undefined): string {
  if (completed !== undefined && source >= completed.sourcePartitions) {
    return `partial of a source its window did not expect when it completed (${completed.sourcePartitions} source partitions then: the source topic grew after the window closed); its events are not merged`;
  }
  if (completed?.idle.includes(source) === true) {
    return 'partial arrived after its window completed without its source, idle for DRIFTLINE_DRIFT_IDLE_TIMEOUT; its events are not merged';
  }
  return 'partial arrived after its window completed without its source; its events are not merged';
}

const finiteOrNull = (v: number | null): number | null => (v === null || !Number.isFinite(v) ? null : v);

type EvaluateDeps = Pick<
  MergeDeps,
  'references' | 'thresholds' | 'primary' | 'alertShare' | 'alertMinEvents' | 'metrics'
>;

/**
 * Results of one (model, version) of a completed window on the reference it is measured on (the
 * group's measured part; `setAside` parts are not in its drift): drift_windows rows, alerts, and
 * the reference with the part's merged summaries (for the missing-share check). Pure given the
 * references. Throws when the group cannot be evaluated: a reference that is gone (NOT_FOUND) or
 * partials that do not fit it (VALIDATION_FAILED) are non-retriable.
 */
async function evaluateGroup(
  w: CompletedWindow,
  group: MergeGroup,
  deps: EvaluateDeps,
  computedAt: number,
  ksBudget: KsExactBudget,
): Promise<{
  rows: DriftWindowRow[];
  alerts: DriftAlert[];
  measured: { readonly ref: ReferenceSet; readonly summaries: ReadonlyMap<string, Summary> };
}> {
  const rows: DriftWindowRow[] = [];
  const ref = await deps.references.byReferenceId(group.referenceId);
  if (ref === undefined) {
    throw new DriftlineError('NOT_FOUND', `reference ${group.referenceId} of the partials is gone`);
  }
  const merged = mergeGroup(group, ref);
  const kinds = new Map<string, 'numeric' | 'categorical'>();
  const results = [];
  for (let i = 0; i < ref.features.length; i++) {
    const feature = ref.features[i]!;
    const profile = ref.profiles[i]!;
    kinds.set(feature, profile.kind);
    const summary = merged.get(feature);
    if (summary !== undefined) results.push(...featureResults(feature, profile, summary, deps.thresholds, ksBudget));
  }
  for (const r of results) {
    rows.push({
      model: group.model,
      version: group.version,
      reference_id: group.referenceId,
      feature: r.feature,
      window_start: chTime(w.windowStart),
      window_end: chTime(w.windowEnd),
      method: r.method,
      statistic: r.statistic,
      p_value: finiteOrNull(r.pValue),
      threshold: r.threshold,
      drifted: r.drifted ? 1 : 0,
      reference_size: r.referenceSize,
      current_size: r.currentSize,
      events: group.events,
      late_events: group.late,
      error_bound: finiteOrNull(r.errorBound),
      source_partitions: w.sourcePartitions,
      idle_partitions: w.idle.length,
      computed_at: chTime(computedAt),
    });
    if (r.method === primaryMethodFor(kinds.get(r.feature) ?? 'numeric', deps.primary))
      deps.metrics?.statistic.set({ model: group.model, feature: r.feature }, r.statistic);
  }
  if (rows.length === 0 && group.late > 0) {
    // No event on time, so no statistic: the late count gets a row of its own (LATE_ONLY_METHOD of
    // @driftline/drift), or it reached no table.
    rows.push({
      model: group.model,
      version: group.version,
      reference_id: group.referenceId,
      feature: LATE_ONLY_FEATURE,
      window_start: chTime(w.windowStart),
      window_end: chTime(w.windowEnd),
      method: LATE_ONLY_METHOD,
      statistic: 0,
      p_value: null,
      threshold: 0,
      drifted: 0,
      reference_size: 0,
      current_size: 0,
      events: group.events,
      late_events: group.late,
      error_bound: null,
      source_partitions: w.sourcePartitions,
      idle_partitions: w.idle.length,
      computed_at: chTime(computedAt),
    });
  }
  const verdict = windowVerdict(results, kinds, deps.primary, deps.alertShare);
  // Drifted as the verdict decides, for every feature with a row: one without a primary row (absent
  // or null in every event) is in the verdict's denominator and not drifted, so its gauge is 0. Set
  // from the primary row alone, it kept the value of the last window the feature arrived in.
  const drifted = new Set([...verdict.drifted, ...verdict.predictionDrift].map((r) => r.feature));
  for (const feature of new Set(results.map((r) => r.feature)))
    deps.metrics?.drifted.set({ model: group.model, feature }, drifted.has(feature) ? 1 : 0);
  return {
    rows,
    alerts: group.events >= deps.alertMinEvents ? buildAlerts(alertContext(w, group), verdict) : [],
    measured: { ref, summaries: merged },
  };
}

/**
 * The built-in missing-share check of one group over its WHOLE window: the measured part's merged
 * summaries and every set-aside part's, merged on its own reference (missing and total counts do
 * not depend on the reference), judged against the measured reference's shares. Before, it read
 * the measured part's missing_rate rows while the alert reported the whole window: 120 events
 * without x on one reference and 100 with x on another alerted "x missing from every event", and
 * an outage split 80 + 70 across two references alerted nowhere (under the minimum events on each;
 * a regression review). A set-aside part that cannot be read (its reference gone, a malformed
 * summary) is left out of the check and logged; an outage reading a reference is retried.
 * `declared`: the window's evaluated expectations (an evaluated `max_null_rate` decides instead).
 */
async function checkMissingShares(
  w: CompletedWindow,
  group: MergeGroup,
  measured: { readonly ref: ReferenceSet; readonly summaries: ReadonlyMap<string, Summary> },
  declared: readonly ExpectationResult[],
  deps: Pick<
    MergeDeps,
    'references' | 'thresholds' | 'alertMinEvents' | 'missingAlert' | 'missingAlertAlpha' | 'logger'
  >,
): Promise<MissingShareCheck> {
  if (deps.missingAlert === false) return NO_MISSING_SHARE_CHECK;
  const parts: Array<ReadonlyMap<string, Summary>> = [measured.summaries];
  for (const part of group.setAside) {
    try {
      const ref = await deps.references.byReferenceId(part.referenceId);
      if (ref === undefined) throw new DriftlineError('NOT_FOUND', `reference ${part.referenceId} is gone`);
      parts.push(mergeGroup({ model: group.model, version: group.version, ...part }, ref));
    } catch (thrown) {
      const error = toDriftlineError(thrown);
      if (error.retriable) throw error;
      deps.logger.warn(
        {
          model: group.model,
          version: group.version,
          windowStart: w.windowStart,
          referenceId: part.referenceId,
          events: part.events,
          code: error.code,
          reason: capReason(error.message),
        },
        'missing-share check: a part of the window summarised on a set-aside reference cannot be read; its events are left out of the check',
      );
    }
  }
  return missingShareCheck(measured.ref, windowMissingCounts(parts), {
    minEvents: deps.alertMinEvents,
    alpha: deps.missingAlertAlpha ?? DEFAULT_MISSING_ALERT_ALPHA,
    increase: deps.thresholds.missingRateIncrease,
    declared,
  });
}

/**
 * One `data_quality_windows` row per feature the built-in check measured (expectation
 * `missing_share`, scope ''): observed and bound shares, passed, count, and in `detail` the
 * reference's share, the p-value and the level. Keyed like an expectation's row, so a replay
 * rewrites the same row. `expectationsId`: the id of the expectations the window was evaluated
 * with, as its expectation rows carry ('' when none was).
 */
function missingShareRows(
  w: CompletedWindow,
  group: MergeGroup,
  check: MissingShareCheck,
  events: number,
  expectationsId: string,
  computedAt: number,
): DataQualityRow[] {
  return check.results.map((r) =>
    qualityRow(
      w,
      group,
      {
        ...r,
        expectation: MISSING_SHARE_EXPECTATION,
        detail: JSON.stringify({
          reference_share: r.referenceShare,
          p_value: r.pValue,
          alpha: r.alpha,
          part: r.missing,
          whole: r.count,
        }),
      },
      { events, expectationsId, computedAt },
    ),
  );
}

/**
 * One `data_quality_windows` row of the drift monitor (scope ''): a declared expectation's result
 * or the built-in missing-share check's, for one feature of a (model, version, window).
 */
function qualityRow(
  w: CompletedWindow,
  group: MergeGroup,
  r: {
    readonly feature: string;
    readonly expectation: string;
    readonly observed: number;
    readonly bound: number;
    readonly passed: boolean;
    readonly count: number;
    readonly detail: string;
  },
  at: { readonly events: number; readonly expectationsId: string; readonly computedAt: number },
): DataQualityRow {
  return {
    model: group.model,
    version: group.version,
    feature: r.feature,
    expectation: r.expectation,
    scope: '',
    window_start: chTime(w.windowStart),
    window_end: chTime(w.windowEnd),
    observed: r.observed,
    bound: r.bound,
    passed: r.passed ? 1 : 0,
    count: r.count,
    events: at.events,
    detail: r.detail,
    expectations_id: at.expectationsId,
    computed_at: chTime(at.computedAt),
  };
}

/** A set-aside part of a group whose data-quality sections cannot be merged (malformed). */
interface PartFailure {
  readonly part: ReferencePart;
  readonly failure: QuarantineCause;
}

/**
 * The data-quality rows and alert of one group: the quality sections of every partial of its
 * window, whatever reference they were summarised on (`wholeWindow`: quality counts do not depend
 * on it), merged (exact, any order) and evaluated against the expectations. Per group before, a
 * window split across references wrote two sets of rows on one key, and one of them was kept.
 * Sections built against other expectations (a config change between the stages) are not
 * evaluated: logged, no rows. A malformed section of the measured part throws (poison), which
 * quarantines the group like a malformed summary; a set-aside part with one is left out of the
 * quality and returned in `failedParts` (to be quarantined alone: the drift does not use it).
 * `results` are the evaluated expectations (none when not merged), `whole` the events they count,
 * `expectationsId` the set's id when the window's counts merged ('' when nothing was evaluated).
 */
function evaluateQuality(
  w: CompletedWindow,
  group: MergeGroup,
  deps: Pick<MergeDeps, 'quality' | 'logger'>,
  computedAt: number,
): {
  rows: DataQualityRow[];
  results: ExpectationResult[];
  whole: ReturnType<typeof wholeWindow>;
  expectationsId: string;
  failedParts: PartFailure[];
} {
  const q = deps.quality;
  const failedParts: PartFailure[] = [];
  let results: ExpectationResult[] = [];
  let rows: DataQualityRow[] = [];
  let whole = wholeWindow(group);
  let expectationsId = '';
  if (q !== undefined) {
    const setAside = group.setAside.filter((part) => {
      try {
        mergeSections(
          part.partials.map((p) => p.quality),
          q.expectations,
        );
        return true;
      } catch (thrown) {
        const error = toDriftlineError(thrown);
        if (error.retriable) throw error;
        failedParts.push({ part, failure: { code: error.code, reason: error.message } });
        return false;
      }
    });
    whole = wholeWindow({ ...group, setAside });
    const merged = mergeSections(
      whole.partials.map((p) => p.quality),
      q.expectations,
    );
    if (merged.status === 'mismatch') {
      deps.logger.warn(
        {
          model: group.model,
          version: group.version,
          windowStart: w.windowStart,
          ids: merged.ids,
          expected: q.expectations.id,
        },
        'data-quality counts were built against other expectations: window not evaluated',
      );
    }
    if (merged.status === 'merged') {
      expectationsId = q.expectations.id;
      results = evaluateWindow(q.expectations, merged.states);
      const at = { events: whole.events, expectationsId: q.expectations.id, computedAt };
      rows = results.map((r) => qualityRow(w, group, r, at));
    }
  }
  return { rows, results, whole, expectationsId, failedParts };
}

/**
 * The order of one send to alerts.v1 (keyed by model, so one partition keeps it): windows oldest
 * first and, in a window, every DATA_QUALITY alert before the drift alerts, of any version. Part
 * of the contract: the retrain policy's data-quality veto takes a drift window for broken only
 * once a DATA_QUALITY alert of the model has come for it (libs/policy README, "Data-quality
 * veto"). Sent after, the first window of an outage fired a retrain on the broken data, and its
 * cooldown held the real one. Stable: the alerts of one kind keep their order. When the publisher
 * refuses a send (`isolate` then sends group by group) only each group's own alerts keep it.
 */
function inSendOrder(alerts: readonly DriftAlert[]): DriftAlert[] {
  const rank = (a: DriftAlert) => (a.kind === 'DATA_QUALITY' ? 0 : 1);
  return [...alerts].sort((a, b) => a.window_start - b.window_start || rank(a) - rank(b));
}

const alertContext = (w: CompletedWindow, group: MergeGroup): AlertContext => ({
  model: group.model,
  version: group.version,
  referenceId: group.referenceId,
  windowStart: w.windowStart,
  windowEnd: w.windowEnd,
  events: group.events,
  lateEvents: group.late,
});

/**
 * A window whose sources summarised a (model, version) on different references: its drift is the
 * measured part's alone (`measuredPart` of @driftline/drift), the others' events are only in its
 * data quality. Said once the window is written, so a retried batch does not say it twice.
 */
function reportReferenceSplits(outcomes: readonly Outcome[], deps: Pick<MergeDeps, 'logger' | 'metrics'>): void {
  for (const { window: w, group: g } of outcomes) {
    if (g.setAside.length === 0) continue;
    deps.metrics?.referenceSplits.inc();
    deps.logger.warn(
      {
        model: g.model,
        version: g.version,
        windowStart: w.windowStart,
        windowEnd: w.windowEnd,
        measured: { referenceId: g.referenceId, events: g.events },
        setAside: g.setAside.map((p) => ({ referenceId: p.referenceId, events: p.events })),
      },
      'drift window summarised on different references (a reference re-stored while instances refreshed): drift measured on the one it was already written on, else the one with the most events, the others left out of drift, data quality over all',
    );
  }
}

/** A quarantined group of a window — (model, version) — or a set-aside part of one (with its reference). */
const quarantineKey = (model: string, version: string, referenceId = ''): string =>
  JSON.stringify([model, version, referenceId]);

/** One group of a completed window on its way out: its results, or why it is quarantined. */
interface Outcome {
  readonly window: CompletedWindow;
  /** Measured on the reference already written, once that is read (`measuredOnWritten`). */
  group: MergeGroup;
  rows: DriftWindowRow[];
  alerts: DriftAlert[];
  qualityRows: DataQualityRow[];
  failure: QuarantineCause | undefined;
  /** Quarantined by an earlier attempt of this window (its progress save failed): not again. */
  quarantined: boolean;
  /** Set-aside parts left out of the quality (quarantined alone; the group's results stand). */
  failedParts: PartFailure[];
}

/**
 * Runs `write` over the outcomes' payloads at once; when the sink rejects it (non-retriable), once
 * per outcome, so only the groups whose own payload is refused are marked as failed. A retriable
 * error is rethrown: the batch is retried and nothing is committed.
 */
async function isolate<P>(
  outcomes: readonly Outcome[],
  payload: (o: Outcome) => readonly P[],
  write: (items: readonly P[]) => Promise<void>,
): Promise<void> {
  const live = outcomes.filter((o) => o.failure === undefined && payload(o).length > 0);
  if (live.length === 0) return;
  try {
    await write(live.flatMap(payload));
    return;
  } catch (thrown) {
    const error = toDriftlineError(thrown);
    if (error.retriable) throw error;
    if (live.length === 1) {
      live[0]!.failure = { code: error.code, reason: error.message };
      return;
    }
  }
  for (const o of live) {
    try {
      await write(payload(o));
    } catch (thrown) {
      const error = toDriftlineError(thrown);
      if (error.retriable) throw error;
      o.failure = { code: error.code, reason: error.message };
    }
  }
}

/**
 * Stage 2: merges the partials of every source partition per (model, version, window), writes
 * drift_windows (on one reference per window), data_quality_windows (over every event) and alerts,
 * records the last completed window, then lets the commit pass.
 * A group that fails non-retriably is quarantined (drift_quarantine, a DRIFT_WINDOW_QUARANTINED
 * alert, a metric and an error log) and forgotten: it never blames the partials that carried it,
 * never stays in memory and never blocks later windows of the partition.
 */
/** How often at most the "drift windows held" warning is written. */
const HELD_WARNING_INTERVAL_MS = 5 * 60_000;

export function mergeProcessor(deps: MergeDeps): BatchProcessor<PartialsMessage> & { tick(): Promise<void> } {
  const now = deps.now ?? Date.now;
  const states = new Map<string, MergeState>();
  const keyOf = (topic: string, partition: number) => `${topic}/${partition}`;
  /** One batch or tick of a partials partition at a time. */
  const locked = serialByKey();
  /** Per partials partition, the sources its recently completed windows expected and found idle. */
  const completedWith = new Map<string, Map<number, CompletedSources>>();
  /**
   * Per partials partition and window start, the groups and set-aside parts quarantined by an
   * attempt whose window is not done yet (`quarantineKey`), with why. A failure after the
   * quarantine (the progress save) retries the window: those are not evaluated, recorded or
   * alerted again. Before, a window was quarantined again on every merge tick while
   * drift_progress could not be written — 41 alerts of one id, quarantined_total 41 (found by a
   * review). Forgotten once the window is done, and with the partition.
   */
  const quarantinedBefore = new Map<string, Map<number, Map<string, QuarantineCause>>>();
  const quarantinedOf = (key: string, windowStart: number) => quarantinedBefore.get(key)?.get(windowStart);
  /** At most one "windows held" warning per HELD_WARNING_INTERVAL_MS for the instance. */
  const heldLines = lineLimit();
  /**
   * The merge's wait in event time (`MergeState.held`, the most of the partitions owned) into
   * `driftline_drift_merge_held_seconds`; past the window plus the idle timeout (what a source
   * excluded as idle holds at most) a warning names the slowest source: one still sending, so
   * never idle, whose event times trail the others'.
   */
  function reportHeld(): void {
    let most: (MergeHold & { readonly key: string }) | undefined;
    for (const [key, state] of states) {
      const hold = state.held();
      if (hold !== undefined && (most === undefined || hold.heldMs > most.heldMs)) most = { ...hold, key };
    }
    deps.metrics?.mergeHeld.set((most?.heldMs ?? 0) / 1000);
    if (most === undefined || most.heldMs <= deps.windowMs + deps.idleTimeoutMs) return;
    const leftOut = admitLine(heldLines, now(), HELD_WARNING_INTERVAL_MS);
    if (leftOut === undefined) return;
    deps.logger.warn(
      {
        partials: most.key,
        windowStart: most.windowStart,
        heldSeconds: Math.round(most.heldMs / 1000),
        ...(most.slowest === undefined
          ? {}
          : {
              slowestSource: most.slowest.source,
              slowestLagSeconds: Number.isFinite(most.slowest.lagMs) ? Math.round(most.slowest.lagMs / 1000) : null,
            }),
      },
      "drift windows held: a source partition's event times trail the others' and it keeps sending (never idle), so every later window of this merge partition waits for it; see the drift-monitor README, 'Windows held by a slow source'",
    );
  }

  async function completeReady(topic: string, partition: number, state: MergeState): Promise<void> {
    const t = now();
    const { complete, stale } = state.ready(t);
    if (stale.length > 0) {
      // A later window completed while these still waited: dropped. Legitimate only for fragments
      // of windows completed before a restart; a partials message lost between the stages (Kafka
      // acknowledged it, the log never had it) drops a whole window this way — it was a metric only.
      const later = complete.find((w) => w.windowStart > stale[0]!)?.windowStart;
      for (const start of stale) {
        const waiting = state.waitingFor(start);
        deps.logger.warn(
          {
            topic,
            partition,
            windowStart: start,
            completedLater: later,
            unreportedSources: waiting?.sources,
            missingPartials: waiting?.partials,
          },
          'drift window dropped as a stale fragment: a later window completed while it still waited for these; if it was never completed before (a partials message lost between the stages), it has no drift_windows row',
        );
      }
      state.dropStale(stale);
      deps.metrics?.partialsDropped.inc({ reason: 'stale_fragment' }, stale.length);
    }
    if (complete.length === 0) return;
    // Per (model, version, window): evaluate, write, alert. A non-retriable failure of one group
    // quarantines that group only (recorded, alerted, forgotten); an outage (retriable) is thrown,
    // the batch is retried and nothing is committed. Every step is idempotent on a retry.
    const outcomes: Outcome[] = [];
    // One budget of exact KS p-value work for everything this call evaluates (beyond it the
    // asymptotic p, within about 2% of the exact one: libs/stats ks.ts), and a turn of the event
    // loop between groups: a budget per group, with no yield (references come from a cache),
    // held the loop 2.1 s for 4 models of 20 features (found by a review).
    const ksBudget = new KsExactBudget();
    let evaluated = 0;
    const key = keyOf(topic, partition);
    for (const window of complete) {
      const before = quarantinedOf(key, window.windowStart);
      for (const completed of window.groups) {
        const earlier = before?.get(quarantineKey(completed.model, completed.version));
        const outcome: Outcome = {
          window,
          group: completed,
          rows: [],
          alerts: [],
          qualityRows: [],
          failure: earlier,
          quarantined: earlier !== undefined,
          failedParts: [],
        };
        outcomes.push(outcome);
        if (outcome.quarantined) continue;
        if (evaluated++ > 0) await setImmediate();
        try {
          // A split window's parts can differ between attempts (an idle source's partial arriving
          // before a retry or a replay): the reference its drift was written on sticks, or the
          // window gets a second answer under another drift_windows key. Read like the write: an
          // outage is retried, a refusal quarantines the group. By start and end: a window of
          // another length starting at the same time (DRIFTLINE_DRIFT_WINDOW changed) is another window.
          const written =
            completed.setAside.length === 0
              ? []
              : await deps.driftWindows.writtenReferences(
                  completed.model,
                  completed.version,
                  window.windowStart,
                  window.windowEnd,
                );
          const group = written.length === 0 ? completed : measuredOnWritten(completed, written);
          outcome.group = group;
          const evaluated = await evaluateGroup(window, group, deps, t, ksBudget);
          outcome.rows = evaluated.rows;
          outcome.alerts = evaluated.alerts;
          const quality = evaluateQuality(window, group, deps, t);
          // Exempt only a feature whose declared max_null_rate was evaluated on this window: declared
          // but not evaluated (counts built against other expectations), it raised nothing at all.
          const missing = await checkMissingShares(window, group, evaluated.measured, quality.results, deps);
          outcome.qualityRows = [
            ...quality.rows,
            ...missingShareRows(window, group, missing, quality.whole.events, quality.expectationsId, t),
          ];
          outcome.failedParts = quality.failedParts.filter(
            (f) => before?.has(quarantineKey(group.model, group.version, f.part.referenceId)) !== true,
          );
          // One DATA_QUALITY alert per window: the failed expectations (in a window of at least
          // alertMinEvents events, like drift; their rows are written above whatever the count) and
          // the built-in check's failures; it needs no expectation configured. Sent before the
          // window's drift alerts (`inSendOrder`).
          const context = {
            ...alertContext(window, group),
            events: quality.whole.events,
            lateEvents: quality.whole.late,
          };
          const alert = dataQualityAlert(context, quality.results, { minEvents: deps.alertMinEvents, missing });
          if (alert !== undefined) outcome.alerts.push(alert);
        } catch (thrown) {
          const error = toDriftlineError(thrown);
          if (error.retriable) throw error;
          outcome.failure = { code: error.code, reason: error.message };
        }
      }
    }
    await isolate(
      outcomes,
      (o) => o.rows,
      (rows) => deps.driftWindows.insert(rows),
    );
    const qualityStore = deps.quality?.store;
    if (qualityStore !== undefined) {
      await isolate(
        outcomes,
        (o) => o.qualityRows,
        (rows) => qualityStore.insert(rows),
      );
    }
    await isolate(
      outcomes,
      (o) => o.alerts,
      (alerts) => deps.sendAlerts(inSendOrder(alerts)),
    );
    await quarantine(outcomes, topic, partition, t);
    const last = complete[complete.length - 1]!;
    await saveProgress(deps.progress, 'merge', deps.group, topic, partition, { position: last.windowStart, offset: 0 });
    state.markDone(complete);
    const remembered = quarantinedBefore.get(key);
    for (const w of complete) remembered?.delete(w.windowStart);
    if (remembered?.size === 0) quarantinedBefore.delete(key);
    rememberCompleted(key, complete);
    reportReferenceSplits(outcomes, deps);
    const done = now();
    for (const w of complete) deps.metrics?.mergeLatency.observe(Math.max(0, done - w.firstSeenAt) / 1000);
    deps.metrics?.windowsMerged.inc(complete.length);
  }

  function rememberCompleted(key: string, windows: readonly CompletedWindow[]): void {
    let known = completedWith.get(key);
    if (known === undefined) {
      known = new Map();
      completedWith.set(key, known);
    }
    for (const w of windows) known.set(w.windowStart, { sourcePartitions: w.sourcePartitions, idle: w.idle });
    while (known.size > COMPLETED_REMEMBERED) known.delete(known.keys().next().value!);
  }

  /**
   * Records the failed groups in drift_quarantine and raises a DRIFT_WINDOW_QUARANTINED alert each.
   * A set-aside part whose quality failed gets a row of its own and an error log, no alert: the
   * group's drift does not use it, and its quality is written without it.
   */
  async function quarantine(outcomes: readonly Outcome[], topic: string, partition: number, t: number): Promise<void> {
    const failed = outcomes.filter((o) => o.failure !== undefined && !o.quarantined);
    const failedParts = outcomes.flatMap((o) => o.failedParts.map((f) => ({ window: o.window, group: o.group, ...f })));
    if (failed.length === 0 && failedParts.length === 0) return;
    const row = (
      w: CompletedWindow,
      g: MergeGroup,
      part: Pick<ReferencePart, 'referenceId' | 'events' | 'late'>,
      failure: QuarantineCause,
    ): DriftQuarantineRow => ({
      model: g.model,
      version: g.version,
      reference_id: part.referenceId,
      window_start: chTime(w.windowStart),
      window_end: chTime(w.windowEnd),
      events: part.events,
      late_events: part.late,
      source_partitions: w.sourcePartitions,
      idle_partitions: w.idle.length,
      code: failure.code,
      reason: capReason(failure.reason),
      topic,
      partition,
      quarantined_at: chTime(t),
    });
    const rows = [
      ...failed.map((o) => row(o.window, o.group, o.group, o.failure!)),
      ...failedParts.map((f) => row(f.window, f.group, f.part, f.failure)),
    ];
    await bestEffort(() => deps.quarantine.insert(rows), 'drift_quarantine refused the record of a quarantined window');
    for (const f of failedParts) {
      deps.logger.error(
        {
          model: f.group.model,
          version: f.group.version,
          referenceId: f.part.referenceId,
          events: f.part.events,
          windowStart: f.window.windowStart,
          topic,
          partition,
          code: f.failure.code,
          reason: capReason(f.failure.reason),
        },
        'drift window part on a set-aside reference quarantined: its data-quality counts cannot be merged, so they are left out of the quality of the window (its drift does not use them)',
      );
    }
    const remember = (windowStart: number, id: string, failure: QuarantineCause) => {
      const key = keyOf(topic, partition);
      let windows = quarantinedBefore.get(key);
      if (windows === undefined) {
        windows = new Map();
        quarantinedBefore.set(key, windows);
      }
      let groups = windows.get(windowStart);
      if (groups === undefined) {
        groups = new Map();
        windows.set(windowStart, groups);
      }
      groups.set(id, failure);
    };
    for (const f of failedParts)
      remember(f.window.windowStart, quarantineKey(f.group.model, f.group.version, f.part.referenceId), f.failure);
    if (failed.length === 0) return;
    const alerts = failed.map((o) => quarantineAlert(alertContext(o.window, o.group), o.failure!));
    await bestEffort(() => deps.sendAlerts(alerts), 'quarantine alert refused');
    for (const o of failed) {
      deps.metrics?.windowsQuarantined.inc({ code: o.failure!.code });
      deps.logger.error(
        {
          model: o.group.model,
          version: o.group.version,
          referenceId: o.group.referenceId,
          windowStart: o.window.windowStart,
          topic,
          partition,
          code: o.failure!.code,
          reason: capReason(o.failure!.reason),
        },
        'drift window quarantined: its drift could not be computed or stored, or its alerts were refused (the code and reason say which); the stream moves on',
      );
      remember(o.window.windowStart, quarantineKey(o.group.model, o.group.version), o.failure!);
    }
  }

  /** An outage is retried like any other; a refusal of the quarantine's own record is only logged. */
  async function bestEffort(fn: () => Promise<void>, message: string): Promise<void> {
    try {
      await fn();
    } catch (thrown) {
      const error = toDriftlineError(thrown);
      if (error.retriable) throw error;
      deps.logger.error({ code: error.code, err: error.message }, message);
    }
  }

  return {
    decode: (record) => checkPartialsTime(decodePartials(record.value), now(), deps.eventTime),
    process(items, ctx) {
      const key = keyOf(ctx.topic, ctx.partition);
      return locked(key, async () => {
        const last = items[items.length - 1];
        if (last === undefined) return;
        let state = states.get(key);
        if (state === undefined) {
          const restored = await deps.progress.load('merge', deps.group, ctx.topic, ctx.partition);
          let completedUpTo = restored?.position;
          const problem =
            completedUpTo === undefined
              ? undefined
              : restoredFrontierProblem(completedUpTo, deps.windowMs, now(), deps.eventTime);
          if (problem !== undefined) {
            // Written before event times were bounded: every real window would count as completed.
            deps.logger.error(
              { topic: ctx.topic, partition: ctx.partition, position: completedUpTo },
              `restored drift progress refused and not used (merge): ${problem}`,
            );
            completedUpTo = undefined;
          }
          state = new MergeState({ idleTimeoutMs: deps.idleTimeoutMs }, now(), completedUpTo);
          states.set(key, state);
        }
        const t = now();
        for (const item of items) {
          const result = state.add(item.value, Number(item.record.offset), t);
          if (result !== 'accepted') deps.metrics?.partialsDropped.inc({ reason: result });
          if (result === 'after_completion' && item.value.type === 'partial' && item.value.events > 0) {
            deps.metrics?.eventsExcluded.inc(item.value.events);
            const completed = completedWith.get(key)?.get(item.value.windowStart);
            deps.logger.warn(
              {
                model: item.value.model,
                windowStart: item.value.windowStart,
                source: item.value.source.partition,
                sourcePartitions: item.value.source.partitions,
                events: item.value.events,
                ...(completed === undefined ? {} : { completedWith: completed.sourcePartitions }),
              },
              lateSourceMessage(item.value.source.partition, completed),
            );
          }
        }
        await completeReady(ctx.topic, ctx.partition, state);
        return { commitOffset: String(state.commitOffset(Number(last.record.offset) + 1)) };
      });
    },
    revoked(partitions) {
      for (const p of partitions) {
        states.delete(keyOf(p.topic, p.partition));
        completedWith.delete(keyOf(p.topic, p.partition));
        quarantinedBefore.delete(keyOf(p.topic, p.partition));
      }
    },
    /** Idleness is a matter of processing time: re-check pending windows even when nothing arrives. */
    async tick() {
      for (const [key, state] of [...states.entries()]) {
        const slash = key.lastIndexOf('/');
        await locked(key, () => completeReady(key.slice(0, slash), Number(key.slice(slash + 1)), state)).catch(
          (error: unknown) =>
            deps.logger.warn({ err: toDriftlineError(error).message }, 'merge tick failed; will retry'),
        );
      }
      reportHeld();
    },
  };
}
