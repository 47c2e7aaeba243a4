import { DriftlineError, setOwn } from '@driftline/core';
import { booleanCategory } from '@driftline/drift';
import type { FeatureValue } from '@driftline/schemas';
import { missingAsFloat32, SERVED_MODEL_LIMITS } from '@driftline/scoring';
import {
  type DataType,
  Field,
  Float64,
  makeData,
  makeVector,
  RecordBatch,
  Schema,
  Struct,
  Table,
  tableToIPC,
  Utf8,
  type Vector,
} from 'apache-arrow';
import { runNow, type Steps } from './steps.js';

/** One row of `labeled_predictions` as the trainer reads it. */
export interface LabeledRow {
  readonly predictionId: string;
  /** Prediction event time, epoch ms. */
  readonly time: number;
  /** The features as they were at prediction time (the JSON stored with the prediction). */
  readonly features: Readonly<Record<string, FeatureValue>>;
  /**
   * The base version's score for this row (the version the request names as serving), NaN when
   * the row carries none: the offline gate compares the candidate with it on the same rows.
   */
  readonly prediction: number;
  readonly label: number;
}

export interface FeatureColumn {
  readonly name: string;
  readonly kind: 'numeric' | 'categorical';
  /** Numbers (NaN = missing) for numeric columns, strings (null = missing) for categorical ones. */
  readonly values: Float64Array | ReadonlyArray<string | null>;
}

/** Why feature names of the window are not columns of the training set. */
export type DropReason = 'bad_name' | 'no_train_value' | 'rare' | 'over_limit';

/** What the dataset left out: names per reason, and a few of them (cut, JSON-quoted) to log. */
export interface DroppedFeatures {
  readonly counts: Readonly<Record<DropReason, number>>;
  /** At most {@link DROPPED_EXAMPLES} names, each cut to 64 characters and JSON-quoted. */
  readonly examples: readonly string[];
}

/** The training set in columns, ordered by time; the last `holdout` share is held out for evaluation. */
export interface Dataset {
  readonly rows: number;
  readonly time: Float64Array;
  readonly label: Float64Array;
  readonly currentScore: Float64Array;
  readonly holdout: Uint8Array;
  readonly features: readonly FeatureColumn[];
  readonly trainRows: number;
  readonly holdoutRows: number;
  readonly dropped: DroppedFeatures;
  /** Numbers beyond float32's range (XGBoost's DMatrix refuses them), read as missing. */
  readonly outOfRange: number;
}

/** Reserved column names in the Arrow file; features with these names are refused. */
export const COLUMNS = {
  label: '__label__',
  currentScore: '__current_score__',
  holdout: '__holdout__',
  time: '__time__',
} as const;

/**
 * Most feature columns × rows a dataset builds (2 GB as numbers), counted on the columns kept
 * (after the rules below): a window this wide is refused, naming DRIFTLINE_TRAINER_MAX_ROWS.
 */
export const MAX_DATASET_CELLS = 250_000_000;

/**
 * A feature name is a column only if it has a value in at least min(MIN_FEATURE_ROWS,
 * MIN_FEATURE_SHARE of the rows) rows. The columns are the union of every prediction's names: one
 * prediction carrying 20,000 keys (ids as names) refused the retrain (past MAX_DATASET_CELLS) or
 * trained a model of 20,000 inputs the model-server refuses. A name that rare cannot be learned
 * from anyway; one present in 1% of the rows, or in 100 of a large window, is kept.
 */
export const MIN_FEATURE_SHARE = 0.01;
export const MIN_FEATURE_ROWS = 100;

/** Most columns: what the model-server serves. Past it, the least frequent names are dropped. */
export const MAX_FEATURES = SERVED_MODEL_LIMITS.maxFeatures;

/** Names kept in the training record per dataset, as examples of what was dropped. */
export const DROPPED_EXAMPLES = 10;

/**
 * XGBoost keeps names as C strings (a NUL cut "a\0b" to "a" in model.json: the served model's names
 * then differ from meta.json and the model-server refuses it), and a lone surrogate has no UTF-8
 * (Arrow writes U+FFFD: the column is then named otherwise than the feature it serves).
 */
const UNSERVABLE_NAME = /\0|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** The value of an OWN key: a feature named `constructor` or `toString` must not read Object.prototype's. */
const own = (record: Readonly<Record<string, FeatureValue>>, name: string): FeatureValue | undefined =>
  Object.hasOwn(record, name) ? record[name] : undefined;

