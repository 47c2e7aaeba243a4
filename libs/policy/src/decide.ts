import { createHash } from 'node:crypto';
import type { AlertKind, DriftAlert } from '@driftline/schemas';
import { MAX_WINDOWS, type ModelPolicy, type Policy, policyFor, type SignalConfig } from './config.js';
import { type Baseline, signalsOf } from './signals.js';

/** One event-time window the policy has seen alerts for. */
export interface WindowEntry {
  readonly start: number;
  readonly end: number;
  /** Signals carried by the window's alerts (sorted, unique); empty = the window does not count. */
  readonly signals: readonly string[];
  /** Alert ids seen for this window (duplicates are recognised by these). */
  readonly alertIds: readonly string[];
}

export interface FiredWindow {
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly requestId: string;
  /**
   * The alert that fired, remembered apart from its window's capped id list: decided again after
   * a flood pushed it out (a redelivery), its new row replaced the fire row in retrain_decisions
   * (keyed by alert id). Absent in states persisted before.
   */
  readonly alertId?: string;
}

/**
 * The windows of one signal family: its own newest window end (its `late_horizon` counts back from
 * it) and at most MAX_WINDOWS windows, so one family's alerts never push another's out.
 */
export interface FamilyState {
  readonly maxWindowEnd: number;
  /** Sorted by start. */
  readonly windows: readonly WindowEntry[];
}

/**
 * Which windows' clock an alert kind runs on. `drift`: FEATURE_DRIFT and PREDICTION_DRIFT, both
 * raised by the drift-monitor for the same windows as they close. `performance`: PERFORMANCE, the
 * label-joiner's windows, decided when their labels arrive (days late). One `maxWindowEnd` and one
 * window cap for both made a performance rule never fire once the model had a recent drift window
 * (found by a review). Per kind, FEATURE_DRIFT and PREDICTION_DRIFT of the same windows would no
 * longer make one streak; per signal, neither would one FEATURE_DRIFT alert's `share_drifted` and
 * `key_feature`.
 */
export type SignalFamily = 'drift' | 'performance';

/**
 * Consecutive or overlapping windows of the model's DATA_QUALITY alerts (of any version that
 * serves production), merged (an outage of a day is one span, not 288 windows): the evidence of
 * the data-quality veto. Coverage is the same as the windows' (a window overlaps the union exactly
 * when it overlaps a span); on the drift-monitor's grid a drift window overlaps a span exactly
 * when a DATA_QUALITY alert of the same bounds is in it.
 */
export interface DataQualitySpan {
  readonly start: number;
  readonly end: number;
  /**
   * The span's newest DATA_QUALITY alert ids (at most MAX_DATA_QUALITY_IDS_PER_SPAN, and
   * MAX_DATA_QUALITY_IDS over the state, newest spans first): evidence for the hold's detail
   * only. Not a duplicate check: a replayed DATA_QUALITY alert merges into its span again and
   * changes nothing (the retrain-trigger finds its id in retrain_decisions).
   */
  readonly alertIds: readonly string[];
  /**
   * How much of `[start, end)` DATA_QUALITY windows really cover, when less than all of it: the
   * summed lengths of the spans `mergeClosest` joined (the gaps between them are not covered).
   * Absent: all of it (every span no merge made, and every span of a state persisted before).
   */
  readonly covered?: number;
}

/** How much of the span DATA_QUALITY windows cover (`DataQualitySpan.covered`). */
const coveredOf = (s: DataQualitySpan) => s.covered ?? s.end - s.start;

/**
 * A stretch of fires the data-quality veto held in one family: `data_quality` holds whose run had
 * `sustain` windows (uncut, it fired), each deciding window ending at most `cooldown` after the
 * stretch's newest. `since` is the first's deciding window end, `through` the newest's (event
 * time). Held longer than `cooldown` (`through − since`), the veto has taken at least two retrains
 * the model would have had without it: an outage that long, or DATA_QUALITY alerts that are
 * routine for the model (an expectation failing every window), which hold its retrains for good
 * (found by a review; the retrain-trigger warns and counts it).
 */
export interface DataQualityHold {
  readonly since: number;
  readonly through: number;
}

/**
 * What the policy remembers about one model: plain JSON, bounded by `late_horizon` and MAX_WINDOWS
 * per family, persisted as is. The drift family stays at the top level, where a state persisted
 * before families kept every kind's windows: such a state loads (its performance windows are moved
 * to `performance`), and a release from before reads this one (it forgets `performance`).
 */
export interface ModelState {
  /** Decisions taken (duplicates excluded): orders the persisted snapshots. */
  readonly seq: number;
  /** The drift family's newest window end. */
  readonly maxWindowEnd: number;
  /** The drift family's windows, sorted by start. */
  readonly windows: readonly WindowEntry[];
  /** The performance family. Absent in states persisted before families. */
  readonly performance?: FamilyState;
  /**
   * DATA_QUALITY spans, sorted by start, remembered while the data-quality veto is on and a run can
   * still use them. Absent when there are none, and in states persisted before the veto.
   */
  readonly dataQuality?: readonly DataQualitySpan[];
  /**
   * Per family, the fires the veto has held since the last retrain (`DataQualityHold`). Absent when
   * there are none (a fire clears it), and in states persisted before.
   */
  readonly dataQualityHold?: DataQualityHolds;
  readonly lastFire: FiredWindow | null;
}

export type DataQualityHolds = Readonly<Partial<Record<SignalFamily, DataQualityHold>>>;

const emptyFamily: FamilyState = { maxWindowEnd: 0, windows: [] };

export const emptyModelState: ModelState = {
  seq: 0,
  maxWindowEnd: 0,
  windows: [],
  performance: emptyFamily,
  lastFire: null,
};

export type HoldReason =
  | 'unknown_model'
  | 'not_serving'
  | 'duplicate'
  | 'empty_window'
  | 'too_late'
  | 'before_last_retrain'
  | 'no_signal'
  | 'sustaining'
  | 'cooldown'
  | 'data_quality';

