import { RecentIds, setOwn } from '@driftline/core';
import type { QualityPartial } from '@driftline/quality';
import type { FeatureValue } from '@driftline/schemas';
import {
  type CategoricalSummary,
  categoricalBins,
  createSummary,
  EXACT_SUM_LIMBS,
  type NumericSummary,
  type Summary,
  type SummaryJson,
} from '@driftline/stats';
import {
  type BooleanSpelling,
  booleanSpellingOf,
  CANONICAL_BOOLEANS,
  categoricalValue,
  numericValue,
  PREDICTED_CLASS_FEATURE,
  PREDICTION_FEATURE,
  type ReferenceSet,
} from './reference.js';
import { nextOpenWindowStart, type WindowSpec, windowStartOf } from './window.js';

/** How far ahead of wall time an event may move a partition's watermark (producers' clock skew). */
export const WATERMARK_MAX_AHEAD_MS = 60_000;

/** What stage 1 needs of a prediction event. */
export interface WindowedEvent {
  /** The producer's id of the prediction: a re-send carries the same one (see `PartitionWindows`' `recentIds`). */
  readonly prediction_id?: string;
  readonly model: string;
  readonly model_version: string;
  /** The prediction's entity: with its id and output, what a re-send repeats (absent: ''). */
  readonly entity_id?: string;
  readonly event_time: number;
  readonly features: Readonly<Record<string, FeatureValue>>;
  readonly prediction: number;
  readonly predicted_class?: string | null;
}

/**
 * Finds the reference to measure (model, version) against in the window starting at `windowStart`:
 * the version's own, or one BORROWED from another version of the model (a set whose `version` is
 * another one: the drift monitor's fallback to the promoted version), which
 * {@link MAX_BORROWED_VERSIONS_PER_MODEL} bounds.
 */
export type ReferenceResolver = (model: string, version: string, windowStart: number) => ReferenceSet | undefined;

/** One (model, version) of one closed window of one partition: what stage 1 emits. */
export interface ClosedPartial {
  readonly model: string;
  readonly version: string;
  readonly referenceId: string;
  readonly windowStart: number;
  readonly windowEnd: number;
  /** Events added to the summaries. */
  readonly events: number;
  /** Events of this (model, version) that arrived after their own window had closed. */
  readonly late: number;
  readonly summaries: Readonly<Record<string, SummaryJson>>;
  /** Data-quality counts of the same events (`@driftline/quality`), when expectations are configured. */
  readonly quality?: QualityPartial;
}

export interface ClosedWindow {
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly partials: readonly ClosedPartial[];
}

/** What one flush closed: the windows, and the frontier below which every window is now closed. */
export interface CloseResult {
  readonly windows: readonly ClosedWindow[];
  /** Every window with end <= closedUntil is closed on this partition (aligned watermark). */
  readonly closedUntil: number;
  /** True when closedUntil moved since the last flush: the merge stage must hear about it. */
  readonly advanced: boolean;
}

/**
 * Where `add` counts an event, and the event-time clock it leaves (`PartitionWindows.placement`).
 * `windowStart` is undefined for a replayed event (a previous owner counted it).
 */
export interface EventPlacement {
  /** Its own window; when late, the next open one after the watermark; when ahead, the horizon's. */
  readonly windowStart: number | undefined;
  readonly late: boolean;
  readonly ahead: boolean;
  /** How far the event moves the clock: its time, at most its horizon (`now + maxAheadMs`). */
  readonly reached: number;
  /** The event-time clock after the event (the clock before it, or `reached` when later). */
  readonly eventClock: number;
}

/**
 * 'refused': the event's (model, version) is new to its window, and the window already holds
 * {@link MAX_MODEL_VERSIONS_PER_WINDOW} pairs, or the version borrows its reference and the window
 * already measures {@link MAX_BORROWED_VERSIONS_PER_MODEL} versions of the model on borrowed ones
 * (see `refusal`). Either holds until the window closes: a refused pair never joins it mid-window.
 * 'duplicate': it would be summarized, but a prediction of its model, version and window with its
 * `prediction_id` was summarized among the last `recentIds` (a producer's re-send).
 */
