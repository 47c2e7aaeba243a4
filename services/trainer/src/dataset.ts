import { DriftlineError, setOwn } from '@driftline/core';
import type { FeatureValue } from '@driftline/schemas';
import { type DataType, Float64, makeData, makeVector, Table, tableToIPC, Utf8, type Vector } from 'apache-arrow';

/** One row of `labeled_predictions` as the trainer reads it. */
export interface LabeledRow {
  readonly predictionId: string;
  /** Prediction event time, epoch ms. */
  readonly time: number;
  /** The features as they were at prediction time (the JSON stored with the prediction). */
  readonly features: Readonly<Record<string, FeatureValue>>;
  /** The serving model's score for this row (evaluates the current model on the same slice). */
  readonly prediction: number;
  readonly label: number;
}

export interface FeatureColumn {
  readonly name: string;
  readonly kind: 'numeric' | 'categorical';
  /** Numbers (NaN = missing) for numeric columns, strings (null = missing) for categorical ones. */
  readonly values: Float64Array | ReadonlyArray<string | null>;
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
}

/** Reserved column names in the Arrow file; features with these names are refused. */
export const COLUMNS = {
  label: '__label__',
  currentScore: '__current_score__',
  holdout: '__holdout__',
  time: '__time__',
} as const;

/**
 * Most feature columns × rows a dataset builds (2 GB as numbers). The columns are the union of every
 * prediction's feature names: one prediction carrying tens of thousands of keys (ids as names)
 * made the trainer allocate a column per name for every row — gigabytes, minutes of blocking,
 * then an out-of-memory kill, again on every redelivery.
 */
export const MAX_DATASET_CELLS = 250_000_000;

/**
 * Builds the training set. Rows are sorted by (time, id) so the split is by time: the newest
 * `holdoutFraction` of the rows is the held-out slice, the model never trains on rows later than
 * the ones it is evaluated on. A feature whose present values are all numbers (or booleans, as
 * 0/1) is numeric; any other is categorical (numbers become text).
 */
export function buildDataset(input: readonly LabeledRow[], holdoutFraction: number): Dataset {
  const rows = [...input].sort((a, b) => a.time - b.time || (a.predictionId < b.predictionId ? -1 : 1));
  const n = rows.length;
  const names = [...new Set(rows.flatMap((r) => Object.keys(r.features)))].sort();
  // XGBoost cannot train on no feature at all (predictions logged with scores only): the worker
  // crashed on it, a failure the trainer retried for ever.
  if (n > 0 && names.length === 0) {
    throw new DriftlineError(
      'VALIDATION_FAILED',
      `none of the ${n} labeled predictions carries a feature: there is nothing to train on (log the features with each prediction)`,
    );
  }
  if (n * names.length > MAX_DATASET_CELLS) {
    throw new DriftlineError(
      'VALIDATION_FAILED',
      `the ${n} labeled predictions carry ${names.length} distinct feature names: ${n} × ${names.length} is more than ${MAX_DATASET_CELLS} cells (a prediction whose feature names are ids? shorten DRIFTLINE_TRAINER_MAX_ROWS or the training window)`,
    );
  }
  const reserved = new Set<string>(Object.values(COLUMNS));
  const clash = names.find((name) => reserved.has(name));
  if (clash !== undefined) throw new DriftlineError('VALIDATION_FAILED', `feature name ${clash} is reserved`);
  const features: FeatureColumn[] = names.map((name) => {
    const numeric = rows.every((r) => {
      const v = r.features[name];
      return v === null || v === undefined || typeof v === 'number' || typeof v === 'boolean';
    });
    if (numeric) {
      const values = new Float64Array(n);
      rows.forEach((r, i) => {
        const v = r.features[name];
        values[i] = typeof v === 'number' ? v : typeof v === 'boolean' ? (v ? 1 : 0) : Number.NaN;
      });
      return { name, kind: 'numeric', values };
    }
    return {
      name,
      kind: 'categorical',
      values: rows.map((r) => {
        const v = r.features[name];
        return v === null || v === undefined ? null : String(v);
      }),
    };
  });
  const holdoutRows = n === 0 ? 0 : Math.min(n - 1, Math.max(1, Math.round(n * holdoutFraction)));
  const holdout = new Uint8Array(n);
  for (let i = n - holdoutRows; i < n; i++) holdout[i] = 1;
  return {
    rows: n,
    time: Float64Array.from(rows, (r) => r.time),
    label: Float64Array.from(rows, (r) => r.label),
    currentScore: Float64Array.from(rows, (r) => r.prediction),
    holdout,
    features,
    trainRows: n - holdoutRows,
    holdoutRows,
  };
}

/**
 * A Float64 column straight from its values, NaN as null (a validity bitmap), without Arrow's
 * per-value builder (`vectorFromArray`), which costs seconds per million values on the main thread.
 */
function numericVector(values: Float64Array): Vector<Float64> {
  const validity = new Uint8Array((values.length + 7) >> 3);
  let nullCount = 0;
  for (let i = 0; i < values.length; i++) {
    if (Number.isNaN(values[i])) nullCount++;
    else validity[i >> 3]! |= 1 << (i & 7);
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
function utf8Vector(values: ReadonlyArray<string | null>): Vector<Utf8> {
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

/** The dataset as an Arrow IPC file (what the Python worker reads with pyarrow). */
export function datasetToArrow(ds: Dataset): Uint8Array {
  const columns: Record<string, Vector<DataType>> = {
    [COLUMNS.time]: makeVector(ds.time),
    [COLUMNS.label]: makeVector(ds.label),
    [COLUMNS.currentScore]: makeVector(ds.currentScore),
    [COLUMNS.holdout]: makeVector(ds.holdout),
  };
  for (const f of ds.features) {
    columns[f.name] =
      f.kind === 'numeric'
        ? numericVector(f.values as Float64Array)
        : utf8Vector(f.values as ReadonlyArray<string | null>);
  }
  return tableToIPC(new Table(columns), 'file');
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
