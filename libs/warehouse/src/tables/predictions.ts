import { cutText, DriftlineError } from '@driftline/core';
import {
  MISSING_SEGMENT,
  OTHER_SEGMENT,
  sampleShare,
  type WindowColumns,
  WindowColumnsBuilder,
  type WindowRef,
} from '@driftline/performance';
import type { LabelDelays } from '@driftline/policy';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import type { ClickHouse } from '../client.js';
import { arrayElementUrlBytes, chunksByUrlBytes } from '../lookup-chunks.js';
import type { Migration } from '../migrate.js';
import { chTime } from '../time.js';

/**
 * Joined and expired predictions, ReplacingMergeTree keyed by prediction (time + id never change
 * for a prediction), so a replay writes the same key.
 */
export const predictionsMigration: Migration = {
  id: '0200_labeled_predictions',
  statements: [
    `CREATE TABLE IF NOT EXISTS {db}.labeled_predictions (
      model LowCardinality(String),
      model_version LowCardinality(String),
      prediction_id String,
      entity_id String,
      prediction_time DateTime64(3, 'UTC'),
      label_time DateTime64(3, 'UTC'),
      features String COMMENT 'JSON object: the features as they were at prediction time',
      prediction Float64,
      predicted_class Nullable(String),
      label Float64,
      joined_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(prediction_time)
    ORDER BY (model, model_version, prediction_time, prediction_id)`,
    `CREATE TABLE IF NOT EXISTS {db}.unlabeled_predictions (
      model LowCardinality(String),
      model_version LowCardinality(String),
      prediction_id String,
      entity_id String,
      prediction_time DateTime64(3, 'UTC'),
      deadline DateTime64(3, 'UTC'),
      expired_at DateTime64(3, 'UTC'),
      features String,
      prediction Float64,
      predicted_class Nullable(String)
    ) ENGINE = ReplacingMergeTree
    PARTITION BY toYYYYMM(prediction_time)
    ORDER BY (model, model_version, prediction_time, prediction_id)`,
  ],
};

/**
 * 0520: what a paired comparison of versions needs. `role` (production, canary; rows written
 * before read as production), `scores` (every version the model server scored the instance with,
 * by version, the answered one included; empty when the producer sent none) and, on labeled rows,
 * `label_value` (the label's business value). ADD COLUMN IF NOT EXISTS: existing rows read the
 * defaults, nothing is rewritten.
 */
export const pairedPredictionsMigration: Migration = {
  id: '0520_labeled_predictions_paired',
  statements: [
    ...['labeled_predictions', 'unlabeled_predictions'].flatMap((table) => [
      `ALTER TABLE {db}.${table} ADD COLUMN IF NOT EXISTS role LowCardinality(String) DEFAULT 'production'
         COMMENT 'the answering version''s role: production or canary'`,
      `ALTER TABLE {db}.${table} ADD COLUMN IF NOT EXISTS scores Map(String, Float64)
         COMMENT 'every version scored on the instance, by version (answered one included)'`,
    ]),
    `ALTER TABLE {db}.labeled_predictions ADD COLUMN IF NOT EXISTS label_value Nullable(Float64)
       COMMENT 'the label''s business value (labels.v1 value), null when unknown'`,
  ],
};

/**
 * 0660: a bloom filter of `prediction_id` on both tables, for `writtenPredictions`: the key starts
 * with (model, model_version, prediction_time), so a lookup by id alone read every granule of the
 * model (a billion-row model would pass the call timeout: retried for ever, a stalled partition).
 * New parts get the index (and parts merged from old ones); parts written before stay unindexed
 * and read as before until they merge or expire — no MATERIALIZE INDEX here: a mutation of every
 * part of the two largest tables, started by whichever process migrates first (see the README).
 */
export const predictionIdIndexMigration: Migration = {
  id: '0660_prediction_id_index',
  statements: ['labeled_predictions', 'unlabeled_predictions'].map(
    (table) =>
      `ALTER TABLE {db}.${table} ADD INDEX IF NOT EXISTS prediction_id_bloom prediction_id TYPE bloom_filter(0.001) GRANULARITY 1`,
  ),
};

/**
 * 0700: `unscored` (predictions.v1's: the versions the model server was to score an instance with
 * but could not, by version, with the role each held), so a paired comparison counts those
 * instances against the version instead of never seeing them. Existing rows read an empty map.
 */
export const unscoredVersionsMigration: Migration = {
  id: '0700_unscored_versions',
  statements: ['labeled_predictions', 'unlabeled_predictions'].map(
    (table) =>
      `ALTER TABLE {db}.${table} ADD COLUMN IF NOT EXISTS unscored Map(String, LowCardinality(String))
         COMMENT 'versions that were to score the instance and could not, by version, with their role'`,
  ),
};

/** Most rows one {@link PredictionStore.readPairs} call returns. */
export const MAX_PAIRS_PER_READ = 1_000_000;

/**
 * A labeled prediction scored by two versions: the label and both versions' scores on the same
 * instance (the answered version's score is one of them, or neither when both were shadows). A
 * score is null when that version was to score the instance and could not (the row's `unscored`).
 */
export interface PairedOutcome {
  readonly predictionId: string;
  readonly predictionTime: number;
  readonly labelTime: number;
  /**
   * When the label-joiner joined the row (`joined_at`, its wall clock): the pairs' order. A
   * redelivery before the joiner's ack writes the row again with the same `joined_at`.
   */
  readonly joinedAt: number;
  readonly label: number;
  readonly incumbent: number | null;
  readonly challenger: number | null;
  /** The version that answered (its row's model_version). */
  readonly answeredVersion: string;
  /** The answering version's role: production or canary. */
  readonly role: string;
}

/**
 * Rows scored by both versions since `from` that a paired comparison of probabilities cannot use,
 * so never among the pairs: counted, not dropped in silence.
 */
export interface UnusablePairs {
  /** A label other than 0 or 1 (or NaN). */
  readonly labelNotBinary: number;
  /**
   * Label 0 or 1, but a score outside [0, 1] (or NaN): a model whose objective is not a
   * probability, e.g. XGBoost `binary:logitraw` margins.
   */
  readonly scoreNotProbability: number;
  /**
   * In a shadow's or a watch's comparison: rows where one of the versions could not score
   * (`unscored`); only a canary's comparison charges those (see its `readPairs`).
   */
  readonly unscored: number;
}