/** What a fired decision asks for; the service turns it into a RetrainRequest. */
export interface RetrainPlan {
  /** Idempotency key: derived from the model and the deciding window only. */
  readonly requestId: string;
  readonly model: string;
  readonly modelVersion: string;
  readonly reason: string;
  readonly evidence: {
    readonly windows: readonly WindowEntry[];
    readonly sustain: number;
    readonly cooldown_ms: number;
    readonly deciding_alert: string;
  };
  readonly dataFrom: number;
  readonly dataTo: number;
  /** The deciding window's end: event time, so a replay produces the identical request. */
  readonly eventTime: number;
}

export type Decision =
  | { readonly kind: 'fire'; readonly plan: RetrainPlan; readonly signals: readonly string[]; readonly streak: number }
  | {
      readonly kind: 'hold';
      readonly reason: HoldReason;
      readonly detail: string;
      readonly signals: readonly string[];
      readonly streak: number;
    };

export interface DecideResult {
  /** The model's state after the alert (the input state when nothing changed). */
  readonly state: ModelState;
  readonly decision: Decision;
}

/** Deterministic idempotency key of a decision: model + deciding window. */
export function retrainRequestId(model: string, windowStart: number, windowEnd: number): string {
  return createHash('sha256')
    .update(JSON.stringify(['retrain', model, windowStart, windowEnd]))
    .digest('hex')
    .slice(0, 32);
}

const hold = (
  state: ModelState,
  reason: HoldReason,
  detail: string,
  signals: readonly string[] = [],
  streak = 0,
): DecideResult => ({ state, decision: { kind: 'hold', reason, detail, signals, streak } });

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Most alert ids one window remembers (the newest): a flood of distinct alerts for one window
 * grew the state without bound (5,000 alerts: a 214 KB state, written with every decision, and
 * a retrain request past Kafka's 1 MB at ~10,000). An older id replayed after it was forgotten
 * (or after its window left the horizon) decides as new, with no effect on the state or the
 * requests: its signals are already the window's, a fire's request id depends only on the
 * deciding window, and a window the last fire covered is before_last_retrain. Its decision differs
 * from the first one, though (too_late, say): the retrain-trigger records as a duplicate an id its
 * state remembered before the batch or retrain_decisions records, so it does not replace the
 * original decision's row.
 */
export const MAX_ALERT_IDS_PER_WINDOW = 32;

/**
 * Most alert ids one model state remembers in all, over its families (its windows' ids, newest
 * windows first): 32 per window over up to 512 windows still let a state reach ~340 KB (40
 * per-feature alerts per 5-minute window over a day), and the retrain-trigger's rows carried it
 * until ClickHouse refused the batch (found by a review). At the cap the oldest windows' ids are
 * forgotten, their windows and signals kept; the alert that fired last is kept apart
 * (`lastFire.alertId`). decide alone then takes a forgotten id replayed for new, with no effect on
 * the state or the requests (see MAX_ALERT_IDS_PER_WINDOW) but a decision other than the first
 * one's. The retrain-trigger does not rely on this memory alone: an id the state did not remember
 * before a batch it looks up in retrain_decisions, and one it did is a duplicate for the whole
 * batch, though the batch pushes it out (it was decided as new, its row replacing a fire; found by
 * a review). So its deduplication is exact while retrain_decisions holds the id's row (400 days).
 */
export const MAX_ALERT_IDS_PER_STATE = 256;

type Families = Readonly<Record<SignalFamily, FamilyState>>;

/**
 * Most DATA_QUALITY spans a state remembers (the newest): as many as a family's windows. A span is
 * an outage however long, so this many apart within the horizon is already a flapping upstream;
 * 512 spans with long ids are ~38 KB of state (measured in the tests).
 */
export const MAX_DATA_QUALITY_SPANS = MAX_WINDOWS;

/** Alert ids one DATA_QUALITY span keeps as evidence (its newest). */
export const MAX_DATA_QUALITY_IDS_PER_SPAN = 4;

/** DATA_QUALITY alert ids a state keeps in all (the newest spans' first): ids are up to 256 characters. */
export const MAX_DATA_QUALITY_IDS = 32;

/** DATA_QUALITY spans shown in a hold's detail (the newest; the others counted). */
const DATA_QUALITY_SPANS_IN_DETAIL = 4;

/**
 * The families' windows with at most MAX_ALERT_IDS_PER_STATE ids in all: the newest windows (by
 * start, whatever their family) keep theirs. Each family's list is sorted by start, so the lists
 * are walked from their ends together, in linear time.
 */
function capAlertIds(families: Families): Families {
  let left = MAX_ALERT_IDS_PER_STATE;
  const drift = families.drift.windows;
  const performance = families.performance.windows;
  const keptDrift: WindowEntry[] = [];
  const keptPerformance: WindowEntry[] = [];
  let d = drift.length - 1;
  let p = performance.length - 1;
  while (d >= 0 || p >= 0) {
    const fromDrift = p < 0 || (d >= 0 && drift[d]!.start >= performance[p]!.start);
    const w = fromDrift ? drift[d--]! : performance[p--]!;
    const keep = Math.min(left, w.alertIds.length);
    left -= keep;
    // Each window's list is oldest first: its newest ids are the ones kept.
    const kept = keep === w.alertIds.length ? w : { ...w, alertIds: w.alertIds.slice(w.alertIds.length - keep) };
    (fromDrift ? keptDrift : keptPerformance).push(kept);
  }
  return {
    drift: { ...families.drift, windows: keptDrift.reverse() },
    performance: { ...families.performance, windows: keptPerformance.reverse() },
  };
}

/**
 * Whether `state` still remembers deciding `alertId` (its windows' newest ids in any family, or the
 * alert that fired last). A forgotten id may still have been decided: the caller that needs
 * certainty keeps a record of every decision (the retrain-trigger: retrain_decisions).
 */
export function remembersAlert(state: ModelState, alertId: string): boolean {
  const has = (w: WindowEntry) => w.alertIds.includes(alertId);
  return (
    state.lastFire?.alertId === alertId || state.windows.some(has) || (state.performance?.windows.some(has) ?? false)
  );
}

const isTime = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v);