const byTimeThenId = (a: LabeledRow, b: LabeledRow) =>
  a.time - b.time || (a.predictionId < b.predictionId ? -1 : a.predictionId > b.predictionId ? 1 : 0);

/** Rows in the order the split is made: (time, prediction id). */
export function inSplitOrder(rows: readonly LabeledRow[]): LabeledRow[] {
  return [...rows].sort(byTimeThenId);
}

/** Rows held out of `n`: the newest `fraction`, at least one on each side of the split. */
export function holdoutCount(n: number, fraction: number): number {
  return n === 0 ? 0 : Math.min(n - 1, Math.max(1, Math.round(n * fraction)));
}

/** Rows labeled 0 (`negative`) and rows labeled 1 (`positive`). */
export interface Classes {
  readonly negative: number;
  readonly positive: number;
}

/**
 * Whether the offline gate measures the base version on a held-out row: the row carries the base
 * version's score (a finite `prediction`). One rule for both sides of the gate: the worker measures
 * `current_*` and `gate_*` on these rows (`covered` in worker/train.py), and the label wait
 * (label-wait.ts) counts their classes through {@link classCounts}, so a window it lets train is one
 * the gate can measure the named version on.
 */
const measuresBase = (row: LabeledRow): boolean => Number.isFinite(row.prediction);

/** Labels per class in the training and the held-out slices, as buildDataset will split the rows. */
export interface ClassCounts {
  readonly rows: number;
  readonly train: Classes;
  readonly holdout: Classes;
  /**
   * The version the request names as serving (`model_version`; `''`: none named, each row's
   * answered score stands for it) and, by class, the held-out rows the gate measures it on
   * (measuresBase).
   */
  readonly base: Classes & { readonly version: string };
}

export function classCounts(input: readonly LabeledRow[], holdoutFraction: number, baseVersion: string): ClassCounts {
  const rows = inSplitOrder(input);
  const firstHeldOut = rows.length - holdoutCount(rows.length, holdoutFraction);
  const train = { negative: 0, positive: 0 };
  const holdout = { negative: 0, positive: 0 };
  const base = { version: baseVersion, negative: 0, positive: 0 };
  const count = (side: { negative: number; positive: number }, label: number) => {
    if (label === 1) side.positive++;
    else if (label === 0) side.negative++;
  };
  rows.forEach((r, i) => {
    if (i < firstHeldOut) {
      count(train, r.label);
      return;
    }
    count(holdout, r.label);
    if (measuresBase(r)) count(base, r.label);
  });
  return { rows: rows.length, train, holdout, base };
}

class DropLog {
  readonly counts: Record<DropReason, number> = { bad_name: 0, no_train_value: 0, rare: 0, over_limit: 0 };
  readonly examples: string[] = [];
  add(reason: DropReason, name: string) {
    this.counts[reason]++;
    if (this.examples.length < DROPPED_EXAMPLES) this.examples.push(`${reason}:${JSON.stringify(name.slice(0, 64))}`);
  }
  summary(): string {
    const parts = Object.entries(this.counts).filter(([, n]) => n > 0);
    return parts.length === 0 ? 'none dropped' : `dropped ${parts.map(([r, n]) => `${n} ${r}`).join(', ')}`;
  }
}

/**
 * Builds the training set. Rows are sorted by (time, id) so the split is by time: the newest
 * `holdoutFraction` of the rows is the held-out slice, the model never trains on rows later than
 * the ones it is evaluated on. A feature whose present values are all numbers (or booleans, as
 * 0/1) is numeric; any other is categorical (numbers become text).
 *
 * Columns: every feature name of the window but those (recorded in `dropped`) that are
 * - `bad_name`: hold a NUL or a lone surrogate (see UNSERVABLE_NAME);
 * - `no_train_value`: have no value in the training split (null everywhere: typed numeric without
 *   categories, a string feature the model-server then refuses to serve);
 * - `rare`: present in fewer than min(MIN_FEATURE_ROWS, MIN_FEATURE_SHARE × rows) rows;
 * - `over_limit`: past the MAX_FEATURES most frequent.
 * Numbers beyond float32's range are missing (counted in `outOfRange`): XGBoost's DMatrix refused
 * the whole training set for one of them, so every retrain whose window held the row was lost.
 * Feature names are data: read as own keys only, kept in Maps.
 */