/** {@link PredictionStore.readPairsCounted}: the pairs, and the rows left out of them. */
export interface PairRead {
  readonly pairs: PairedOutcome[];
  readonly unusable: UnusablePairs;
  /**
   * A read by closed arrival bucket ({@link PairQuery.arrival}): the earliest prediction time
   * (ms) among the pairs joined at or after its `before` (waiting for their bucket to close);
   * absent when none waits, or without `arrival`.
   */
  readonly waitingFrom?: number;
  /**
   * The newest `joined_at` (ms) of all the usable pairs of the query (since `from`, answered as
   * asked, up to `matureUntil` when given): those read, those beyond `limit`, and with `arrival`
   * those waiting for their bucket to close — every row read by closed bucket was joined before
   * `before`, so the rows read alone never tell that the label-joiner's clock runs ahead of the
   * reader's. Absent when there is none.
   */
  readonly newestJoined?: number;
}

/** A model's event clock: its newest label time, and its newest prediction time that has a label. */
export interface LabelClock {
  readonly labelTime: number;
  readonly predictionTime: number;
}

export interface PairQuery {
  readonly model: string;
  readonly incumbent: string;
  readonly challenger: string;
  /** Prediction time (ms), inclusive. */
  readonly from: number;
  /** At most this many rows, 1 to {@link MAX_PAIRS_PER_READ}. */
  readonly limit: number;
  /**
   * Only rows answered by this version (`model_version`) in this role (`role`: production or
   * canary): the requests a comparison is about. The model-controller always names them (a shadow
   * test: production's answers; a canary test: the canary's; a rollback watch: the new
   * production's), so no row is evidence for two stages of a version. Omitted: whatever answered.
   */
  readonly answeredBy?: { readonly version: string; readonly role: string };
  /**
   * A comparison with `label_maturity` (the model-controller's): only rows predicted at or before
   * this (ms, inclusive: the model's label clock − the maturity, whose labels are final), ordered
   * by PREDICTION — (prediction_time, prediction_id) — instead of arrival, so the order depends on
   * no label (labels whose arrival depends on the label put one kind first in arrival order).
   * The count of unusable rows covers the same range.
   */
  readonly matureUntil?: number;
  /**
   * Without `matureUntil` (the model-controller's, with its `arrival_bucket`): only rows joined
   * before `before` (ms, exclusive: every bucket before it closed), ordered by closed arrival
   * bucket — intDiv(joined_at ms, `bucketMs`) — then cityHash64(prediction_id), then prediction id,
   * instead of (joined_at, prediction_id): within a bucket the order depends on no label, so a
   * label delivery sorted by outcome arriving within one bucket is read shuffled. The read grows
   * at its end as `before` moves on, but for rows that become visible after their bucket closed (an
   * insert retried through a joiner or ClickHouse outage across the bucket's end, a joiner whose
   * clock runs behind the reader's): such a row lands at its hash's place inside its bucket, up to
   * a bucket's worth of pairs before the end of a read already made (the model-controller counts
   * them: `late_arrivals_total`). The pairs joined at or after `before` are not read: their
   * earliest prediction time is {@link PairRead.waitingFrom}.
   */
  readonly arrival?: { readonly bucketMs: number; readonly before: number };
}

export interface JoinedRow {
  readonly prediction: PredictionEvent;
  readonly label: LabelEvent;
  readonly joinedAt: number;
}

export interface ExpiredPredictionRow {
  readonly prediction: PredictionEvent;
  readonly deadline: number;
  readonly expiredAt: number;
}

/** A joined row as training reads it; `features` is the JSON text stored at prediction time. */
export interface TrainingRow {
  readonly predictionId: string;
  readonly time: number;
  readonly features: string;
  /** The score of the version that answered (the row's model_version). */
  readonly prediction: number;
  /**
   * With a `baseVersion` asked for: that version's score of the instance (`scores[base]`, or
   * `prediction` when the base version answered), null when it did not score it. Else `prediction`.
   */
  readonly baseScore: number | null;
  readonly label: number;
}

