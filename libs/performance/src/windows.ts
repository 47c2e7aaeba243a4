import { DriftlineError } from '@driftline/core';
import {
  type BusinessOptions,
  type BusinessOutcome,
  businessOutcome,
  scaledBusinessOutcome,
  type ValuedPoint,
} from './business.js';
import { classificationMetrics, emptyMetrics, type Metrics, regressionMetrics, type Task } from './metrics.js';

/** Start of the tumbling window of size `sizeMs` containing `timeMs` (aligned to the epoch). */
export function windowStart(timeMs: number, sizeMs: number): number {
  if (!Number.isInteger(sizeMs) || sizeMs <= 0) {
    throw new DriftlineError('VALIDATION_FAILED', `window size must be a positive integer (got ${sizeMs})`);
  }
  return timeMs - (((timeMs % sizeMs) + sizeMs) % sizeMs);
}

/** Identity of a performance window; `key` is a stable string form (JSON, so any model name is safe). */
export interface WindowRef {
  readonly model: string;
  readonly modelVersion: string;
  readonly windowStart: number;
}

export function windowKey(ref: WindowRef): string {
  return JSON.stringify([ref.model, ref.modelVersion, ref.windowStart]);
}

/**
 * `[model, version, start]`. A key of four elements, `[model, version, start, size]`, was written only
 * by ce65220 (never released; the size in the key was reverted, see {@link currentWindow}): it is read
 * as its start, its size ignored, so such keys left in Redis are recomputed like any other.
 */
export function parseWindowKey(key: string): WindowRef {
  const parsed: unknown = JSON.parse(key);
  if (
    !Array.isArray(parsed) ||
    (parsed.length !== 3 && parsed.length !== 4) ||
    typeof parsed[0] !== 'string' ||
    typeof parsed[1] !== 'string' ||
    typeof parsed[2] !== 'number' ||
    (parsed.length === 4 && !(Number.isInteger(parsed[3]) && (parsed[3] as number) > 0))
  ) {
    throw new DriftlineError('VALIDATION_FAILED', `not a window key: ${key}`);
  }
  return { model: parsed[0], modelVersion: parsed[1], windowStart: parsed[2] };
}

/**
 * The window of size `sizeMs` containing the start of `ref`: the one a key written under another
 * window size (DRIFTLINE_JOINER_WINDOW changed while its predictions waited) is recomputed and its
 * score tallies written as. Its old start with the new size had made windows that overlap; a size in
 * the key made rows of two sizes share performance_windows' key (start, no size), where the newer
 * replaced the other and lost its labels (both found by reviews).
 */
export const currentWindow = (ref: WindowRef, sizeMs: number): WindowRef => ({
  model: ref.model,
  modelVersion: ref.modelVersion,
  windowStart: windowStart(ref.windowStart, sizeMs),
});

export const ALL_SEGMENT = '__all__';
export const OTHER_SEGMENT = '__other__';
export const MISSING_SEGMENT = '__missing__';

/**
 * Bounds the number of segments of one feature: with at most `maxSegments` distinct values all are
 * kept; otherwise the `maxSegments - 1` most frequent (ties by value) are kept and the rest fold into
 * `__other__`, so a window never has more than `maxSegments` segments per feature.
 */
export function boundSegments(counts: ReadonlyMap<string, number>, maxSegments: number): (value: string) => string {
  if (counts.size <= maxSegments) return (v) => v;
  const kept = new Set(
    [...counts.entries()]
      .sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0))
      .slice(0, Math.max(0, maxSegments - 1))
      .map(([v]) => v),
  );
  return (v) => (kept.has(v) ? v : OTHER_SEGMENT);
}

/**
 * A window's rows, column by column: the labeled rows' scores, labels and label values, and per
 * segment feature the segment of every labeled row and the expired rows' counts per segment. About
 * 24 bytes per labeled row and 4 per row and segment feature (as objects, a row had cost hundreds),
 * so a window of millions of predictions fits in tens of MB. Built by `WindowColumnsBuilder`.
 */