export type AddOutcome = 'added' | 'late' | 'ahead' | 'unreferenced' | 'replayed' | 'refused' | 'duplicate';

/**
 * Default of the prediction ids a partition remembers to recognise a re-send (the drift-monitor's
 * DRIFTLINE_DRIFT_RECENT_IDS): 2.4–4 MB per partition (`RecentIds`, 24–40 B an id).
 */
export const DEFAULT_RECENT_IDS = 100_000;

/** Most prediction ids a partition remembers (~350 MB). */
export const MAX_RECENT_IDS = 10_000_000;

/**
 * Most (model, version) pairs one window of one partition holds. A producer inventing a version
 * per event would otherwise close the window with a marker larger than the merge stage accepts
 * (PARTIALS_MAX_MODELS), which then dropped the window for every model in it. It does not bound
 * memory (1,000 pairs × 20 features ≈ 343 MB): {@link MAX_BORROWED_VERSIONS_PER_MODEL} does. Far
 * above a real deployment (a production, a canary and a few shadows per model).
 */
export const MAX_MODEL_VERSIONS_PER_WINDOW = 1_000;

/**
 * Default of the most versions of one model one window measures against a BORROWED reference
 * (another version's, the promoted one: see {@link ReferenceResolver}); a new one past it is refused
 * for the rest of the window. Only such versions can be invented at will (1,000 of them × 20
 * features took 343 MB per partition and window, an OOM crash loop); versions with a reference of
 * their own, and models with references, are the operator's and never refused by it. A
 * partition's open windows hold at most open windows × (own-reference pairs + models × this)
 * pairs of {@link pairStateBytes} each. (A byte budget over all pairs refused real traffic.)
 */
export const MAX_BORROWED_VERSIONS_PER_MODEL = 16;

/**
 * A summary's bytes beside its counters (objects, typed-array headers and backing stores; the
 * numeric one has two arrays and an exact sum), and a (model, version) entry's beside its
 * summaries (map entry, key, arrays): measured with `--expose-gc`, rounded up.
 */
const NUMERIC_OVERHEAD_BYTES = 576;
const CATEGORICAL_OVERHEAD_BYTES = 320;
const PAIR_OVERHEAD_BYTES = 256;
const PAIR_FEATURE_OVERHEAD_BYTES = 16;

const pairBytesCache = new WeakMap<ReferenceSet, number>();

/**
 * Estimated bytes one (model, version) of one window holds against `ref`, the unit of the memory
 * bound (see {@link MAX_BORROWED_VERSIONS_PER_MODEL}): 256, plus per numeric feature
 * 8·(2·cuts + 1 + 68) + 592 (float64 counters per slot and exact-sum limbs), per categorical one
 * 8·bins + 336 (categories, "other", "new").
 * Arithmetic on the profiles (once per reference), never a look at the heap.
 */
export function pairStateBytes(ref: ReferenceSet): number {
  let bytes = pairBytesCache.get(ref);
  if (bytes === undefined) {
    bytes = PAIR_OVERHEAD_BYTES;
    for (const p of ref.profiles) {
      bytes +=
        PAIR_FEATURE_OVERHEAD_BYTES +
        (p.kind === 'numeric'
          ? 8 * (2 * p.cuts.length + 1 + EXACT_SUM_LIMBS) + NUMERIC_OVERHEAD_BYTES
          : 8 * categoricalBins(p) + CATEGORICAL_OVERHEAD_BYTES);
    }
    pairBytesCache.set(ref, bytes);
  }
  return bytes;
}

/**
 * What the last `add` that returned 'added' read, so the other monitors of stage one (data
 * quality, the sequential detector) take each value from here instead of reading and binning it
 * again. Overwritten by the next `add`; entries past `ref.features.length` are stale.
 */