export interface PredictionStore {
  insertJoined(rows: readonly JoinedRow[]): Promise<void>;
  insertExpired(rows: readonly ExpiredPredictionRow[]): Promise<void>;
  /**
   * A performance window's rows as columns (`WindowColumns`): the labeled rows and the expired ones
   * that never got a label. The labeled rows stream into the columns; the expired rows are
   * counted per segment by ClickHouse.
   *
   * `maxRows`: most labeled rows held. A window with more (counted first) holds a deterministic
   * uniform sample of them instead — rows whose `cityHash64(prediction_id) % 2^32` is below a share
   * (`sampleShare` of @driftline/performance), so every instance and recompute keeps the same ones —
   * with its exact counts (`WindowColumns.sampled`: labeled and not-0-or-1 labels, whole and per
   * segment value: per feature the `maxSegments` − 1 first values as computeWindow ranks them when
   * there are more than `maxSegments`, the rest as `__other__`). A read taken past `maxRows` by rows
   * written since the count is counted and read again once; past it again, `sampled.cut`.
   */
  readWindow(
    ref: WindowRef,
    windowMs: number,
    segmentFeatures: readonly string[],
    options?: WindowReadOptions,
  ): Promise<WindowColumns>;
  /**
   * One page of the model's joined rows with from ≤ prediction_time < to and a label of 0 or 1 (the
   * trainer's binary classification: one label of 2 had refused the whole retrain window; the
   * label-joiner counts such labels as invalid), NEWEST first (by
   * (prediction_time, prediction_id) descending), at most `limit`, strictly older than `before`
   * when given (keyset paging: each page is one bounded query, whatever the window holds).
   * `baseVersion`: the version a candidate is gated against; each row's `baseScore` is its score
   * (a window's rows were answered by several versions: a canary, the one before a promotion).
   */
  trainingPage(
    model: string,
    from: number,
    to: number,
    limit: number,
    before?: { readonly time: number; readonly predictionId: string },
    baseVersion?: string,
  ): Promise<TrainingRow[]>;
  /**
   * Labeled rows of `model` whose `scores` hold BOTH versions, answered as `answeredBy` says (when
   * given). A canary's (`answeredBy` role canary) also holds the requests of its share it could not
   * answer (production answered), and a row whose `unscored` names the canary or production beside
   * it, that version's score null (charged in its comparison). Read with no `answeredBy`, any
   * unscored version is a null score. Then with prediction_time >= from, ordered by ARRIVAL — (joined_at, prediction_id) — at
   * most `limit` (deduplicated: FINAL). Shadow rows are never joined, so each instance is one row,
   * keyed by the answered prediction. Only rows the binary comparison can use (label 0 or 1, both
   * scores in [0, 1]): a row it would skip must not take a place under `limit`, or a comparison
   * could never reach its max_labels.
   *
   * Arrival order, because the model-controller replays its sequential test over these rows at
   * every tick: ordered by label time, a label arriving after labels dated later was slotted into
   * the middle, every tick tested another ordering, and the test's error bound no longer held
   * (found by a review). In arrival order a tick's rows extend the last tick's. `joined_at` is the
   * joiner's clock at the join, and a redelivery before its ack writes the same row with the same
   * `joined_at`, so a replay does not move a row. What still can: a row re-joined past the joiner's
   * guards (tombstone, applied-through marker, replay check) gets a new `joined_at`, and FINAL
   * shows the last written; and a row becomes visible at its insert, after its `joined_at` — rows
   * of one joiner instance inserted late (an insert retried through an outage) or stamped by a host
   * whose clock is behind land before rows a tick has already read.
   */
  readPairs(q: PairQuery): Promise<PairedOutcome[]>;
  /**
   * {@link readPairs}, and in the same query the rows it leaves out for being unusable (scored by
   * both versions since `from` and answered as asked, but a label other than 0/1 or a score
   * outside [0, 1]), counted by reason over all of them, not only up to `limit`. They were
   * filtered out and never counted: a model scoring margins (±2.5) had every candidate rejected at
   * max_time with 0 pairs, and the operator saw "no labels".
   */
  readPairsCounted(q: PairQuery): Promise<PairRead>;
  /**
   * `model`'s event clock, from its labelled predictions (paired or not), or undefined when there
   * are none within `notAfter`: per time (label, labelled prediction) the later of the newest at or
   * before `now` (the wall clock) and the LABEL_CLOCK_QUORUM-th newest at or before `notAfter`,
   * counting each prediction once (a row written five times before a merge met the quorum alone). So
   * event time behind the wall clock moves it row by row, as it always did, and time ahead of the
   * wall clock (a replay, the demo's accelerated time, a client's clock) only once that many rows
   * reach it: one row dated ahead had ended a comparison on max_time 50 min early (found by a
   * review); a quorum over every row delayed low-volume models by four labels and dated decisions
   * before their labels (found by the next). The controller's max_time runs on the prediction time.
   * `notAfter` leaves out a time no event may have (µs read as ms, a year 2099).
   */
  labelClock(model: string, now: number, notAfter: number): Promise<LabelClock | undefined>;
  /**
   * Whether `version` of `model` answered any prediction with prediction_time >= `since` (ms): a
   * row whose model_version is it, labelled or expired (unlabeled_predictions), whatever its
   * `scores` (empty for the SDK, outside producers and rows before 0520). One query, each table
   * read on its primary key prefix with LIMIT 1.
   */
  answeredSince(model: string, version: string, since: number): Promise<boolean>;
  /**
   * The label delays (label_time − prediction_time) of `model`'s labelled predictions made at or
   * after `since` (ms), any version, by binary label: counts and approximate medians (labels other
   * than 0 and 1 left out). For the controller's warning that one class's labels arrive much later
   * (labelOrderBiased). One query on the model's key prefix, pruned by prediction time.
   */
  labelDelays(model: string, since: number): Promise<LabelDelays>;
  /**
   * Which of these predictions, by (model, prediction id), already have a row in
   * `labeled_predictions` or `unlabeled_predictions`: the label-joiner skips a dead letter replayed
   * to its topic (`driftline dlq replay`) whose prediction it joined or expired long ago. One query
   * per chunk of ids (`chunksByUrlBytes`: they travel in the URL); none for an empty list.
   */
  writtenPredictions(refs: readonly PredictionRef[]): Promise<PredictionRef[]>;
  /**
   * {@link writtenPredictions} with what the joiner decides by: whether the row is labeled, and
   * the prediction's time. Each look-up may bound the prediction time its row can have
   * (`from`/`to`, ms, inclusive): the key starts with (model, version, time), so a bound keeps the
   * read to the granules of that time, where the id's bloom filter alone passes about 40% of the
   * model's granules for 500 ids (1 − 0.999^500). One query per chunk of ids, bounded by the
   * chunk's earliest `from` and latest `to` (unbounded where a look-up has none); a row outside its
   * own look-up's bounds is left out. One result per (model, id, prediction time) found: an id
   * a model used again has one per prediction, labeled when either table's row at that time is.
   */
  writtenPredictionRows(lookups: readonly WrittenLookup[]): Promise<WrittenPrediction[]>;
}

/** How many labelled rows must reach a time before the model's event clock does (labelClock). */
export const LABEL_CLOCK_QUORUM = 5;

/** A prediction by its key in the join: the model and its prediction id. */
export interface PredictionRef {
  readonly model: string;
  readonly predictionId: string;
}

/** A prediction to look up, with the prediction times (ms, inclusive) its row can have; a side left out is unbounded. */
export interface WrittenLookup extends PredictionRef {
  readonly from?: number;
  readonly to?: number;
}

/** A prediction that has a row, and which (one per prediction time of a (model, id)). */
export interface WrittenPrediction extends PredictionRef {
  /** In `labeled_predictions` (joined); otherwise only in `unlabeled_predictions` (expired). */
  readonly labeled: boolean;
  /** `prediction_time`, ms. */
  readonly predictionTime: number;
}

/**
 * Longest segment value, in characters: a longer one is cut (in ClickHouse, before it is sent).
 * String features may hold 65,536 characters: a window's page of 50,000 rows carried gigabytes, and
 * every distinct value stayed in the window's dictionary and in performance_windows.segment.
 */
export const MAX_SEGMENT_CHARS = 256;

/** A raw JSON value from JSONExtractRaw (cut to MAX_SEGMENT_CHARS + 2) as a segment name. */
export function segmentValue(raw: string): string {
  if (raw === '' || raw === 'null') return MISSING_SEGMENT;
  if (raw.startsWith('"')) {
    try {
      return cutText(String(JSON.parse(raw)), MAX_SEGMENT_CHARS);
    } catch {
      return cutText(raw.slice(1), MAX_SEGMENT_CHARS); // a string cut in ClickHouse: its text, unquoted
    }
  }
  return cutText(raw, MAX_SEGMENT_CHARS);
}