/** Why a stored `dataQuality` cannot be used (`withValidDataQuality`), or undefined when it can. */
function dataQualityProblem(spans: unknown): string | undefined {
  if (!Array.isArray(spans)) return 'dataQuality is not an array';
  if (spans.length > MAX_DATA_QUALITY_SPANS)
    return `dataQuality has ${spans.length} spans (at most ${MAX_DATA_QUALITY_SPANS})`;
  let end = Number.NEGATIVE_INFINITY;
  for (const [i, s] of spans.entries()) {
    const span = (typeof s === 'object' && s !== null ? s : {}) as Record<string, unknown>;
    if (!isTime(span.start) || !isTime(span.end) || !(span.start < span.end)) {
      return `dataQuality[${i}] is not a span of integer start < end`;
    }
    if (!(span.start > end)) return `dataQuality[${i}] starts before the span before it ends`;
    if (!Array.isArray(span.alertIds) || !span.alertIds.every((id) => typeof id === 'string')) {
      return `dataQuality[${i}].alertIds is not an array of strings`;
    }
    if (
      span.covered !== undefined &&
      !(isTime(span.covered) && span.covered > 0 && span.covered <= span.end - span.start)
    ) {
      return `dataQuality[${i}].covered is not an integer in (0, end - start]`;
    }
    end = span.end;
  }
  return undefined;
}

/** Why a stored `dataQualityHold` cannot be used (`withValidDataQuality`), or undefined when it can. */
function dataQualityHoldProblem(holds: unknown): string | undefined {
  if (typeof holds !== 'object' || holds === null || Array.isArray(holds)) return 'dataQualityHold is not an object';
  for (const [family, h] of Object.entries(holds)) {
    const stretch = (typeof h === 'object' && h !== null ? h : {}) as Record<string, unknown>;
    if (family !== 'drift' && family !== 'performance') return `dataQualityHold.${family} is not a signal family`;
    if (!isTime(stretch.since) || !isTime(stretch.through) || stretch.since > stretch.through) {
      return `dataQualityHold.${family} is not integer since <= through`;
    }
  }
  return undefined;
}

const isStringArray = (v: unknown): boolean => Array.isArray(v) && v.every((x) => typeof x === 'string');

/** Why stored windows cannot be used (`modelStateProblem`), or undefined when they can. */
function windowsProblem(field: string, windows: unknown): string | undefined {
  if (!Array.isArray(windows)) return `${field} is not an array`;
  for (const [i, w] of windows.entries()) {
    const entry = (typeof w === 'object' && w !== null ? w : {}) as Record<string, unknown>;
    if (!isTime(entry.start) || !isTime(entry.end)) return `${field}[${i}] is not a window of integer start and end`;
    if (!isStringArray(entry.signals) || !isStringArray(entry.alertIds)) {
      return `${field}[${i}].signals or .alertIds is not an array of strings`;
    }
  }
  return undefined;
}

/**
 * Why a stored state (parsed JSON, from storage) is no ModelState `decide` can use, or undefined
 * when it is: an object with an integer `seq` ≥ 0, an integer `maxWindowEnd`, `windows` of integer
 * `start` and `end` with string `signals` and `alertIds`, `performance` absent or such a family,
 * and `lastFire` null or integer `windowStart` and `windowEnd` with a string `requestId` (and
 * `alertId` when present). Every state persisted since the first release has this shape; the
 * data-quality fields are `withValidDataQuality`'s. Such a state (a row edited by hand, a buggy
 * writer) made every decision of the model throw, retried for ever (found by a review).
 */
export function modelStateProblem(stored: unknown): string | undefined {
  if (typeof stored !== 'object' || stored === null || Array.isArray(stored)) return 'the state is not an object';
  const s = stored as Record<string, unknown>;
  if (!isTime(s.seq) || s.seq < 0) return 'seq is not an integer >= 0';
  if (!isTime(s.maxWindowEnd)) return 'maxWindowEnd is not an integer';
  const windows = windowsProblem('windows', s.windows);
  if (windows !== undefined) return windows;
  if (s.performance !== undefined) {
    const family = (typeof s.performance === 'object' && s.performance !== null ? s.performance : {}) as Record<
      string,
      unknown
    >;
    if (!isTime(family.maxWindowEnd)) return 'performance.maxWindowEnd is not an integer';
    const performance = windowsProblem('performance.windows', family.windows);
    if (performance !== undefined) return performance;
  }
  if (s.lastFire !== null) {
    const fire = (typeof s.lastFire === 'object' ? s.lastFire : {}) as Record<string, unknown>;
    if (
      !isTime(fire.windowStart) ||
      !isTime(fire.windowEnd) ||
      typeof fire.requestId !== 'string' ||
      (fire.alertId !== undefined && typeof fire.alertId !== 'string')
    ) {
      return 'lastFire is neither null nor a fired window (integer windowStart, windowEnd; string requestId)';
    }
  }
  return undefined;
}

/**
 * A stored state with its data-quality fields checked, for a caller that loads states (the
 * retrain-trigger, from retrain_decisions): a `dataQuality` that is not at most
 * MAX_DATA_QUALITY_SPANS sorted, disjoint spans of integer `start` < `end` with string ids (and,
 * when present, an integer `covered` in (0, end − start]), or a
 * `dataQualityHold` that is not integer `since` ≤ `through` per family, is dropped and named in
 * `problems` (a `null` one is dropped quietly). Such a field (a row edited by hand, a buggy
 * writer) made every decision of the model throw (found by a review); dropped, the veto fails open
 * for that model: as after an upgrade, it starts again with the next DATA_QUALITY alert.
 */