export interface AddedValues {
  readonly ref: ReferenceSet;
  /** Per reference feature: its feature name, or undefined for the model's outputs (not in `features`). */
  readonly inputs: readonly (string | undefined)[];
  /** Per reference feature: the value read (the prediction and predicted class included). */
  readonly values: readonly (FeatureValue | undefined)[];
  /** Per reference feature: the slot its numeric summary counted it in; -1 when categorical, missing or infinite. */
  readonly slots: Int32Array;
}

const inputsCache = new WeakMap<ReferenceSet, readonly (string | undefined)[]>();
function inputsOf(ref: ReferenceSet): readonly (string | undefined)[] {
  let inputs = inputsCache.get(ref);
  if (inputs === undefined) {
    inputs = ref.features.map((f) => (f === PREDICTION_FEATURE || f === PREDICTED_CLASS_FEATURE ? undefined : f));
    inputsCache.set(ref, inputs);
  }
  return inputs;
}

const booleansCache = new WeakMap<ReferenceSet, readonly BooleanSpelling[]>();

/** Per feature, how its profile spells booleans (`booleanSpellingOf`), once per loaded reference. */
function booleansOf(ref: ReferenceSet): readonly BooleanSpelling[] {
  let booleans = booleansCache.get(ref);
  if (booleans === undefined) {
    booleans = ref.profiles.map((p) => (p.kind === 'categorical' ? booleanSpellingOf(p) : CANONICAL_BOOLEANS));
    booleansCache.set(ref, booleans);
  }
  return booleans;
}

/**
 * What a previous owner of the partition made durable: every window ending at or before
 * `closedUntil` was emitted, by records before `offset`. Restoring it means a replay neither
 * re-emits those windows nor rebuilds fragments of them.
 */
/** Frontier moves remembered between saves of the frontier. */
const MAX_CROSSINGS = 1_024;

export interface RestoredProgress {
  readonly closedUntil: number;
  readonly offset: number;
  /**
   * The first offset at which the watermark had passed `closedUntil` (`lateFrom`): a late event
   * from there on counted in a window still open then, which a replay rebuilds, so it is counted
   * late again; one before it counted in a window already emitted, so it is not. Absent (a
   * frontier saved before it was kept): late events replayed from before `offset` are not counted.
   */
  readonly lateFrom?: number;
}

interface ModelWindow {
  readonly model: string;
  readonly version: string;
  readonly ref: ReferenceSet;
  readonly summaries: Summary[];
  readonly numeric: boolean[];
  events: number;
  late: number;
}

interface Scratch {
  ref: ReferenceSet;
  inputs: readonly (string | undefined)[];
  booleans: readonly BooleanSpelling[];
  readonly values: (FeatureValue | undefined)[];
  slots: Int32Array;
}

interface OpenWindow {
  readonly start: number;
  /**
   * Smallest offset whose effect lives in this window (events and late counts); Infinity when its
   * effects are all of a log that restarted since (`logRestarted`).
   */
  firstOffset: number;
  readonly models: Map<string, ModelWindow>;
  /** Per model, how many of its pairs here are measured against a borrowed reference. */
  readonly borrowed: Map<string, number>;
}

/** Why the last refused event was refused: its window's pair cap, or its model's borrowed versions. */
interface Refusal {
  readonly start: number;
  readonly cause: 'pairs' | 'borrowed';
  /** For 'borrowed': the version whose reference it would have borrowed. */
  readonly lender: string;
}

const SEP = '\u0000';