/** The prediction's own columns, shared by labeled_predictions and unlabeled_predictions. */
function predictionColumns(p: PredictionEvent) {
  return {
    model: p.model,
    model_version: p.model_version,
    prediction_id: p.prediction_id,
    entity_id: p.entity_id,
    prediction_time: chTime(p.event_time),
    features: JSON.stringify(p.features),
    prediction: p.prediction,
    predicted_class: p.predicted_class ?? null,
    role: p.role ?? 'production',
    scores: p.scores ?? {},
    unscored: p.unscored ?? {},
  };
}

export interface WindowReadOptions {
  /** Most labeled rows a read holds; past it, a sample (see readWindow). */
  readonly maxRows?: number;
  /**
   * With `maxRows`: segments per feature the caller keeps (computeWindow's `maxSegments`, the rest
   * `__other__`). A sampled window's exact counts are read for these values only. Default 20.
   */
  readonly maxSegments?: number;
}

/** What the steps of one readWindow share: its parameters and SQL fragments. */
interface WindowQuery {
  readonly params: Record<string, unknown>;
  readonly segs: readonly string[];
  readonly segArray: string;
  readonly where: string;
  readonly labeledTable: string;
}

/** One attempt's read: the builder (with the exact counts when sampled), the share, the values kept. */
interface SamplePlan {
  readonly window: WindowColumnsBuilder;
  readonly share: number | undefined;
  /** Per segment feature, the raw values kept as segments of their own (undefined: all). */
  readonly known: ReadonlyArray<ReadonlySet<string> | undefined>;
  /** Labeled rows counted (0 when not counted: no `maxRows`). */
  readonly counted: number;
}

/** Segment values of raw ones, those not kept (`known`, by raw value) as `__other__`. */
function foldSegments(raw: readonly string[], known: SamplePlan['known']): string[] {
  return raw.map((r, f) => {
    const values = known[f];
    return values === undefined || values.has(r) ? segmentValue(r) : OTHER_SEGMENT;
  });
}

/** readWindow's `maxSegments` when none is given: DRIFTLINE_JOINER_MAX_SEGMENTS' default. */
const DEFAULT_READ_SEGMENTS = 20;

/** Labeled rows per query of a window's read: each query and its result stay bounded, whatever the window holds. */
export const WINDOW_PAGE_ROWS = 50_000;

export class ClickHousePredictionStore implements PredictionStore {
  constructor(
    private readonly ch: ClickHouse,
    /** Labeled rows per query of readWindow (smaller in tests, to cross pages). */
    private readonly windowPageRows = WINDOW_PAGE_ROWS,
  ) {}

  insertJoined(rows: readonly JoinedRow[]): Promise<void> {
    return this.ch.insert(
      'labeled_predictions',
      rows.map((r) => ({
        ...predictionColumns(r.prediction),
        label_time: chTime(r.label.event_time),
        label: r.label.label,
        label_value: r.label.value ?? null,
        joined_at: chTime(r.joinedAt),
      })),
    );
  }

  insertExpired(rows: readonly ExpiredPredictionRow[]): Promise<void> {
    return this.ch.insert(
      'unlabeled_predictions',
      rows.map((r) => ({
        ...predictionColumns(r.prediction),
        deadline: chTime(r.deadline),
        expired_at: chTime(r.expiredAt),
      })),
    );
  }

  /**
   * Reads the deduplicated tables (FINAL): the labeled rows, and the expired ones that never got a
   * label (a prediction replayed after its tombstone vanished could be in both; the labeled row wins).
   */
  async readWindow(
    ref: WindowRef,
    windowMs: number,
    segmentFeatures: readonly string[],
    options: WindowReadOptions = {},
  ): Promise<WindowColumns> {
    const params: Record<string, unknown> = {
      model: ref.model,
      version: ref.modelVersion,
      start: ref.windowStart,
      end: ref.windowStart + windowMs,
      limit: this.windowPageRows,
    };
    const segs = segmentFeatures.map((f, i) => {
      params[`f${i}`] = f;
      return `substringUTF8(JSONExtractRaw(features, {f${i}:String}), 1, ${MAX_SEGMENT_CHARS + 2})`;
    });
    const segArray = segs.length === 0 ? "CAST([], 'Array(String)')" : `[${segs.join(', ')}]`;
    const where = `model = {model:String} AND model_version = {version:String}
      AND prediction_time >= fromUnixTimestamp64Milli({start:Int64}, 'UTC')
      AND prediction_time < fromUnixTimestamp64Milli({end:Int64}, 'UTC')`;
    const labeledTable = this.ch.table('labeled_predictions');
    const q: WindowQuery = { params, segs, segArray, where, labeledTable };
    const maxRows = options.maxRows;
    // Counted first (one aggregate): a window over the bound is read as a sample, with its exact
    // counts. Read whole, a window larger than the process's memory killed the label-joiner, and
    // the restarted joiner read it again first, and so on (a crash loop of every model's labels).
    let plan: SamplePlan =
      maxRows === undefined
        ? { window: new WindowColumnsBuilder(segmentFeatures.length), share: undefined, known: [], counted: 0 }
        : await this.planSample(q, maxRows, options.maxSegments ?? DEFAULT_READ_SEGMENTS, undefined);
    let overflow = await this.readLabeled(q, plan, maxRows);
    if (overflow && maxRows !== undefined) {
      // Rows written since the count took the read past the bound: counted again and read once
      // more as a sample of the window as it is now, planned for as many rows again arriving during
      // the read (the earliest rows up to the bound, kept before, were no uniform sample: 300 rows
      // joined after a count of 4,990 had published the first 5,000 by time, unflagged).
      const first = plan.counted;
      plan = await this.planSample(q, maxRows, options.maxSegments ?? DEFAULT_READ_SEGMENTS, first);
      overflow = await this.readLabeled(q, plan, maxRows);
      // Past the bound again: the rows held are the sample's earliest, not a uniform sample; the
      // window's metrics are void this time (its counts exact), the next recompute tries again.
      if (overflow) plan.window.markCut();
    }
    const { window, known } = plan;
    const expired = await this.ch.select<{ segments: string[]; n: number | string }>(
      `SELECT ${segArray} AS segments, count() AS n FROM ${this.ch.table('unlabeled_predictions')} FINAL
       WHERE ${where} AND (prediction_id, prediction_time) NOT IN (SELECT prediction_id, prediction_time FROM ${labeledTable} WHERE ${where})
       GROUP BY segments`,
      params,
    );
    for (const r of expired) window.addExpired(foldSegments(r.segments, known), Number(r.n));
    return window.build();
  }