export interface WindowColumns {
  readonly labeledCount: number;
  readonly predictions: Float64Array;
  readonly labels: Float64Array;
  /** The business value each label carried (labels.v1 `value`); NaN when none. */
  readonly values: Float64Array;
  /** Predictions whose labels never came within the maximum delay. */
  readonly expiredCount: number;
  /** One per segment feature, in the order of `segmentFeatures`. */
  readonly segments: readonly SegmentColumn[];
  /**
   * Set when the labeled rows in the columns are a sample of the window's (it held more than the
   * reader's bound, DRIFTLINE_JOINER_MAX_WINDOW_ROWS): the window's exact counts, from ClickHouse.
   * The columns (`labeledCount` rows) then only give the metrics.
   */
  readonly sampled?: WindowCounts;
}

/** A window's exact labeled counts when its rows in the columns are a sample of them. */
export interface WindowCounts {
  /** Labeled rows of the window. */
  readonly labeled: number;
  /** Of them, those whose label is not 0 or 1 (invalid for a classification model). */
  readonly notClass: number;
  /** Per segment feature, per value index (as `SegmentColumn.values`): the same two counts. */
  readonly segments: ReadonlyArray<{ readonly labeled: Float64Array; readonly notClass: Float64Array }>;
  /**
   * The read stopped at its bound with rows left, twice (rows kept arriving faster than the window
   * was counted and read): the rows held are the sample's earliest by time, not a uniform sample,
   * so the window has no metrics this time (`computeWindow`), its counts exact all the same.
   */
  readonly cut?: boolean;
}

/**
 * Of 2^32, the share of hash values a window of `labeled` rows keeps (`cityHash64(prediction_id) %
 * 2^32 < share`) so that its sample holds at most `maxRows` rows with near certainty: it aims at
 * `maxRows − 4√maxRows` (the sample size is binomial: 4 standard deviations below the bound),
 * and the reader stops at `maxRows` anyway. Undefined when the window fits whole. A share, not a
 * row count: the same rows are kept by every instance and every recompute of the same data.
 */
export function sampleShare(labeled: number, maxRows: number): number | undefined {
  if (!Number.isInteger(maxRows) || maxRows < 1) {
    throw new DriftlineError('VALIDATION_FAILED', `the window row bound must be a positive integer (got ${maxRows})`);
  }
  if (labeled <= maxRows) return undefined;
  const target = Math.max(1, maxRows - Math.ceil(4 * Math.sqrt(maxRows)));
  return Math.max(1, Math.floor((target / labeled) * 2 ** 32));
}

export interface SegmentColumn {
  /** The distinct segment values; rows refer to them by index. */
  readonly values: readonly string[];
  /** The value index of each labeled row. */
  readonly labeled: Uint32Array;
  /** Expired rows per value index. */
  readonly expired: Float64Array;
}

/** Accumulates a window's rows into `WindowColumns` (arrays grow by doubling). */
export class WindowColumnsBuilder {
  private n = 0;
  private predictions = new Float64Array(64);
  private labels = new Float64Array(64);
  private values = new Float64Array(64);
  private expiredCount = 0;
  private readonly dictionaries: Array<Map<string, number>>;
  private readonly labeledIds: Uint32Array[];
  private readonly expiredBy: number[][];
  private exact:
    | { labeled: number; notClass: number; by: Array<{ labeled: number[]; notClass: number[] }>; cut?: true }
    | undefined;

  constructor(private readonly segmentFeatures: number) {
    this.dictionaries = Array.from({ length: segmentFeatures }, () => new Map<string, number>());
    this.labeledIds = Array.from({ length: segmentFeatures }, () => new Uint32Array(64));
    this.expiredBy = Array.from({ length: segmentFeatures }, () => []);
  }

  private idOf(feature: number, value: string | undefined): number {
    const dictionary = this.dictionaries[feature] as Map<string, number>;
    const v = value ?? MISSING_SEGMENT;
    let id = dictionary.get(v);
    if (id === undefined) {
      id = dictionary.size;
      dictionary.set(v, id);
    }
    return id;
  }

  /**
   * One labeled row; `segments[f]` is its value of segment feature f (missing: `__missing__`),
   * `value` the business value its label carried (null or undefined: none).
   */
  addLabeled(prediction: number, label: number, segments: readonly string[], value?: number | null): void {
    if (this.n === this.predictions.length) {
      this.predictions = grown(this.predictions);
      this.labels = grown(this.labels);
      this.values = grown(this.values);
      for (let f = 0; f < this.segmentFeatures; f++) this.labeledIds[f] = grown(this.labeledIds[f] as Uint32Array);
    }
    this.predictions[this.n] = prediction;
    this.labels[this.n] = label;
    this.values[this.n] = value ?? Number.NaN;
    for (let f = 0; f < this.segmentFeatures; f++) {
      (this.labeledIds[f] as Uint32Array)[this.n] = this.idOf(f, segments[f]);
    }
    this.n++;
  }