/**
 * Window state of ONE source partition (stage 1). Tumbling windows on event time; the partition's
 * watermark is the largest event time seen minus the allowed lateness. An event whose window has
 * already closed (end <= watermark) is late: not added to any summary, but counted in the late
 * count of the next window to close for its (model, version), so the count reaches ClickHouse.
 *
 * Durability without snapshots: `commitOffset()` is the smallest offset that still has an effect
 * only in memory (the first offset of every open window), so replaying from there rebuilds the
 * open windows exactly. Pure: no I/O, no clock.
 *
 * Re-sends (`recentIds` > 0): an event that would be summarized, whose (model, version, window,
 * `prediction_id`) is among the last `recentIds` summarized here, is not ('duplicate'); an empty
 * id is never one. Late, ahead, unreferenced,
 * refused and replayed events are neither checked nor remembered: an id is remembered only for an
 * event summarized in an open window, which holds `commitOffset` back until it closes, so a replay
 * from there decides as live processing did (README, "Re-sent predictions").
 */
export class PartitionWindows {
  private maxEventTime = Number.NEGATIVE_INFINITY;
  /** The largest event time an added event moved the watermark to (never raised by `advanceTo`). */
  private eventMax = Number.NEGATIVE_INFINITY;
  private readonly open = new Map<number, OpenWindow>();
  /** Smallest open window start (Infinity when none): the next to close. */
  private earliest = Number.POSITIVE_INFINITY;
  private announced = Number.NEGATIVE_INFINITY;
  valuesAdded = 0;
  lateEvents = 0;
  /** Events whose window opens after the clock's horizon (counted with the late ones in partials). */
  aheadEvents = 0;
  unreferencedEvents = 0;

  replayedEvents = 0;
  refusedEvents = 0;
  /** Events not summarized because their prediction id was summarized recently (`recentIds`). */
  duplicateEvents = 0;
  /** Ids of the last summarized predictions; undefined when `recentIds` is 0. */
  private readonly recent: RecentIds | undefined;
  private lastRefusal: Refusal = { start: 0, cause: 'pairs', lender: '' };
  /**
   * The frontier a previous owner recorded, the partition restored from (undefined without one);
   * its offsets forgotten (0) once the log restarted (`logRestarted`).
   */
  private restoredProgress: RestoredProgress | undefined;
  private scratch: Scratch | undefined;
  /**
   * Where the frontier (`nextOpenWindowStart` of the watermark) moved since the last `lateFrom`
   * asked: each new frontier with the offset of the event that moved it there, oldest first.
   */
  private crossings: Array<{ readonly frontier: number; readonly offset: number }> = [];

  constructor(
    readonly spec: WindowSpec,
    private readonly resolve: ReferenceResolver,
    restored?: RestoredProgress,
    private readonly maxPairs = MAX_MODEL_VERSIONS_PER_WINDOW,
    private readonly maxBorrowed = MAX_BORROWED_VERSIONS_PER_MODEL,
    recentIds = 0,
  ) {
    this.recent = recentIds > 0 ? new RecentIds(recentIds) : undefined;
    this.restoredProgress = restored;
    if (restored !== undefined) {
      this.maxEventTime = restored.closedUntil + spec.latenessMs;
      this.announced = restored.closedUntil;
    }
  }

  /** The frontier the partition was restored from (see `RestoredProgress`), undefined without one. */
  get restored(): RestoredProgress | undefined {
    return this.restoredProgress;
  }

  /**
   * The partition's log started over (its topic deleted and created again): offsets recorded
   * before name the old log's records. Forgets them — the restored progress's offset and lateFrom
   * (no record of the new log was counted before, so none is a replay), the frontier crossings (the
   * watermark had passed the current frontier before the new log's first record), and the open
   * windows' first offsets (their old-log events are in memory only; no offset of the new log
   * rebuilds them, so they no longer hold the commit back). The event-time clock and the closed
   * frontier stay: windows closed before stay closed, and the new log's events dated in them are late.
   */
  logRestarted(): void {
    const r = this.restoredProgress;
    if (r !== undefined) this.restoredProgress = { closedUntil: r.closedUntil, offset: 0 };
    const wm = this.watermark();
    this.crossings = Number.isFinite(wm) ? [{ frontier: nextOpenWindowStart(wm, this.spec.sizeMs), offset: 0 }] : [];
    for (const w of this.open.values()) w.firstOffset = Number.POSITIVE_INFINITY;
  }