export function withValidDataQuality(state: ModelState): { state: ModelState; problems: string[] } {
  const stored = state as ModelState & { dataQuality?: unknown; dataQualityHold?: unknown };
  const problems: string[] = [];
  let valid: ModelState = state;
  for (const [field, problemOf] of [
    ['dataQuality', dataQualityProblem],
    ['dataQualityHold', dataQualityHoldProblem],
  ] as const) {
    if (!(field in stored) || stored[field] === undefined) continue;
    const problem = stored[field] === null ? undefined : problemOf(stored[field]);
    if (stored[field] !== null && problem === undefined) continue;
    if (problem !== undefined) problems.push(problem);
    const { [field]: _, ...rest } = valid;
    valid = rest;
  }
  return { state: valid, problems };
}

/**
 * The family of `kind` when the policy configures a signal alerts of that kind can carry (the
 * kinds `signalsOf` reads); undefined otherwise: such an alert is held and never touches the state.
 */
function configuredFamily(config: SignalConfig, kind: AlertKind): SignalFamily | undefined {
  switch (kind) {
    case 'FEATURE_DRIFT':
      return config.shareDrifted !== undefined || config.keyFeatures.length > 0 ? 'drift' : undefined;
    case 'PREDICTION_DRIFT':
      return config.predictionDrift ? 'drift' : undefined;
    case 'PERFORMANCE':
      return config.performance.length > 0 ? 'performance' : undefined;
    default:
      return undefined;
  }
}

const isPerformanceSignal = (signal: string) => signal.startsWith('performance:');

/**
 * The state's families. A state persisted before families kept every kind's windows at the top
 * level under one `maxWindowEnd`: its windows with performance signals move to the performance
 * family (newest end: theirs), the rest stay with the old `maxWindowEnd` (the drift-monitor's
 * windows were the newest). A window with both (the same bounds) is split, its ids staying with
 * the drift part: `remembersAlert` looks in every family.
 */
function familiesOf(state: ModelState): Families {
  const drift = { maxWindowEnd: state.maxWindowEnd, windows: state.windows };
  if (state.performance !== undefined) return { drift, performance: state.performance };
  const driftWindows: WindowEntry[] = [];
  const performanceWindows: WindowEntry[] = [];
  for (const w of state.windows) {
    const performanceSignals = w.signals.filter(isPerformanceSignal);
    if (performanceSignals.length === 0) {
      driftWindows.push(w);
    } else if (performanceSignals.length === w.signals.length) {
      performanceWindows.push(w);
    } else {
      driftWindows.push({ ...w, signals: w.signals.filter((s) => !isPerformanceSignal(s)) });
      performanceWindows.push({ ...w, signals: performanceSignals, alertIds: [] });
    }
  }
  return {
    drift: { ...drift, windows: driftWindows },
    performance: {
      maxWindowEnd: performanceWindows.reduce((max, w) => Math.max(max, w.end), 0),
      windows: performanceWindows,
    },
  };
}

function stateOf(
  seq: number,
  families: Families,
  lastFire: FiredWindow | null,
  dataQuality: readonly DataQualitySpan[],
  dataQualityHold?: DataQualityHolds,
): ModelState {
  return {
    seq,
    maxWindowEnd: families.drift.maxWindowEnd,
    windows: families.drift.windows,
    performance: families.performance,
    // Left out when empty: a model without DATA_QUALITY alerts persists what it did before.
    ...(dataQuality.length === 0 ? {} : { dataQuality }),
    ...(dataQualityHold === undefined || Object.keys(dataQualityHold).length === 0 ? {} : { dataQualityHold }),
    lastFire,
  };
}

/** Which DATA_QUALITY spans a run can still use (`usableSpan`). */
interface DataQualityHorizon {
  /** A run's windows end within its family's `late_horizon`: the earliest of the families that have seen an alert. */
  readonly notBefore: number;
  /** A run's windows start at or after the last retrain's deciding window's end: a span must end after it to overlap one. */
  readonly after: number;
}

function dataQualityHorizon(
  families: Families,
  lateHorizonMs: number,
  lastFire: FiredWindow | null,
): DataQualityHorizon {
  const seen = [families.drift, families.performance].filter((f) => f.maxWindowEnd > 0);
  return {
    notBefore:
      seen.length === 0 ? Number.NEGATIVE_INFINITY : Math.min(...seen.map((f) => f.maxWindowEnd - lateHorizonMs)),
    after: lastFire?.windowEnd ?? Number.NEGATIVE_INFINITY,
  };
}

const usableSpan = (horizon: DataQualityHorizon, end: number) => end >= horizon.notBefore && end > horizon.after;

/** A span, with `covered` only when it is less than all of it. */
function span(start: number, end: number, alertIds: readonly string[], covered: number): DataQualitySpan {
  return covered < end - start ? { start, end, alertIds, covered } : { start, end, alertIds };
}

/**
 * `spans` with the alert's window merged in (with every span it overlaps or touches), sorted by
 * start. The spans are sorted and disjoint: the ones it touches are found by binary search. The
 * window adds to `covered` only its part outside them: within a merged span it may fall in a gap,
 * but it may as well be a replay or another version's alert of a window already counted (which
 * changes nothing, as within an exact span).
 */
function withDataQuality(spans: readonly DataQualitySpan[], alert: DriftAlert): DataQualitySpan[] {
  const from = leading(spans, (s) => s.end < alert.window_start);
  const to = leading(spans, (s) => s.start <= alert.window_end);
  const touched = spans.slice(from, Math.max(from, to));
  const start = Math.min(alert.window_start, touched[0]?.start ?? alert.window_start);
  const end = Math.max(alert.window_end, touched.at(-1)?.end ?? alert.window_end);
  const ids = touched.flatMap((s) => s.alertIds).filter((id) => id !== alert.alert_id);
  const alertIds = [...new Set([...ids, alert.alert_id])].slice(-MAX_DATA_QUALITY_IDS_PER_SPAN);
  let covered = alert.window_end - alert.window_start;
  for (const s of touched) {
    covered += coveredOf(s) - Math.max(0, Math.min(s.end, alert.window_end) - Math.max(s.start, alert.window_start));
  }
  return [...spans.slice(0, from), span(start, end, alertIds, covered), ...spans.slice(Math.max(from, to))];
}