  /** `count` expired rows with these segments. */
  addExpired(segments: readonly string[], count = 1): void {
    this.expiredCount += count;
    for (let f = 0; f < this.segmentFeatures; f++) {
      const id = this.idOf(f, segments[f]);
      const by = this.expiredBy[f] as number[];
      by[id] = (by[id] ?? 0) + count;
    }
  }

  /**
   * The window's exact counts when the labeled rows added are a sample (see `WindowColumns.sampled`):
   * its totals, then `addExactCounts` per segment value.
   */
  setExactTotals(labeled: number, notClass: number): void {
    this.exact = {
      labeled,
      notClass,
      by: Array.from({ length: this.segmentFeatures }, () => ({ labeled: [], notClass: [] })),
    };
  }

  /** Exact labeled rows with value `value` of segment feature `feature` (after setExactTotals). */
  addExactCounts(feature: number, value: string, labeled: number, notClass: number): void {
    const by = this.exact?.by[feature];
    if (by === undefined) throw new DriftlineError('INTERNAL', 'addExactCounts before setExactTotals');
    const id = this.idOf(feature, value);
    by.labeled[id] = (by.labeled[id] ?? 0) + labeled;
    by.notClass[id] = (by.notClass[id] ?? 0) + notClass;
  }

  /** The rows added are not a uniform sample (see `WindowCounts.cut`); after setExactTotals. */
  markCut(): void {
    if (this.exact === undefined) throw new DriftlineError('INTERNAL', 'markCut before setExactTotals');
    this.exact.cut = true;
  }

  build(): WindowColumns {
    const exact = this.exact;
    const dense = (values: number[], size: number) => {
      const out = new Float64Array(size);
      values.forEach((c, id) => {
        out[id] = c;
      });
      return out;
    };
    return {
      ...(exact === undefined
        ? {}
        : {
            sampled: {
              labeled: exact.labeled,
              notClass: exact.notClass,
              ...(exact.cut === true ? { cut: true } : {}),
              segments: exact.by.map((by, f) => {
                const size = (this.dictionaries[f] as Map<string, number>).size;
                return { labeled: dense(by.labeled, size), notClass: dense(by.notClass, size) };
              }),
            },
          }),
      labeledCount: this.n,
      predictions: this.predictions.subarray(0, this.n),
      labels: this.labels.subarray(0, this.n),
      values: this.values.subarray(0, this.n),
      expiredCount: this.expiredCount,
      segments: this.dictionaries.map((dictionary, f) => {
        const expired = new Float64Array(dictionary.size);
        (this.expiredBy[f] as number[]).forEach((c, id) => {
          expired[id] = c;
        });
        return {
          values: [...dictionary.keys()],
          labeled: (this.labeledIds[f] as Uint32Array).subarray(0, this.n),
          expired,
        };
      }),
    };
  }
}

function grown<T extends Float64Array | Uint32Array>(a: T): T {
  const next = new (a.constructor as new (n: number) => T)(a.length * 2);
  next.set(a);
  return next;
}

export interface WindowInput {
  readonly task: Task;
  readonly threshold: number;
  readonly segmentFeatures: readonly string[];
  readonly maxSegments: number;
  readonly window: WindowColumns;
  /** Predictions of the window still waiting for a label (window level only). */
  readonly pending: number;
  /**
   * A sampled window only (`window.sampled`): a slice whose sample holds fewer valid labels than
   * this has no metrics (null), its counts exact all the same — a segment of 150 rows in a window
   * sampled at 1 in 12 had been judged and published on its 7–17 sampled rows as if on all 150.
   * Default {@link DEFAULT_MIN_SAMPLED} (the label-joiner passes DRIFTLINE_JOINER_ALERT_MIN_SAMPLES).
   * A window read whole keeps every metric, however few its labels (they are exact).
   */
  readonly minSampled?: number;
}

/** Default of `WindowInput.minSampled`: DRIFTLINE_JOINER_ALERT_MIN_SAMPLES' default. */
const DEFAULT_MIN_SAMPLED = 100;