  /**
   * Every window ending at or before this was closed by `closeReady` (or by the previous owner of
   * a restored frontier): the frontier last announced, -Infinity before any.
   */
  closedUntil(): number {
    return this.announced;
  }

  /** Largest event time seen minus the allowed lateness (-Infinity before any event). */
  watermark(): number {
    return this.maxEventTime - this.spec.latenessMs;
  }

  /**
   * The largest event time events of this partition moved the watermark to (capped at their
   * horizon; events replayed from before a restored frontier do not count), -Infinity before the
   * first: what a processing-time advance starts from. Never raised by `advanceTo`.
   */
  latestEventTime(): number {
    return this.eventMax;
  }

  /** The clock a restored frontier starts the partition at (-Infinity without one). */
  restoredClock(): number {
    return this.restored === undefined ? Number.NEGATIVE_INFINITY : this.restored.closedUntil + this.spec.latenessMs;
  }

  /**
   * The event-time clock the watermark trails: the largest of the events' times, a restored
   * frontier's and what `advanceTo` set (-Infinity before any).
   */
  eventClock(): number {
    return this.maxEventTime;
  }

  /**
   * Moves the event-time clock to `eventTime` (never back) without an event: a source partition
   * that is read to its end and silent has nothing that could still fall into the windows behind
   * it, beyond the allowed lateness (stage one's source idleness). `closeReady()` then closes them.
   */
  advanceTo(eventTime: number): void {
    if (Number.isFinite(eventTime) && eventTime > this.maxEventTime) this.maxEventTime = eventTime;
  }

  openWindows(): number {
    return this.open.size;
  }

  /** The values of the last event whose `add` returned 'added' (undefined before the first). */
  get added(): AddedValues | undefined {
    return this.scratch;
  }