  /**
   * The window's labeled rows counted (whole and, for each segment feature, its most frequent
   * values) and the sample's share: a builder holding the exact counts when the window is over
   * `maxRows`. `previous`: the count of an earlier attempt whose read overflowed (if any) — the
   * rows that arrived since are expected again during this read, and the window is sampled in any
   * case (it was seen over the bound).
   */
  private async planSample(
    q: WindowQuery,
    maxRows: number,
    maxSegments: number,
    previous: number | undefined,
  ): Promise<SamplePlan> {
    const { params, segs, where, labeledTable } = q;
    const window = new WindowColumnsBuilder(segs.length);
    const known: Array<ReadonlySet<string> | undefined> = segs.map(() => undefined);
    const [total] = await this.ch.select<{ n: number | string; bad: number | string }>(
      `SELECT count() AS n, countIf(label NOT IN (0, 1)) AS bad FROM ${labeledTable} FINAL WHERE ${where}`,
      params,
    );
    const n = Number(total?.n ?? 0);
    const expected = previous === undefined ? n : Math.max(n + Math.max(0, n - previous), maxRows + 1);
    const share = sampleShare(expected, maxRows);
    if (share === undefined) return { window, share, known, counted: n };
    const notClass = Number(total?.bad ?? 0);
    window.setExactTotals(n, notClass);
    const unlabeled = this.ch.table('unlabeled_predictions');
    for (const [f, seg] of segs.entries()) {
      // The values ranked as computeWindow ranks segments (boundSegments: labeled + expired rows,
      // then the value), only the first maxSegments + 1 returned: enough to know whether the
      // feature has more values than segments. Every value had been returned (up to the row bound,
      // a million objects: a segment feature with a value per row took more memory than the read
      // the bound replaced).
      const counted = await this.ch.select<{ value: string; n: number | string; bad: number | string }>(
        `SELECT value, sum(l) AS n, sum(b) AS bad FROM (
           SELECT ${seg} AS value, count() AS l, countIf(label NOT IN (0, 1)) AS b, 0 AS e
           FROM ${labeledTable} FINAL WHERE ${where} GROUP BY value
           UNION ALL
           SELECT ${seg} AS value, 0 AS l, 0 AS b, count() AS e
           FROM ${unlabeled} FINAL
           WHERE ${where} AND (prediction_id, prediction_time) NOT IN (SELECT prediction_id, prediction_time FROM ${labeledTable} WHERE ${where})
           GROUP BY value)
         GROUP BY value ORDER BY sum(l) + sum(e) DESC, value LIMIT {k:UInt32}`,
        { ...params, k: maxSegments + 1 },
      );
      // More values than segments: the first maxSegments − 1 kept, the rest `__other__` (in the
      // counts, the sample and the expired rows alike), as boundSegments folds them.
      const kept = counted.length > maxSegments ? counted.slice(0, Math.max(0, maxSegments - 1)) : counted;
      let [restN, restBad] = [n, notClass];
      for (const v of kept) {
        window.addExactCounts(f, segmentValue(v.value), Number(v.n), Number(v.bad));
        restN -= Number(v.n);
        restBad -= Number(v.bad);
      }
      if (kept.length < counted.length) {
        // By raw value: two raw values of one segment (`"1"` and `1`) go the same way in the counts
        // and in the rows.
        known[f] = new Set(kept.map((v) => v.value));
        if (restN > 0) window.addExactCounts(f, OTHER_SEGMENT, restN, Math.max(0, restBad));
      }
    }
    return { window, share, known, counted: n };
  }

  /**
   * The labeled rows (the sample's when `plan.share`) into `plan.window`, at most `maxRows`; true
   * when rows were left past them (rows written since the count).
   */
  private async readLabeled(q: WindowQuery, plan: SamplePlan, maxRows: number | undefined): Promise<boolean> {
    const { params, segArray, where, labeledTable } = q;
    const { window, share, known } = plan;
    const sampleWhere = share === undefined ? '' : 'AND cityHash64(prediction_id) % 4294967296 < {share:UInt64}';
    // Keyset pages in the table's order, each one bounded query: a window of millions of rows read
    // at once had held its whole JSON text and an object of hundreds of bytes per row.
    let after: { t: number; id: string } | undefined;
    let held = 0;
    let overflow = false;
    for (;;) {
      let count = 0;
      let last: { t: number; id: string } | undefined;
      await this.ch.selectEach(
        `SELECT prediction, label, ${segArray}, toUnixTimestamp64Milli(prediction_time), prediction_id, label_value
         FROM ${labeledTable} FINAL WHERE ${where} ${sampleWhere}
         ${after === undefined ? '' : "AND (prediction_time, prediction_id) > (fromUnixTimestamp64Milli({at:Int64}, 'UTC'), {aid:String})"}
         ORDER BY prediction_time, prediction_id
         LIMIT {limit:UInt32}`,
        {
          ...params,
          ...(share === undefined ? {} : { share }),
          ...(after === undefined ? {} : { at: after.t, aid: after.id }),
        },
        (rows) => {
          for (const [prediction, label, segments, t, id, value] of rows as Array<
            [number, number, string[], number, string, number | null]
          >) {
            count++;
            last = { t: Number(t), id };
            // The bound holds whatever the sample's size turned out (rows written since the count).
            if (maxRows !== undefined && held >= maxRows) {
              overflow = true;
              continue;
            }
            const labelValue = value === null ? null : Number(value);
            window.addLabeled(Number(prediction), Number(label), foldSegments(segments, known), labelValue);
            held++;
          }
        },
      );
      if (count < this.windowPageRows || last === undefined || overflow) break;
      after = last;
    }
    return overflow;
  }