export interface PerformanceRow {
  /** '' for the whole window. */
  readonly segmentFeature: string;
  readonly segment: string;
  /** Predictions known in this slice: labeled + expired (+ pending for the whole window). */
  readonly predictions: number;
  readonly labeled: number;
  readonly expired: number;
  readonly pending: number;
  /** Valid labels (labeled − invalidLabels) / predictions (null when there is none). */
  readonly labelCoverage: number | null;
  /**
   * Labeled rows whose label is not 0 or 1 in a classification window. With any of them the slice's
   * classification metrics are null: what the label meant is unknown, and the rest without them is
   * not the model's performance (labels −1/+1 had left only the positives: accuracy 1).
   */
  readonly invalidLabels: number;
  readonly metrics: Metrics;
  /**
   * Only when the window was sampled (`WindowColumns.sampled`): the labeled rows of this slice the
   * metrics were computed from. The counts above are exact all the same.
   */
  readonly sampled?: number;
}

/** Whether a label is a class of a binary classification model (0 or 1): any other is invalid. */
export const isClassLabel = (label: number): boolean => label === 0 || label === 1;

/** The metrics of the labeled rows `rows` (indices into the window's columns; all when undefined). */
function metricsOf(
  task: Task,
  threshold: number,
  window: WindowColumns,
  rows: Uint32Array | undefined,
): { metrics: Metrics; invalid: number } {
  const n = rows === undefined ? window.labeledCount : rows.length;
  const labels = new Float64Array(n);
  const predictions = new Float64Array(n);
  let kept = 0;
  for (let k = 0; k < n; k++) {
    const i = rows === undefined ? k : (rows[k] as number);
    const label = window.labels[i] as number;
    if (task === 'classification' && !isClassLabel(label)) continue;
    labels[kept] = label;
    predictions[kept] = window.predictions[i] as number;
    kept++;
  }
  const invalid = n - kept;
  if (kept === 0 || invalid > 0) return { metrics: emptyMetrics(), invalid };
  const [y, p] = [labels.subarray(0, kept), predictions.subarray(0, kept)];
  return {
    metrics: task === 'classification' ? classificationMetrics(y, p, threshold) : regressionMetrics(y, p),
    invalid,
  };
}

function row(
  input: WindowInput,
  segmentFeature: string,
  segment: string,
  rows: Uint32Array | undefined,
  expired: number,
  pending: number,
  exact?: { readonly labeled: number; readonly notClass: number },
): PerformanceRow {
  const read = rows === undefined ? input.window.labeledCount : rows.length;
  const computed = metricsOf(input.task, input.threshold, input.window, rows);
  let { metrics, invalid } = computed;
  // A sample: the counts are the window's own; one invalid label anywhere voids the metrics, as
  // whole (the sample may have missed it).
  const labeled = exact?.labeled ?? read;
  if (exact !== undefined) {
    invalid = input.task === 'classification' ? exact.notClass : 0;
    // Too few sampled rows to say anything of the slice: no metrics rather than a handful's read
    // as the slice's (its exact `labeled` beside them).
    const tooFew = read - computed.invalid < (input.minSampled ?? DEFAULT_MIN_SAMPLED);
    if (invalid > 0 || tooFew || input.window.sampled?.cut === true) metrics = emptyMetrics();
  }
  const predictions = labeled + expired + pending;
  return {
    segmentFeature,
    segment,
    predictions,
    labeled,
    expired,
    pending,
    labelCoverage: predictions === 0 ? null : (labeled - invalid) / predictions,
    invalidLabels: invalid,
    metrics,
    ...(exact === undefined ? {} : { sampled: read }),
  };
}

/**
 * The window's business outcome from the rows read. A sample (`window.sampled`) is scaled to the
 * window (sums and counts × labeled / sampled) and is null: when any label of the window is not 0
 * or 1 (as whole: the sample may miss it), when the read was cut (`WindowCounts.cut`), or when the
 * sample holds some valued labels but fewer than `minSampled` (default as `WindowInput.minSampled`)
 * — a handful of values scaled up by the sample's factor had stood for the window's money, its
 * sign at the mercy of which few rows the hash kept. A sample with no valued label at all keeps
 * its outcome (a false-alarm cost alone: counts over the whole sample).
 */