  /**
   * Adds one event read at wall time `now`. The watermark follows event time, but never beyond
   * `now + spec.maxAheadMs` (WATERMARK_MAX_AHEAD_MS by default): one event dated an hour ahead (a producer's clock, a bad
   * timestamp; the event-time bound lets it in) would otherwise close every open window and make
   * each on-time event of the next hour late. An event whose own window opens after the window
   * of that horizon is not summarized (`ahead`): it is counted, like a late one, in the horizon's
   * window. Kept in its own window, it held the partition's commit until the clock reached it (up
   * to the event-time bound, an hour by default), past the stall timeout: restarts in a loop.
   */
  add(event: WindowedEvent, offset: number, now = Number.POSITIVE_INFINITY): AddOutcome {
    const placed = this.placement(event.event_time, offset, now);
    const { reached, late, ahead } = placed;
    if (placed.eventClock > this.maxEventTime) {
      this.maxEventTime = placed.eventClock;
      const frontier = nextOpenWindowStart(reached - this.spec.latenessMs, this.spec.sizeMs);
      const last = this.crossings.at(-1);
      if (last === undefined || frontier > last.frontier) {
        this.crossings.push({ frontier, offset });
        // Bounded (windows passed without a save): losing the oldest makes a replay count fewer late events, never more.
        if (this.crossings.length > MAX_CROSSINGS) this.crossings.shift();
      }
    }
    const start = placed.windowStart;
    if (start === undefined) {
      this.replayedEvents++;
      return 'replayed';
    }
    // Events a previous owner had taken tell nothing about where this partition is now.
    if (reached > this.eventMax) this.eventMax = reached;
    const ref = this.resolve(event.model, event.model_version, start);
    if (ref === undefined) {
      this.unreferencedEvents++;
      return 'unreferenced';
    }
    const key = event.model + SEP + event.model_version;
    const window = this.open.get(start);
    const known = window?.models.get(key);
    if (known === undefined && !this.admits(window, start, event.model, event.model_version, ref)) {
      this.refusedEvents++;
      return 'refused';
    }
    // Only where it would be summarized, after the clock moved: the watermark, the windows closed
    // and the commit never depend on the memory, and a replay rebuilds it from the same events.
    // Keyed by (model, version, window, id, entity, prediction: `sentKey`): ids are unique per model
    // only, and by contract only (a producer reusing one is not re-sending; two models may score
    // one request under one id), and a copy re-sent with a later event time (an SDK call retried
    // with its input, drawing `now` again) in another window counts there, live and on replay
    // alike. An empty id is no id (a producer that sets none would have every copy dropped).
    const id = event.prediction_id;
    if (!late && !ahead && id !== undefined && id !== '' && this.recent?.repeat(sentKey(event, start, id)) === true) {
      this.duplicateEvents++;
      return 'duplicate';
    }
    const state = this.modelWindow(window, known, start, key, event.model, event.model_version, ref, offset);
    if (late || ahead) {
      state.late++;
      if (ahead) this.aheadEvents++;
      else this.lateEvents++;
      return ahead ? 'ahead' : 'late';
    }
    state.events++;
    // The window's own reference: the resolver may name another one now (a promotion seen, a
    // re-stored or reloaded reference), but this window's summaries were built for state.ref.
    const { features } = state.ref;
    const values = event.features;
    const scratch = this.scratchFor(state.ref);
    const read = scratch.values;
    const slots = scratch.slots;
    for (let i = 0; i < features.length; i++) {
      const f = features[i]!;
      const raw: FeatureValue | undefined =
        f === PREDICTION_FEATURE
          ? event.prediction
          : f === PREDICTED_CLASS_FEATURE
            ? (event.predicted_class ?? null)
            : values[f];
      read[i] = raw;
      if (state.numeric[i]) slots[i] = (state.summaries[i] as NumericSummary).add(numericValue(raw));
      else {
        (state.summaries[i] as CategoricalSummary).add(categoricalValue(raw, scratch.booleans[i]));
        slots[i] = -1;
      }
    }
    this.valuesAdded += features.length;
    return 'added';
  }

  /**
   * Where `add` would count an event at `eventTime` of `offset` read at wall time `now`, with the
   * event-time clock at `eventClock` (this partition's by default), and the clock it leaves: what
   * `add` itself uses, changing nothing. Placing a batch's events in order, each from the clock the
   * one before left, gives the windows `add` will count them in (the drift monitor loads each
   * window's borrowed reference before the batch from these).
   */
  placement(eventTime: number, offset: number, now: number, eventClock = this.maxEventTime): EventPlacement {
    const size = this.spec.sizeMs;
    const horizon = now + (this.spec.maxAheadMs ?? WATERMARK_MAX_AHEAD_MS);
    const reached = Math.min(eventTime, horizon);
    const clock = Math.max(eventClock, reached);
    const wm = clock - this.spec.latenessMs;
    const own = windowStartOf(eventTime, size);
    const late = own + size <= wm;
    const ahead = Number.isFinite(horizon) && own > windowStartOf(horizon, size);
    const start = ahead ? windowStartOf(horizon, size) : own;
    const r = this.restored;
    if (late && r !== undefined && offset < r.offset) {
      // In a window the previous owner emitted (its own, or the open one its late count went
      // to): not counted twice. A late count it put in a window still open then is rebuilt here.
      const emitted = r.lateFrom === undefined ? start + size <= r.closedUntil : offset < r.lateFrom;
      if (emitted) return { windowStart: undefined, late, ahead, reached, eventClock: clock };
    }
    return { windowStart: late ? nextOpenWindowStart(wm, size) : start, late, ahead, reached, eventClock: clock };
  }