export function* datasetSteps(input: readonly LabeledRow[], holdoutFraction: number): Steps<Dataset> {
  const rows = inSplitOrder(input);
  yield;
  const n = rows.length;
  const holdoutRows = holdoutCount(n, holdoutFraction);
  const trainRows = n - holdoutRows;
  // Rows with a value, per name, overall and in the training split.
  const present = new Map<string, number>();
  const presentInTrain = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    const f = rows[i]!.features;
    for (const name of Object.keys(f)) {
      const v = own(f, name);
      if (v === null || v === undefined) {
        if (!present.has(name)) present.set(name, 0);
        continue;
      }
      present.set(name, (present.get(name) ?? 0) + 1);
      if (i < trainRows) presentInTrain.set(name, (presentInTrain.get(name) ?? 0) + 1);
    }
    if ((i & 1023) === 1023) yield;
  }
  // XGBoost cannot train on no feature at all (predictions logged with scores only): the worker
  // crashed on it, a failure the trainer retried for ever.
  if (n > 0 && present.size === 0) {
    throw new DriftlineError(
      'VALIDATION_FAILED',
      `none of the ${n} labeled predictions carries a feature: there is nothing to train on (log the features with each prediction)`,
    );
  }
  const minPresent = Math.min(MIN_FEATURE_ROWS, Math.ceil(MIN_FEATURE_SHARE * n));
  const dropped = new DropLog();
  const kept: Array<{ name: string; present: number }> = [];
  for (const [name, count] of present) {
    if (UNSERVABLE_NAME.test(name)) dropped.add('bad_name', name);
    else if ((presentInTrain.get(name) ?? 0) === 0) dropped.add('no_train_value', name);
    else if (count < minPresent) dropped.add('rare', name);
    else kept.push({ name, present: count });
  }
  yield;
  const reserved = new Set<string>(Object.values(COLUMNS));
  const clash = kept.find((k) => reserved.has(k.name));
  if (clash !== undefined) throw new DriftlineError('VALIDATION_FAILED', `feature name ${clash.name} is reserved`);
  // The most frequent first (ties by name, so the choice is the same on every retry).
  kept.sort((a, b) => b.present - a.present || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const k of kept.slice(MAX_FEATURES)) dropped.add('over_limit', k.name);
  const names = kept
    .slice(0, MAX_FEATURES)
    .map((k) => k.name)
    .sort();
  if (n > 0 && names.length === 0) {
    throw new DriftlineError(
      'VALIDATION_FAILED',
      `none of the ${present.size} feature names of the ${n} labeled predictions can train (${dropped.summary()}; e.g. ${dropped.examples.join(', ')})`,
    );
  }
  if (n * names.length > MAX_DATASET_CELLS) {
    throw new DriftlineError(
      'VALIDATION_FAILED',
      `the ${n} labeled predictions carry ${names.length} feature names present in ${minPresent} rows or more: ${n} × ${names.length} is more than ${MAX_DATASET_CELLS} cells (shorten DRIFTLINE_TRAINER_MAX_ROWS or the training window)`,
    );
  }
  yield;
  let outOfRange = 0;
  const features: FeatureColumn[] = [];
  for (const name of names) {
    let numeric = true;
    for (let i = 0; i < n && numeric; i++) {
      const v = own(rows[i]!.features, name);
      numeric = v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean';
      if ((i & 4095) === 4095) yield;
    }
    if (numeric) {
      const values = new Float64Array(n);
      for (let i = 0; i < n; i++) {
        const v = own(rows[i]!.features, name);
        let x = typeof v === 'number' ? v : typeof v === 'boolean' ? (v ? 1 : 0) : Number.NaN;
        // Beyond float32 (what XGBoost stores) a number is missing: counted, then read as NaN.
        if (!Number.isNaN(x) && missingAsFloat32(x)) {
          x = Number.NaN;
          outOfRange++;
        }
        values[i] = x;
        if ((i & 4095) === 4095) yield;
      }
      features.push({ name, kind: 'numeric', values });
    } else {
      const values = new Array<string | null>(n);
      for (let i = 0; i < n; i++) {
        const v = own(rows[i]!.features, name);
        // Booleans as live events key them (`booleanCategory`), so the profile matches the stream.
        values[i] = v === null || v === undefined ? null : typeof v === 'boolean' ? booleanCategory(v) : String(v);
        if ((i & 4095) === 4095) yield;
      }
      features.push({ name, kind: 'categorical', values });
    }
    yield;
  }
  const holdout = new Uint8Array(n);
  for (let i = trainRows; i < n; i++) holdout[i] = 1;
  return {
    rows: n,
    time: Float64Array.from(rows, (r) => r.time),
    label: Float64Array.from(rows, (r) => r.label),
    currentScore: Float64Array.from(rows, (r) => r.prediction),
    holdout,
    features,
    trainRows,
    holdoutRows,
    dropped: { counts: { ...dropped.counts }, examples: dropped.examples },
    outOfRange,
  };
}