/**
 * How much merging the neighbouring spans `older` and `newer` misstates coverage: the merged span
 * spreads their `covered` evenly over it (the cut's proportion), so each part of it is taken for
 * covered at its density, the gap between them included. The error is the summed difference, over
 * the merged span, between that and what the two spans said (each at its own density, the gap at
 * none): the L1 distance of the two coverage profiles, in ms. No grid of windows sums to more, so
 * it bounds what the merge can move across the cut's half-coverage line. Two spans of one density
 * cost twice the gap's covered share; a dense outage joined to sparse spans costs about its own
 * length times the difference.
 */
function mergeError(older: DataQualitySpan, newer: DataQualitySpan): number {
  const olderCovered = coveredOf(older);
  const newerCovered = coveredOf(newer);
  const end = Math.max(older.end, newer.end);
  const density = (olderCovered + newerCovered) / (end - older.start);
  return (
    Math.abs(olderCovered - density * (older.end - older.start)) +
    density * Math.max(0, newer.start - older.end) +
    Math.abs(newerCovered - density * (newer.end - newer.start))
  );
}

/**
 * Merges the two neighbouring spans whose merge misstates coverage least (`mergeError`); on a tie,
 * the pair with the smallest gap, then the one whose merged span is shortest, then the oldest. The
 * merged span records how much of it the two covered (`covered`), and the cut counts its overlap
 * with a window in that proportion: a gap is not taken for covered. By the smallest gap alone, a
 * dense outage took in the sparse routine spans around it once those were all that was close,
 * until the merged span was under half covered: a 35-minute outage in an hour then covered less
 * than half of it, and the hour's late PERFORMANCE run fired (1 of 8 random worlds; found by a
 * review). Spans of about one density merge first instead, so an outage stays dense (the
 * simulation in data-quality-spans.test.ts). Dropping the oldest span instead let a long flapping
 * outage's first hours out of the spans while their labels were still days away, and their late
 * PERFORMANCE alerts fired on broken windows; merging the oldest pair on a tie and counting the
 * gap as covered made routine DATA_QUALITY one block taken for covered whole (DATA_QUALITY in 1 of
 * 5 minutes, labels 48 h late: 70 of 94 PERFORMANCE decisions held; both found by reviews).
 *
 * The newest `exact` spans are merged only when no other pair is left: a drift run's last
 * `sustain` windows meet no other span (DATA_QUALITY alerts come before their window's drift
 * alerts), so whether it holds stays exact. Merged, a broken minute in a 7-minute span of 3
 * covered minutes counted 3/7 covered, under half, and a run over it fired (DATA_QUALITY in 1 of 3
 * minutes with the spans full).
 *
 * Linear: one pass over the pairs, each costed in constant time.
 */
function mergeClosest(spans: DataQualitySpan[], exact: number): void {
  const last = spans.length - 1 - exact >= 1 ? spans.length - 1 - exact : spans.length - 1;
  let at = 0;
  let best = mergeError(spans[0]!, spans[1]!);
  for (let i = 1; i + 1 <= last; i++) {
    const older = spans[i]!;
    const newer = spans[i + 1]!;
    const error = mergeError(older, newer);
    if (error > best) continue;
    if (error === best) {
      const gap = newer.start - older.end;
      const bestGap = spans[at + 1]!.start - spans[at]!.end;
      if (gap > bestGap) continue;
      if (gap === bestGap && newer.end - older.start >= spans[at + 1]!.end - spans[at]!.start) continue;
    }
    at = i;
    best = error;
  }
  const older = spans[at]!;
  const newer = spans[at + 1]!;
  spans.splice(
    at,
    2,
    span(
      older.start,
      Math.max(older.end, newer.end),
      [...older.alertIds, ...newer.alertIds].slice(-MAX_DATA_QUALITY_IDS_PER_SPAN),
      coveredOf(older) + coveredOf(newer),
    ),
  );
}

/**
 * The spans a run can still use (`usableSpan`), at most MAX_DATA_QUALITY_SPANS (the closest ones
 * merged, the newest `exact` last: `mergeClosest`), the newest MAX_DATA_QUALITY_IDS ids.
 */
function keepDataQuality(
  spans: readonly DataQualitySpan[],
  horizon: DataQualityHorizon,
  exact: number,
): DataQualitySpan[] {
  const kept = spans.filter((s) => usableSpan(horizon, s.end));
  // One alert adds one span at most: one merge per decision in the steady state.
  while (kept.length > MAX_DATA_QUALITY_SPANS) mergeClosest(kept, exact);
  let left = MAX_DATA_QUALITY_IDS;
  const out: DataQualitySpan[] = [];
  for (const s of kept.reverse()) {
    const keep = Math.min(left, s.alertIds.length);
    left -= keep;
    out.push(keep === s.alertIds.length ? s : { ...s, alertIds: s.alertIds.slice(s.alertIds.length - keep) });
  }
  return out.reverse();
}

/** What the data-quality veto makes of a run: the windows it still counts (those after the last covered one) and why. */
interface DataQualityCut {
  /** The run's windows after its last window the DATA_QUALITY spans cover. */
  readonly counted: readonly WindowEntry[];
  /** The spans over the run up to that window, sorted by start. */
  readonly spans: readonly DataQualitySpan[];
}

/**
 * How many of the spans, from the first, satisfy `holds`: a binary search, for a predicate that
 * holds for a prefix of the spans (sorted by start and disjoint, so their ends are sorted too).
 */