  private scratchFor(ref: ReferenceSet): Scratch {
    let s = this.scratch;
    if (s === undefined) {
      s = {
        ref,
        inputs: inputsOf(ref),
        booleans: booleansOf(ref),
        values: [],
        slots: new Int32Array(ref.features.length),
      };
      this.scratch = s;
    } else if (s.ref !== ref) {
      s.ref = ref;
      s.inputs = inputsOf(ref);
      s.booleans = booleansOf(ref);
      if (s.slots.length < ref.features.length) s.slots = new Int32Array(ref.features.length);
    }
    return s;
  }

  /** Why the last event `add` refused (of `model`/`version`) was refused, for its dead letter. */
  refusal(model: string, version: string): string {
    const r = this.lastRefusal;
    const window = `window ${new Date(r.start).toISOString()}`;
    const pair = `model ${JSON.stringify(model)} version ${JSON.stringify(version)} is not counted`;
    if (r.cause === 'pairs')
      return `${window} already holds ${this.maxPairs} (model, version) pairs, the most one window takes; ${pair}`;
    return `${window} already measures ${this.maxBorrowed} versions of model ${JSON.stringify(model)} against another version's reference (version ${JSON.stringify(r.lender)}'s), the most one window takes (the drift-monitor's DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS; versions with a reference of their own are not limited); ${pair}`;
  }

  /**
   * Whether `window` (starting at `start`; undefined when not open yet) takes a pair it does not
   * hold, (model, version) on `ref` (else `lastRefusal` says why). A new pair is refused before
   * anything is made for it (a window included). Both counts only grow until the window closes,
   * and depend on this window's events alone: a refused pair stays refused for the whole window,
   * and a replay of the window refuses the same events.
   */
  private admits(
    window: OpenWindow | undefined,
    start: number,
    model: string,
    version: string,
    ref: ReferenceSet,
  ): boolean {
    if ((window?.models.size ?? 0) >= this.maxPairs) {
      this.lastRefusal = { start, cause: 'pairs', lender: '' };
      return false;
    }
    const borrowed = ref.model !== model || ref.version !== version;
    if (borrowed && (window?.borrowed.get(model) ?? 0) >= this.maxBorrowed) {
      this.lastRefusal = { start, cause: 'borrowed', lender: ref.version };
      return false;
    }
    return true;
  }

  /**
   * The pair's state (`known`, or made now: `admits` said the window takes it) in `existing` (or a
   * window made now at `start`), whose first offset `offset` may lower.
   */
  private modelWindow(
    existing: OpenWindow | undefined,
    known: ModelWindow | undefined,
    start: number,
    key: string,
    model: string,
    version: string,
    ref: ReferenceSet,
    offset: number,
  ): ModelWindow {
    let state = known;
    let window = existing;
    if (window === undefined) {
      window = { start, firstOffset: offset, models: new Map(), borrowed: new Map() };
      this.open.set(start, window);
      if (start < this.earliest) this.earliest = start;
    } else if (offset < window.firstOffset) window.firstOffset = offset;
    if (state === undefined) {
      if (ref.model !== model || ref.version !== version)
        window.borrowed.set(model, (window.borrowed.get(model) ?? 0) + 1);
      state = {
        model,
        version,
        ref,
        summaries: ref.profiles.map((p) => createSummary(p)),
        numeric: ref.profiles.map((p) => p.kind === 'numeric'),
        events: 0,
        late: 0,
      };
      window.models.set(key, state);
    }
    return state;
  }