  async trainingPage(
    model: string,
    from: number,
    to: number,
    limit: number,
    before?: { readonly time: number; readonly predictionId: string },
    baseVersion?: string,
  ): Promise<TrainingRow[]> {
    // The base version's score: from `scores` (every version the model server scored the instance
    // with), else the answer when the base version gave it, else none (NULL).
    const base =
      baseVersion === undefined
        ? 'prediction'
        : `multiIf(mapContains(scores, {base:String}), toNullable(scores[{base:String}]),
             model_version = {base:String}, toNullable(prediction), NULL)`;
    const rows = await this.ch.select<{
      prediction_id: string;
      t: string | number;
      features: string;
      prediction: number;
      base_score: number | string | null;
      label: number;
    }>(
      `SELECT prediction_id, toUnixTimestamp64Milli(prediction_time) AS t, features, prediction,
         ${base} AS base_score, label
       FROM ${this.ch.table('labeled_predictions')} FINAL
       WHERE model = {model:String}
         AND prediction_time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
         AND prediction_time < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
         AND label IN (0, 1)
         ${before === undefined ? '' : "AND (prediction_time, prediction_id) < (fromUnixTimestamp64Milli({bt:Int64}, 'UTC'), {bid:String})"}
       ORDER BY prediction_time DESC, prediction_id DESC
       LIMIT {limit:UInt32}`,
      {
        model,
        from,
        to,
        limit,
        ...(before === undefined ? {} : { bt: before.time, bid: before.predictionId }),
        ...(baseVersion === undefined ? {} : { base: baseVersion }),
      },
    );
    return rows.map((r) => ({
      predictionId: r.prediction_id,
      time: Number(r.t),
      features: r.features,
      prediction: Number(r.prediction),
      baseScore: r.base_score === null ? null : Number(r.base_score),
      label: Number(r.label),
    }));
  }

  async labelClock(model: string, now: number, notAfter: number): Promise<LabelClock | undefined> {
    const table = this.ch.table('labeled_predictions');
    const within = (bound: string) =>
      `model = {model:String} AND label_time <= fromUnixTimestamp64Milli({${bound}:Int64})
         AND prediction_time <= fromUnixTimestamp64Milli({${bound}:Int64})`;
    // Per time: the newest at or before the wall clock (`past_*`; 1900, the type's least, when
    // there is none), or the quorum-th newest PREDICTION within notAfter when later. Distinct
    // predictions: until a merge, a row written several times (a joiner's redelivery before its
    // ack) is several rows, and five copies of one row dated ahead met the quorum alone (found by a
    // review). Deduplicated (LIMIT 1 BY prediction_id) only among the rows at or after `past_*`:
    // those are the newest rows, so their quorum-th newest is that of all when they hold a quorum,
    // and otherwise the clock is `past_*` itself. Measured on 5M rows of one model (embedded
    // engine): about the cost of the read without it, where FINAL cost ~1.3× and a LIMIT BY over
    // every row ~2× (a full sort instead of a top-N read).
    const past = (column: string) =>
      `(SELECT if(count() = 0, toDateTime64('1900-01-01 00:00:00', 3, 'UTC'), max(${column}))
          FROM ${table} WHERE ${within('now')})`;
    const clock = (column: string, pastAlias: string) =>
      `greatest(toUnixTimestamp64Milli(${pastAlias}),
         (SELECT toUnixTimestamp64Milli(min(t)) FROM (SELECT ${column} AS t FROM ${table}
            WHERE ${within('notAfter')} AND ${column} >= ${pastAlias}
            ORDER BY ${column} DESC LIMIT 1 BY prediction_id LIMIT {quorum:UInt32})))`;
    const [row] = await this.ch.select<{ n: number | string; lt: number | string; pt: number | string }>(
      `WITH ${past('label_time')} AS past_lt, ${past('prediction_time')} AS past_pt
       SELECT count() AS n, ${clock('label_time', 'past_lt')} AS lt, ${clock('prediction_time', 'past_pt')} AS pt
       FROM ${table} WHERE ${within('notAfter')}`,
      { model, now, notAfter, quorum: LABEL_CLOCK_QUORUM },
    );
    if (row === undefined || Number(row.n) === 0) return undefined;
    return { labelTime: Number(row.lt), predictionTime: Number(row.pt) };
  }

  async answeredSince(model: string, version: string, since: number): Promise<boolean> {
    // No FINAL: a duplicate row answers the same. Production answers only: a version's canary
    // answers made after `since` (before the servers switched it to production) said nothing of
    // whether it serves as production (found by a review: a canary row kept a production that never
    // loaded). Rows written before migration 0520 have the column's default, 'production'.
    const answered = (table: string) =>
      `(SELECT 1 FROM ${this.ch.table(table)}
        WHERE model = {model:String} AND model_version = {version:String}
          AND prediction_time >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
          AND role = 'production'
        LIMIT 1)`;
    const rows = await this.ch.select<{ n: number | string }>(
      `SELECT count() AS n FROM (${answered('labeled_predictions')} UNION ALL ${answered('unlabeled_predictions')})`,
      { model, version, since },
    );
    return Number(rows[0]?.n ?? 0) > 0;
  }

  async labelDelays(model: string, since: number): Promise<LabelDelays> {
    // No FINAL: a duplicate row moves a median by nothing that matters for a warning.
    // `cls`, not `label`: an alias named as the column is what WHERE reads (0.5 counted as 0).
    const rows = await this.ch.select<{ cls: number | string; n: number | string; median_ms: number | string }>(
      `SELECT toUInt8(label) AS cls, count() AS n,
              quantile(0.5)(toUnixTimestamp64Milli(label_time) - toUnixTimestamp64Milli(prediction_time)) AS median_ms
         FROM ${this.ch.table('labeled_predictions')}
        WHERE model = {model:String} AND prediction_time >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')
          AND label IN (0, 1)
        GROUP BY cls`,
      { model, since },
    );
    const of = (label: number) => rows.find((r) => Number(r.cls) === label);
    const pos = of(1);
    const neg = of(0);
    return {
      positives: Number(pos?.n ?? 0),
      negatives: Number(neg?.n ?? 0),
      positiveMedianMs: pos === undefined ? Number.NaN : Number(pos.median_ms),
      negativeMedianMs: neg === undefined ? Number.NaN : Number(neg.median_ms),
    };
  }

  async writtenPredictions(refs: readonly PredictionRef[]): Promise<PredictionRef[]> {
    const key = (model: string, id: string) => JSON.stringify([model, id]);
    const wanted = new Map(refs.map((r) => [key(r.model, r.predictionId), r]));
    const rows = await this.writtenPredictionRows([...wanted.values()]);
    // One per ref, though a ref may have rows at several prediction times (an id used again).
    const held = new Set(rows.map((r) => key(r.model, r.predictionId)));
    return [...wanted].flatMap(([k, ref]) => (held.has(k) ? [ref] : []));
  }