function leading(spans: readonly DataQualitySpan[], holds: (s: DataQualitySpan) => boolean): number {
  let lo = 0;
  let hi = spans.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (holds(spans[mid]!)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The run cut after its last window the DATA_QUALITY spans cover, or undefined when they cover
 * none. A window is covered when the spans cover **at least half** of it: on the drift-monitor's
 * grid a window with a DATA_QUALITY alert of its own bounds is covered whole, and one without is
 * not touched; a label-joiner's hour is covered by an outage over half of it, not by one broken
 * 5-minute window (any overlap vetoed the hour: DATA_QUALITY alerts in 1 of 12 drift windows held
 * every performance retrain; found by a review). A merged span (at MAX_DATA_QUALITY_SPANS) covers
 * its overlap with a window in the proportion it is covered (`covered`). Otherwise exact, with no
 * presumption: the drift-monitor sends
 * a window's DATA_QUALITY alert before its drift alerts, in one send keyed by model (one alerts.v1
 * partition, in that order; windows oldest first), so when a drift alert is decided its own
 * window's DATA_QUALITY alert already has been. PERFORMANCE alerts come days after their windows'
 * DATA_QUALITY alerts.
 *
 * Linear: the run (consecutive windows) is walked from its end against the spans (sorted and
 * disjoint, so their ends are sorted too), stopping at the first covered window. Every window
 * against every span took seconds a batch on the models the veto holds (their runs never reset:
 * 512 windows × 512 spans per alert), long enough to miss the consumer's heartbeats (found by a
 * review).
 */
function dataQualityCut(run: readonly WindowEntry[], spans: readonly DataQualitySpan[]): DataQualityCut | undefined {
  if (spans.length === 0 || run.length === 0) return undefined;
  const runEnd = run[run.length - 1]!.end;
  let next = leading(spans, (s) => s.start < runEnd) - 1;
  for (let i = run.length - 1; i >= 0 && next >= 0; i--) {
    const w = run[i]!;
    while (next >= 0 && spans[next]!.start >= w.end) next--;
    let covered = 0;
    for (let k = next; k >= 0 && spans[k]!.end > w.start; k--) {
      const s = spans[k]!;
      // A merged span covers each part of it in its proportion (`covered`); any other, whole.
      const overlap = Math.min(w.end, s.end) - Math.max(w.start, s.start);
      covered += s.covered === undefined ? overlap : (overlap * s.covered) / (s.end - s.start);
    }
    if (2 * covered >= w.end - w.start && covered > 0) {
      const runStart = run[0]!.start;
      return {
        counted: run.slice(i + 1),
        spans: spans.slice(
          leading(spans, (s) => s.end <= runStart),
          next + 1,
        ),
      };
    }
  }
  return undefined;
}

function spansText(spans: readonly DataQualitySpan[]): string {
  const shown = spans.slice(-DATA_QUALITY_SPANS_IN_DETAIL).map((s) => {
    const ids = s.alertIds.length === 0 ? '' : ` (${s.alertIds.join(', ')})`;
    const part = s.covered === undefined ? '' : `, ${Math.round((100 * s.covered) / (s.end - s.start))}% covered`;
    return `${iso(s.start)} to ${iso(s.end)}${part}${ids}`;
  });
  const more = spans.length - shown.length;
  return `${more > 0 ? `${more} older, then ` : ''}${shown.join('; ')}`;
}

/**
 * A DATA_QUALITY alert while the veto is on: held `no_signal` like every kind without a signal,
 * but its window joins the spans the veto reads. One alert of a window the spans can no longer
 * matter to (ending before the oldest window a run can use, or not after the last retrain's
 * deciding window) leaves the state itself. One of the last retrain's deciding window came after
 * the drift alert that fired (a drift-monitor from before the DATA_QUALITY-first order): that
 * fire is not undone, and the detail names its request.
 */
function rememberDataQuality(policy: ModelPolicy, state: ModelState, alert: DriftAlert): DecideResult {
  const families = familiesOf(state);
  const last = state.lastFire;
  const horizon = dataQualityHorizon(families, policy.lateHorizonMs, last);
  const late =
    last !== null && alert.window_start < last.windowEnd && last.windowStart < alert.window_end
      ? `DATA_QUALITY alert of the last retrain's deciding window ${iso(last.windowStart)} to ${iso(last.windowEnd)}, which fired before it came (a drift-monitor that sent a window's drift alerts first): request ${last.requestId} stands, and so does its cooldown; `
      : 'DATA_QUALITY alerts carry no signal; ';
  if (!usableSpan(horizon, alert.window_end)) {
    const bound =
      alert.window_end <= horizon.after
        ? `not after the last retrain's deciding window (${iso(horizon.after)})`
        : `before any window a run can still use (${iso(horizon.notBefore)})`;
    return hold(
      state,
      'no_signal',
      `${late}its window ends ${iso(alert.window_end)}, ${bound}: not remembered (state unchanged)`,
    );
  }
  const spans = keepDataQuality(withDataQuality(state.dataQuality ?? [], alert), horizon, policy.sustain);
  return hold(
    stateOf(state.seq + 1, families, last, spans, state.dataQualityHold),
    'no_signal',
    `${late}remembered for the data-quality veto: a run counts only its windows after this one`,
  );
}

function mergeWindow(windows: readonly WindowEntry[], alert: DriftAlert, signals: readonly string[]): WindowEntry[] {
  const out = windows.filter((w) => !(w.start === alert.window_start && w.end === alert.window_end));
  const prior = windows.find((w) => w.start === alert.window_start && w.end === alert.window_end);
  out.push({
    start: alert.window_start,
    end: alert.window_end,
    signals: [...new Set([...(prior?.signals ?? []), ...signals])].sort(),
    alertIds: [...(prior?.alertIds ?? []), alert.alert_id].slice(-MAX_ALERT_IDS_PER_WINDOW),
  });
  return out.sort((a, b) => a.start - b.start || a.end - b.end);
}

/** The run of consecutive (end = next start) counting windows through `at`, oldest first. */
function runThrough(windows: readonly WindowEntry[], at: WindowEntry, notBefore: number): WindowEntry[] {
  const counting = new Map<number, WindowEntry>();
  const byEnd = new Map<number, WindowEntry>();
  for (const w of windows) {
    if (w.signals.length === 0 || w.start < notBefore || w.end <= w.start) continue;
    counting.set(w.start, w);
    byEnd.set(w.end, w);
  }
  // Each step must move strictly outwards: a zero-length window (start = end) is its own
  // neighbour, and following it looped for ever (the retrain-trigger hung on one such alert);
  // such a window never counts.
  const run = [at];
  for (let w = byEnd.get(at.start); w !== undefined && w.start < run[0]!.start; w = byEnd.get(w.start)) run.unshift(w);
  for (let w = counting.get(at.end); w !== undefined && w.end > run.at(-1)!.end; w = counting.get(w.end)) run.push(w);
  return run;
}