/** {@link datasetSteps} at once (tests; the service runs the steps with runYielding). */
export function buildDataset(input: readonly LabeledRow[], holdoutFraction: number): Dataset {
  return runNow(datasetSteps(input, holdoutFraction));
}

/**
 * A Float64 column straight from its values, NaN as null (a validity bitmap), without Arrow's
 * per-value builder (`vectorFromArray`), which costs seconds per million values on the main thread.
 */
function* numericVector(values: Float64Array): Steps<Vector<Float64>> {
  const validity = new Uint8Array((values.length + 7) >> 3);
  let nullCount = 0;
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i])) nullCount++;
    else validity[i >> 3]! |= 1 << (i & 7);
    if ((i & 65535) === 65535) yield;
  }
  const data = makeData({
    type: new Float64(),
    length: values.length,
    nullCount,
    nullBitmap: nullCount === 0 ? null : validity,
    data: values,
  });
  return makeVector(data);
}

/** A Utf8 column from its offsets and UTF-8 bytes, null as null (same reason as {@link numericVector}). */
function* utf8Vector(values: ReadonlyArray<string | null>): Steps<Vector<Utf8>> {
  const encoder = new TextEncoder();
  const offsets = new Int32Array(values.length + 1);
  const validity = new Uint8Array((values.length + 7) >> 3);
  const parts: Uint8Array[] = [];
  let total = 0;
  let nullCount = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) nullCount++;
    else {
      validity[i >> 3]! |= 1 << (i & 7);
      const bytes = encoder.encode(v);
      parts.push(bytes);
      total += bytes.length;
    }
    offsets[i + 1] = total;
    if ((i & 4095) === 4095) yield;
  }
  const data = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    data.set(p, at);
    at += p.length;
  }
  return makeVector(
    makeData({
      type: new Utf8(),
      length: values.length,
      nullCount,
      nullBitmap: nullCount === 0 ? null : validity,
      valueOffsets: offsets,
      data,
    }),
  );
}

/**
 * The dataset as an Arrow IPC file (what the Python worker reads with pyarrow). The schema is built
 * from a list, not from an object keyed by name: a feature named `__proto__` set the object's
 * prototype, and apache-arrow then recursed until the stack overflowed.
 */
export function* arrowSteps(ds: Dataset): Steps<Uint8Array> {
  const columns: Array<readonly [string, Vector<DataType>]> = [
    [COLUMNS.time, makeVector(ds.time)],
    [COLUMNS.label, makeVector(ds.label)],
    [COLUMNS.currentScore, makeVector(ds.currentScore)],
    [COLUMNS.holdout, makeVector(ds.holdout)],
  ];
  for (const f of ds.features) {
    const vector: Vector<DataType> =
      f.kind === 'numeric'
        ? yield* numericVector(f.values as Float64Array)
        : yield* utf8Vector(f.values as ReadonlyArray<string | null>);
    columns.push([f.name, vector]);
    yield;
  }
  const fields = columns.map(([name, v]) => new Field(name, v.type, v.nullable));
  const schema = new Schema(fields);
  const batch = new RecordBatch(
    schema,
    makeData({ type: new Struct(fields), length: ds.rows, nullCount: 0, children: columns.map(([, v]) => v.data[0]!) }),
  );
  return tableToIPC(new Table(schema, batch), 'file');
}

/** {@link arrowSteps} at once. */
export function datasetToArrow(ds: Dataset): Uint8Array {
  return runNow(arrowSteps(ds));
}

/** Parses the `features` JSON of a labeled_predictions row; anything but an object is a validation error. */
export function parseFeatures(text: string, predictionId: string): Record<string, FeatureValue> {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    value = undefined;
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new DriftlineError('VALIDATION_FAILED', `labeled_predictions ${predictionId}: features is not a JSON object`);
  }
  const out: Record<string, FeatureValue> = {};
  for (const [k, v] of Object.entries(value)) {
    // setOwn: a feature named __proto__ (a CSV column) is a column like any other; an assignment
    // dropped it, or (its value null) set the row's prototype.
    setOwn(out, k, typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean' ? v : null);
  }
  return out;
}