  async writtenPredictionRows(lookups: readonly WrittenLookup[]): Promise<WrittenPrediction[]> {
    const key = (model: string, id: string) => JSON.stringify([model, id]);
    const wanted = new Map(lookups.map((r) => [key(r.model, r.predictionId), r]));
    const found: WrittenPrediction[] = [];
    const lookUp = async (chunk: readonly WrittenLookup[]) => {
      const froms = chunk.map((r) => r.from);
      const tos = chunk.map((r) => r.to);
      const from = froms.includes(undefined) ? undefined : Math.min(...(froms as number[]));
      const to = tos.includes(undefined) ? undefined : Math.max(...(tos as number[]));
      const bounds = [
        from === undefined ? '' : "AND prediction_time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')",
        to === undefined ? '' : "AND prediction_time <= fromUnixTimestamp64Milli({to:Int64}, 'UTC')",
      ].join(' ');
      // No FINAL: a ReplacingMergeTree without a deleted flag merges duplicates of a key away, never
      // the last row, so any row is one FINAL shows. The ids' set is filtered to exact pairs below.
      const held = (table: string, labeled: 0 | 1) =>
        `SELECT toString(model) AS model, prediction_id, ${labeled} AS labeled, prediction_time
         FROM ${this.ch.table(table)}
         WHERE model IN {models:Array(String)} ${bounds} AND prediction_id IN {ids:Array(String)}`;
      // Every prediction time of a key, each once: an id a model used again is another prediction,
      // and the earliest alone had hidden a later one from a look-up bounded to the later's time.
      const rows = await this.ch.select<{ model: string; prediction_id: string; labeled: number; pt: number | string }>(
        `SELECT model, prediction_id, max(labeled) AS labeled, toUnixTimestamp64Milli(prediction_time) AS pt
         FROM (${held('labeled_predictions', 1)} UNION ALL ${held('unlabeled_predictions', 0)})
         GROUP BY model, prediction_id, prediction_time`,
        {
          models: [...new Set(chunk.map((r) => r.model))],
          ids: [...new Set(chunk.map((r) => r.predictionId))],
          ...(from === undefined ? {} : { from }),
          ...(to === undefined ? {} : { to }),
        },
      );
      for (const r of rows) {
        const lookup = wanted.get(key(r.model, r.prediction_id));
        const predictionTime = Number(r.pt);
        if (lookup === undefined) continue;
        if (
          (lookup.from !== undefined && predictionTime < lookup.from) ||
          (lookup.to !== undefined && predictionTime > lookup.to)
        ) {
          continue;
        }
        found.push({
          model: lookup.model,
          predictionId: lookup.predictionId,
          labeled: Number(r.labeled) === 1,
          predictionTime,
        });
      }
    };
    // The ids travel in the URL: chunks by their encoded bytes (model names counted with each id,
    // an upper bound of the models' parameter).
    const refBytes = (r: PredictionRef) => arrayElementUrlBytes(r.predictionId) + arrayElementUrlBytes(r.model);
    for (const chunk of chunksByUrlBytes(wanted.values(), refBytes)) await lookUp(chunk);
    return found;
  }

  async readPairs(q: PairQuery): Promise<PairedOutcome[]> {
    return (await this.readPairsCounted(q)).pairs;
  }