/**
 * `holds` with a fire the veto held in `family`, its deciding window ending at `at`: the family's
 * stretch goes on when `at` is within `cooldown` of it, else a new one starts there (a held fire
 * far behind the stretch, a late alert's, changes nothing).
 */
function withHeldFire(
  holds: DataQualityHolds | undefined,
  family: SignalFamily,
  at: number,
  cooldownMs: number,
): DataQualityHolds | undefined {
  const prior = holds?.[family];
  if (prior !== undefined && at < prior.since - cooldownMs) return holds;
  const stretch: DataQualityHold =
    prior === undefined || at > prior.through + cooldownMs
      ? { since: at, through: at }
      : { since: Math.min(prior.since, at), through: Math.max(prior.through, at) };
  return { ...holds, [family]: stretch };
}

/**
 * The longest stretch of fires the data-quality veto has held in the model's families
 * (`DataQualityHold`; its length `through − since`, event time), or undefined when it holds none.
 * Longer than the model's `cooldown`: without the veto the model would have retrained at least
 * twice meanwhile.
 */
export function dataQualityHeld(state: ModelState): DataQualityHold | undefined {
  let longest: DataQualityHold | undefined;
  for (const stretch of Object.values(state.dataQualityHold ?? {})) {
    if (
      stretch !== undefined &&
      (longest === undefined || stretch.through - stretch.since > longest.through - longest.since)
    ) {
      longest = stretch;
    }
  }
  return longest;
}

/**
 * The retrain policy for one alert of one model. Pure: the same state and alert always give the
 * same result, whatever the wall clock; times are the alerts' event-time windows.
 *
 * - duplicate alert ids are held (`duplicate`) without changing the state;
 * - an alert whose window is empty or reversed (start ≥ end) is held (`empty_window`), state unchanged;
 * - an alert of a kind the policy configures no signal for (DATA_QUALITY, ESTIMATED_PERFORMANCE,
 *   PERFORMANCE without a performance rule, …) is held (`no_signal`), state unchanged: it neither
 *   moves a family's newest window nor takes a window slot (a DATA_QUALITY alert of the current
 *   window put every performance window, days late, out of the horizon; found by a review). It
 *   breaks no streak either way: a window without a signal never counted. A replay of its id is
 *   not a `duplicate` here (nothing remembers it) but the same `no_signal` again. The exception:
 *   with the data-quality veto on (`data_quality_veto`, the default) a DATA_QUALITY alert is
 *   still `no_signal`, but its window joins the model's DATA_QUALITY spans (not a family's
 *   windows or newest window: bounded by the horizon a run can use, MAX_DATA_QUALITY_SPANS and
 *   MAX_DATA_QUALITY_IDS);
 * - each signal family (`SignalFamily`: drift, performance) has its own newest window and its own
 *   MAX_WINDOWS windows: alerts for windows that ended more than `late_horizon` before the
 *   family's newest are held (`too_late`); one ending exactly `late_horizon` before still counts,
 *   so a horizon of (sustain − 1) windows holds a run of `sustain`;
 * - alerts for windows before the last retrain's deciding window are held (`before_last_retrain`):
 *   that retrain already covers them, whichever family decided it;
 * - a window counts when its alerts carry at least one configured signal; windows before the last
 *   retrain's deciding window never count again (a new streak starts after it);
 * - with the veto on, a run counts only its windows after the last one the DATA_QUALITY spans cover
 *   (at least half of it): exact, as the drift-monitor sends a window's DATA_QUALITY alert before
 *   its drift alerts (`dataQualityCut`);
 * - while the run's last window ends less than `cooldown` after the last fired window's end, a
 *   signalled alert holds (`cooldown`); exactly `cooldown` later is allowed;
 * - a run the veto cut to fewer than `sustain` windows holds (`data_quality`, the spans and their
 *   ids in the detail) and starts no cooldown; when the run had `sustain` windows before the cut
 *   (a fire held), the state's `dataQualityHold` records it (`dataQualityHeld`), until a fire;
 * - otherwise `sustain` consecutive counting windows of one family (each window's end = the next
 *   one's start; order of arrival does not matter) fire, deciding on the run's last window; fewer
 *   hold (`sustaining`).
 */