  /**
   * Removes and returns, oldest first, every window the watermark has passed, with the aligned
   * frontier. Call it after each batch.
   */
  closeReady(): CloseResult {
    const wm = this.watermark();
    const size = this.spec.sizeMs;
    const closedUntil = wm === Number.NEGATIVE_INFINITY ? wm : nextOpenWindowStart(wm, size);
    const advanced = closedUntil > this.announced;
    this.announced = Math.max(this.announced, closedUntil);
    if (!(this.earliest + size <= wm)) return { windows: [], closedUntil, advanced };
    const ready = [...this.open.keys()].filter((s) => s + size <= wm).sort((a, b) => a - b);
    const out: ClosedWindow[] = [];
    for (const start of ready) {
      const window = this.open.get(start)!;
      this.open.delete(start);
      out.push({
        windowStart: start,
        windowEnd: start + size,
        partials: [...window.models.values()].map((m) => closePartial(m, start, size)),
      });
    }
    let earliest = Number.POSITIVE_INFINITY;
    for (const s of this.open.keys()) if (s < earliest) earliest = s;
    this.earliest = earliest;
    return { windows: out, closedUntil, advanced };
  }

  /**
   * For a frontier `closedUntil` about to be saved: the first offset at which the watermark had
   * passed it (late events from there on counted in windows still open at it), or `nextOffset`
   * when no event moved it there (a restored frontier, a processing-time advance). Forgets the
   * crossings behind it.
   */
  lateFrom(closedUntil: number, nextOffset: number): number {
    const i = this.crossings.findIndex((c) => c.frontier >= closedUntil);
    if (i === -1) {
      this.crossings = [];
      return nextOffset;
    }
    const at = this.crossings[i]!.offset;
    this.crossings = this.crossings.slice(i);
    return at;
  }

  /**
   * The offset to commit: the first offset of the oldest effect still only in memory, or
   * `nextOffset` (one past the last processed record) when no window is open.
   */
  commitOffset(nextOffset: number): number {
    let min = nextOffset;
    for (const w of this.open.values()) if (w.firstOffset < min) min = w.firstOffset;
    return min;
  }
}

function closePartial(m: ModelWindow, start: number, size: number): ClosedPartial {
  const summaries: Record<string, SummaryJson> = {};
  // setOwn: a feature may be named __proto__ (a reference built from a CSV column), which a plain
  // assignment would make the object's prototype, leaving the summary out of the JSON.
  for (let i = 0; i < m.ref.features.length; i++) setOwn(summaries, m.ref.features[i]!, m.summaries[i]!.toJSON());
  return {
    model: m.model,
    version: m.version,
    referenceId: m.ref.referenceId,
    windowStart: start,
    windowEnd: start + size,
    events: m.events,
    late: m.late,
    summaries,
  };
}

/**
 * A summarized prediction as its re-send memory knows it: model, version, window start and id,
 * with the lengths of model and version first, so that no names can run together (a NUL in a
 * version and an id made two distinct predictions one: names are bounded in length only) — and
 * its entity and its output (prediction, predicted class), which a re-send repeats and predictions
 * merely sharing an id do not: the SDK leaves `prediction_id` to the caller (unique by contract
 * only), and a producer reusing one (`"0"`) had every prediction of a window after the first taken
 * for a re-send (a review). The output rather than the features: a digest of 20 feature values
 * cost ~2 µs an event (the whole check was ~1); the prediction is by its bits, as two small
 * integers (a double's shortest text cost as much).
 */
function sentKey(event: WindowedEvent, start: number, id: string): string {
  const entity = event.entity_id ?? '';
  // The double's 64 bits, exactly, as small integers (30, 30 and 4 bits: Smis, quick to print).
  predictionBits[0] = event.prediction;
  const w0 = predictionWords[0]!;
  const w1 = predictionWords[1]!;
  const bits = `${w0 & 0x3fffffff}.${w1 & 0x3fffffff}.${(w0 >>> 30) | ((w1 >>> 30) << 2)}`;
  const cls = event.predicted_class;
  const output = cls === null || cls === undefined ? bits : `${bits}${SEP}${cls}`;
  return `${event.model.length}.${event.model_version.length}.${id.length}.${entity.length}${SEP}${event.model}${event.model_version}${id}${entity}${SEP}${start}${SEP}${output}`;
}

const predictionBits = new Float64Array(1);
const predictionWords = new Uint32Array(predictionBits.buffer);