  async readPairsCounted(q: PairQuery): Promise<PairRead> {
    if (!Number.isInteger(q.limit) || q.limit < 1 || q.limit > MAX_PAIRS_PER_READ) {
      throw new DriftlineError(
        'BAD_REQUEST',
        `readPairs limit: an integer in [1, ${MAX_PAIRS_PER_READ}], got ${q.limit}`,
      );
    }
    const until = q.matureUntil;
    if (until !== undefined && !(Number.isSafeInteger(until) && until >= 0)) {
      throw new DriftlineError('BAD_REQUEST', `readPairs matureUntil: epoch ms, got ${until}`);
    }
    const arrival = until === undefined ? q.arrival : undefined;
    if (
      arrival !== undefined &&
      !(
        Number.isSafeInteger(arrival.bucketMs) &&
        arrival.bucketMs > 0 &&
        Number.isSafeInteger(arrival.before) &&
        arrival.before >= 0
      )
    ) {
      throw new DriftlineError(
        'BAD_REQUEST',
        `readPairs arrival: a positive bucket and epoch ms, got ${arrival.bucketMs}, ${arrival.before}`,
      );
    }
    // Arrival order by default; by closed arrival bucket, then a hash of the id, with `arrival`;
    // prediction order up to `matureUntil` (see PairQuery.matureUntil, PairQuery.arrival).
    const bucketOrder = (jt: string) => `intDiv(${jt}, {bucket:Int64}), cityHash64(prediction_id), prediction_id`;
    const [order, outerOrder, mature] =
      until !== undefined
        ? [
            'prediction_time, prediction_id',
            'pt, prediction_id',
            "AND prediction_time <= fromUnixTimestamp64Milli({until:Int64}, 'UTC')",
          ]
        : arrival !== undefined
          ? [bucketOrder('toUnixTimestamp64Milli(joined_at)'), bucketOrder('jt'), '']
          : ['joined_at, prediction_id', 'jt, prediction_id', ''];
    // The pairs of buckets not closed yet are not read: only when the first of them was predicted.
    const [closed, waiting] =
      arrival === undefined
        ? ['', 'toUInt64(0)']
        : [
            "AND joined_at < fromUnixTimestamp64Milli({before:Int64}, 'UTC')",
            "joined_at >= fromUnixTimestamp64Milli({before:Int64}, 'UTC')",
          ];
    const table = `${this.ch.table('labeled_predictions')} FINAL`;
    const base = `model = {model:String} AND prediction_time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC') ${mature}`;
    const columns =
      'prediction_id, prediction_time, label_time, joined_at, label, scores, unscored, model_version, role';
    const canary = q.answeredBy?.role === 'canary';
    // The requests the comparison is about: those the version answered in the role, and for a
    // canary also those of its share it could not answer (production answered them; `unscored`
    // names it as canary) — whichever version was production then: a canary outlives a rollback
    // of production, and the version it is now compared with was scored beside the one that
    // answered (the watched one). Reading only the current production's dropped those before the
    // swap: the canary was judged on its easy cases again (found by a review). Two reads (their
    // roles differ, no row is in both); the second reads the model's production rows since `from`,
    // as a shadow's read does.
    const source =
      q.answeredBy === undefined
        ? `SELECT ${columns} FROM ${table} WHERE ${base}`
        : `SELECT ${columns} FROM ${table} WHERE ${base}
             AND model_version = {answeredVersion:String} AND role = {answeredRole:String}` +
          (canary
            ? `
           UNION ALL
           SELECT ${columns} FROM ${table} WHERE ${base}
             AND role = 'production' AND unscored[{answeredVersion:String}] = 'canary'`
            : '');
    const scored = (v: string) => `mapContains(scores, {${v}:String})`;
    const anySide = (v: string) => `(${scored(v)} OR mapContains(unscored, {${v}:String}))`;
    // A side of a pair: the version scored the row, or — in a canary's comparison (charged its
    // worst answer, see runPlan's chargesUnscored), or a read of no comparison — was to and could
    // not: the canary of its share, production beside it. A shadow's or a watch's pairs are scored
    // by both; their rows with an unscored side are counted apart.
    const side = (v: 'incumbent' | 'challenger') =>
      q.answeredBy === undefined
        ? anySide(v)
        : canary
          ? `(${scored(v)} OR unscored[{${v}:String}] = '${v === 'incumbent' ? 'production' : 'canary'}')`
          : scored(v);
    const paired = `${side('incumbent')} AND ${side('challenger')}`;
    const scoreOf = (v: string) => `if(${scored(v)}, toNullable(scores[{${v}:String}]), NULL)`;
    const probability = (v: string) => `(NOT ${scored(v)} OR scores[{${v}:String}] BETWEEN 0 AND 1)`;
    const probabilities = `${probability('incumbent')} AND ${probability('challenger')}`;
    // One statement: the pairs (kind 0; a row the test cannot use never takes a place under the
    // limit), then one row (kind 1) counting the rows left out, by reason. (Aliases unlike the
    // columns: ClickHouse reads a column name as the alias that shadows it.)
    const rows = await this.ch.select<{
      kind: number;
      prediction_id: string;
      pt: string | number;
      lt: string | number;
      jt: string | number;
      label: number;
      incumbent: number | null;
      challenger: number | null;
      model_version: string;
      role: string;
      bad_label: string | number;
      bad_score: string | number;
      bad_unscored: string | number;
      waiting: string | number;
      waiting_pt: string | number;
      newest_jt: string | number;
    }>(
      `SELECT * FROM (
         (SELECT 0 AS kind, prediction_id, toUnixTimestamp64Milli(prediction_time) AS pt,
            toUnixTimestamp64Milli(label_time) AS lt, toUnixTimestamp64Milli(joined_at) AS jt, label,
            ${scoreOf('incumbent')} AS incumbent,
            ${scoreOf('challenger')} AS challenger, toString(model_version) AS model_version,
            toString(role) AS role, toUInt64(0) AS bad_label, toUInt64(0) AS bad_score, toUInt64(0) AS bad_unscored,
            toUInt64(0) AS waiting, toInt64(0) AS waiting_pt, toInt64(0) AS newest_jt
          FROM (${source})
          WHERE ${paired} AND label IN (0, 1) AND ${probabilities} ${closed}
          ORDER BY ${order}
          LIMIT {limit:UInt32})
         UNION ALL
         (SELECT 1, '', toInt64(0), toInt64(0), toInt64(0), toFloat64(0), toNullable(toFloat64(0)), toNullable(toFloat64(0)), '', '',
            countIf(${paired} AND NOT (label IN (0, 1))), countIf(${paired} AND label IN (0, 1) AND NOT (${probabilities})),
            countIf(NOT (${paired})),
            ${arrival === undefined ? 'toUInt64(0)' : `countIf(${paired} AND label IN (0, 1) AND ${probabilities} AND ${waiting})`},
            ${arrival === undefined ? 'toInt64(0)' : `minIf(toUnixTimestamp64Milli(prediction_time), ${paired} AND label IN (0, 1) AND ${probabilities} AND ${waiting})`},
            maxIf(toUnixTimestamp64Milli(joined_at), ${paired} AND label IN (0, 1) AND ${probabilities})
          FROM (${source})
          WHERE ${anySide('incumbent')} AND ${anySide('challenger')})
       )
       ORDER BY kind, ${outerOrder}`,
      {
        model: q.model,
        incumbent: q.incumbent,
        challenger: q.challenger,
        from: q.from,
        limit: q.limit,
        ...(until === undefined ? {} : { until }),
        ...(arrival === undefined ? {} : { bucket: arrival.bucketMs, before: arrival.before }),
        ...(q.answeredBy === undefined
          ? {}
          : { answeredVersion: q.answeredBy.version, answeredRole: q.answeredBy.role }),
      },
    );
    const pairs: PairedOutcome[] = [];
    let unusable: UnusablePairs = { labelNotBinary: 0, scoreNotProbability: 0, unscored: 0 };
    let waitingFrom: number | undefined;
    let newestJoined: number | undefined;
    for (const r of rows) {
      if (Number(r.kind) === 1) {
        unusable = {
          labelNotBinary: Number(r.bad_label),
          scoreNotProbability: Number(r.bad_score),
          unscored: Number(r.bad_unscored),
        };
        if (Number(r.waiting) > 0) waitingFrom = Number(r.waiting_pt);
        // maxIf over no row is 0: no pair at all (no row is joined at the epoch).
        if (Number(r.newest_jt) > 0) newestJoined = Number(r.newest_jt);
        continue;
      }
      pairs.push({
        predictionId: r.prediction_id,
        predictionTime: Number(r.pt),
        labelTime: Number(r.lt),
        joinedAt: Number(r.jt),
        label: Number(r.label),
        incumbent: r.incumbent === null ? null : Number(r.incumbent),
        challenger: r.challenger === null ? null : Number(r.challenger),
        answeredVersion: r.model_version,
        role: r.role,
      });
    }
    return {
      pairs,
      unusable,
      ...(waitingFrom === undefined ? {} : { waitingFrom }),
      ...(newestJoined === undefined ? {} : { newestJoined }),
    };
  }
}