export function windowBusinessOutcome(
  window: WindowColumns,
  options: BusinessOptions & { readonly minSampled?: number },
): BusinessOutcome | null {
  const { minSampled, ...business } = options;
  const outcome = businessOutcome(valuedPoints(window), business);
  const sampled = window.sampled;
  if (sampled === undefined) return outcome;
  if (sampled.notClass > 0 || sampled.cut === true || window.labeledCount === 0 || outcome === null) return null;
  if (outcome.valued > 0 && outcome.valued < (minSampled ?? DEFAULT_MIN_SAMPLED)) return null;
  return scaledBusinessOutcome(outcome, Math.max(1, sampled.labeled / window.labeledCount));
}

/** The window's labeled rows as business points (one at a time: nothing is copied). */
export function* valuedPoints(window: WindowColumns): Generator<ValuedPoint> {
  for (let i = 0; i < window.labeledCount; i++) {
    const value = window.values[i] as number;
    yield {
      score: window.predictions[i] as number,
      label: window.labels[i] as number,
      value: Number.isNaN(value) ? null : value,
    };
  }
}

/**
 * The rows of one window: the whole window (`__all__`) and, per declared segment feature, one row
 * per (bounded) segment value. Pending predictions are only known for the whole window.
 */
export function computeWindow(input: WindowInput): PerformanceRow[] {
  const w = input.window;
  const sampled = w.sampled;
  const rows = [
    row(
      input,
      '',
      ALL_SEGMENT,
      undefined,
      w.expiredCount,
      input.pending,
      sampled === undefined ? undefined : { labeled: sampled.labeled, notClass: sampled.notClass },
    ),
  ];
  input.segmentFeatures.forEach((feature, f) => {
    const column = w.segments[f];
    if (column === undefined) {
      throw new DriftlineError('INTERNAL', `window columns lack segment feature ${feature}`);
    }
    const counts = new Map<string, number>();
    // Rows read per value; with a sample, the exact counts rank the segments instead.
    const readById = new Float64Array(column.values.length);
    for (let i = 0; i < w.labeledCount; i++) {
      const id = column.labeled[i] as number;
      readById[id] = (readById[id] as number) + 1;
    }
    const exact = sampled?.segments[f];
    const labeledById = exact?.labeled ?? readById;
    column.values.forEach((v, id) => {
      counts.set(v, (labeledById[id] ?? 0) + (column.expired[id] ?? 0));
    });
    const bucket = boundSegments(counts, input.maxSegments);
    // A value in the sample alone (a row written between the counts and the sample's read) still
    // has a segment of its own.
    const segments = [
      ...new Set(column.values.filter((v, id) => (counts.get(v) ?? 0) > 0 || (readById[id] ?? 0) > 0).map(bucket)),
    ].sort();
    const slot = new Map(segments.map((s, k) => [s, k]));
    const slotOfId = Uint32Array.from(column.values, (v) => slot.get(bucket(v)) ?? 0);
    // Labeled rows grouped by slot (a counting sort: one index array for every segment).
    const sizes = new Uint32Array(segments.length + 1);
    const expired = new Float64Array(segments.length);
    for (let i = 0; i < w.labeledCount; i++) {
      const k = (slotOfId[column.labeled[i] as number] as number) + 1;
      sizes[k] = (sizes[k] as number) + 1;
    }
    for (let k = 1; k <= segments.length; k++) sizes[k] = (sizes[k] as number) + (sizes[k - 1] as number);
    const order = new Uint32Array(w.labeledCount);
    const next = sizes.slice(0, segments.length);
    for (let i = 0; i < w.labeledCount; i++) {
      const k = slotOfId[column.labeled[i] as number] as number;
      order[next[k] as number] = i;
      next[k] = (next[k] as number) + 1;
    }
    column.expired.forEach((c, id) => {
      expired[slotOfId[id] as number] = (expired[slotOfId[id] as number] as number) + c;
    });
    const exactBySlot = exact === undefined ? undefined : segments.map(() => ({ labeled: 0, notClass: 0 }));
    if (exact !== undefined && exactBySlot !== undefined) {
      column.values.forEach((_, id) => {
        const slotCounts = exactBySlot[slotOfId[id] as number];
        if (slotCounts === undefined) return;
        slotCounts.labeled += exact.labeled[id] ?? 0;
        slotCounts.notClass += exact.notClass[id] ?? 0;
      });
    }
    segments.forEach((s, k) => {
      rows.push(
        row(input, feature, s, order.subarray(sizes[k], sizes[k + 1]), expired[k] as number, 0, exactBySlot?.[k]),
      );
    });
  });
  return rows;
}