export function decideForModel(
  policy: ModelPolicy,
  state: ModelState,
  alert: DriftAlert,
  baseline?: Baseline,
): DecideResult {
  if (remembersAlert(state, alert.alert_id)) {
    return hold(state, 'duplicate', `alert ${alert.alert_id} already decided`);
  }
  if (!(alert.window_start < alert.window_end)) {
    // No evidence, and its own neighbour in a streak (runThrough): state unchanged.
    return hold(
      state,
      'empty_window',
      `window ${iso(alert.window_start)} to ${iso(alert.window_end)} is empty or reversed`,
    );
  }
  const family = configuredFamily(policy.signals, alert.kind);
  if (family === undefined) {
    if (alert.kind === 'DATA_QUALITY' && policy.dataQualityVeto) return rememberDataQuality(policy, state, alert);
    return hold(state, 'no_signal', `${alert.kind} alerts carry no configured signal (state unchanged)`);
  }
  const families = familiesOf(state);
  const own = families[family];
  // Strictly before: a window ending exactly late_horizon behind the newest is within it (with `<=`
  // a horizon of whole windows never held `sustain` of them, and late_horizon 0 refused a second
  // alert of the newest window itself; found by a review).
  if (alert.window_end < own.maxWindowEnd - policy.lateHorizonMs) {
    return hold(
      state,
      'too_late',
      `window ends ${iso(alert.window_end)}, more than late_horizon before the newest ${family} window's end ${iso(own.maxWindowEnd)}`,
    );
  }
  const last = state.lastFire;
  const signals = signalsOf(policy.signals, alert, baseline);
  const maxWindowEnd = Math.max(own.maxWindowEnd, alert.window_end);
  const horizon = maxWindowEnd - policy.lateHorizonMs;
  const isOwn = (w: WindowEntry) => w.start === alert.window_start && w.end === alert.window_end;
  // The same boundary as too_late above, so the alert's own window always stays.
  const windows = mergeWindow(own.windows, alert, signals).filter((w) => w.end >= horizon);
  const capped = capAlertIds({
    ...families,
    [family]: { maxWindowEnd, windows: windows.slice(Math.max(0, windows.length - MAX_WINDOWS)) },
  });
  // The veto off: spans are neither read nor kept, nor the fires it held.
  const spans = policy.dataQualityVeto
    ? keepDataQuality(state.dataQuality ?? [], dataQualityHorizon(capped, policy.lateHorizonMs, last), policy.sustain)
    : [];
  const held = policy.dataQualityVeto ? state.dataQualityHold : undefined;
  const next = stateOf(state.seq + 1, capped, last, spans, held);
  if (last !== null && alert.window_start < last.windowEnd) {
    return hold(
      next,
      'before_last_retrain',
      `window starts before the last retrain's deciding window ended (${iso(last.windowEnd)})`,
      signals,
    );
  }
  if (signals.length === 0)
    return hold(next, 'no_signal', `${alert.kind} ${alert.method}=${alert.statistic} carries no configured signal`);
  const entry = capped[family].windows.find(isOwn);
  if (entry === undefined) {
    // Pruned: more than MAX_WINDOWS newer windows of its family are remembered. It used to crash
    // decide (a TypeError, so the alert was dead-lettered and no decision recorded).
    return hold(
      next,
      'too_late',
      `window ends ${iso(alert.window_end)}, behind the ${MAX_WINDOWS} newest ${family} windows`,
      signals,
    );
  }
  const signalled = runThrough(capped[family].windows, entry, last?.windowEnd ?? Number.NEGATIVE_INFINITY);
  const deciding = signalled[signalled.length - 1]!;
  const cut = dataQualityCut(signalled, spans);
  // What counts: the windows after the last one with a DATA_QUALITY alert. Its drift says nothing
  // about the model (a feature stopped arriving drifts the others), and a fire on it trained on
  // the broken windows (the newest of the requested data) and started the cooldown that held the
  // real retrain once the upstream was fixed (found by a review).
  const run = cut?.counted ?? signalled;
  // Cooldown first: while it lasts, operators want to read "cooldown", whatever the streak.
  if (last !== null && deciding.end - last.windowEnd < policy.cooldownMs) {
    return hold(
      next,
      'cooldown',
      `cooling down until ${iso(last.windowEnd + policy.cooldownMs)} (last retrain at window ending ${iso(last.windowEnd)}); streak ${run.length}/${policy.sustain}`,
      signals,
      run.length,
    );
  }
  if (cut !== undefined && run.length < policy.sustain) {
    // A veto: no lastFire, so no cooldown starts; the evidence (spans, ids) goes in the detail. A
    // run that had `sustain` windows before the cut was a fire: the hold's stretch takes it.
    const vetoed =
      signalled.length >= policy.sustain ? withHeldFire(held, family, deciding.end, policy.cooldownMs) : held;
    return hold(
      vetoed === held ? next : stateOf(next.seq, capped, last, spans, vetoed),
      'data_quality',
      `DATA_QUALITY alerts cover windows of the run: ${spansText(cut.spans)}; the run counts only the windows after them: ${run.length}/${policy.sustain}`,
      signals,
      run.length,
    );
  }
  if (run.length < policy.sustain) {
    return hold(next, 'sustaining', `${run.length}/${policy.sustain} consecutive windows`, signals, run.length);
  }
  const requestId = retrainRequestId(alert.model, deciding.start, deciding.end);
  const all = [...new Set(run.flatMap((w) => w.signals))].sort();
  const plan: RetrainPlan = {
    requestId,
    model: alert.model,
    modelVersion: alert.model_version,
    reason: `${run.length} consecutive windows with ${all.join(', ')} from ${iso(run[0]!.start)} to ${iso(deciding.end)}`,
    evidence: { windows: run, sustain: policy.sustain, cooldown_ms: policy.cooldownMs, deciding_alert: alert.alert_id },
    dataFrom: deciding.end - policy.trainingWindowMs,
    dataTo: deciding.end,
    eventTime: deciding.end,
  };
  const lastFire: FiredWindow = {
    windowStart: deciding.start,
    windowEnd: deciding.end,
    requestId,
    alertId: alert.alert_id,
  };
  return {
    // The spans up to this retrain's deciding window's end can no longer cut a run: forgotten. So
    // are the fires the veto held (no hold argument): the model retrains.
    state: stateOf(
      next.seq,
      capped,
      lastFire,
      keepDataQuality(spans, dataQualityHorizon(capped, policy.lateHorizonMs, lastFire), policy.sustain),
    ),
    decision: { kind: 'fire', plan, signals, streak: run.length },
  };
}

/** `decideForModel` with the model's policy looked up (`unknown_model` when no policy applies). */
export function decide(
  policy: Policy,
  state: ModelState | undefined,
  alert: DriftAlert,
  baseline?: Baseline,
  serving = true,
): DecideResult {
  const current = state ?? emptyModelState;
  const modelPolicy = policyFor(policy, alert.model);
  if (modelPolicy === undefined) return hold(current, 'unknown_model', `no policy for model ${alert.model}`);
  // A shadow's or canary's drift says nothing about the model that serves: only the production
  // version's windows can ask to retrain it (state unchanged, so they never join a streak).
  if (!serving) {
    return hold(current, 'not_serving', `version ${alert.model_version} does not serve production traffic`);
  }
  return decideForModel(modelPolicy, current, alert, baseline);
}
