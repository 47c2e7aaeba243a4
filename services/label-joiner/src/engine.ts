import {
  admitLine,
  DriftlineError,
  type EventTimeCheck,
  eventTimeProblem,
  formatDuration,
  humanSpan,
  keyedLineLimit,
  type Logger,
  labelFieldsProblem,
  lineLimit,
  PoisonRecordError,
  predictionFieldsProblem,
  toDriftlineError,
} from '@driftline/core';
import {
  CLOCK_SKEW_MS,
  type JoinConfig,
  type Joined,
  type JoinRef,
  type JoinStateReader,
  type JoinStore,
  joinKey,
  type LabelInput,
  labelEarlyMs,
  mergeSinkLookups,
  type OffsetSpan,
  type PredictionInput,
  type SinkCandidate,
  type SinkCheckConfig,
  type SinkLookup,
  type SinkMatch,
  sinkLookup,
  sinkVerdict,
  type TallyInput,
  type WrittenRow,
} from '@driftline/join';
import { counter, histogram, MAX_LABEL_VALUES, type Registry } from '@driftline/observability';
import { isClassLabel, type Task, windowKey, windowStart } from '@driftline/performance';
import type { LabelEvent, PredictionEvent } from '@driftline/schemas';
import type { ExpiredPredictionRow, JoinedRow, PredictionStore } from '@driftline/warehouse';

/**
 * A decoded record with its original bytes (what the join state stores) and its Kafka timestamp
 * (`appendTime`: where the record is in the log, which bounds the partition's watermark).
 */
export type JoinerRecord = (
  | { readonly kind: 'prediction'; readonly event: PredictionEvent }
  | { readonly kind: 'label'; readonly event: LabelEvent }
) & {
  readonly raw: Buffer;
  readonly appendTime?: number;
  /** Kafka offset (markerOffset): the partition's applied-through marker skips replays by it. */
  readonly offset?: number;
  /** Carries the replay header (`driftline dlq replay`): checked against the sink's rows first. */
  readonly replayed?: boolean;
};

/**
 * The offsets a batch covers (shadow records included: they are applied by being skipped), for
 * the store's applied-through marker; undefined when a record has no offset. `restart`: the
 * partition was assigned without a committed offset (see service.ts).
 */
export function batchSpan(records: readonly JoinerRecord[], restart = false): OffsetSpan | undefined {
  let first = Number.POSITIVE_INFINITY;
  let last = Number.NEGATIVE_INFINITY;
  let maxAppendTime: number | undefined = Number.NEGATIVE_INFINITY;
  for (const r of records) {
    if (r.offset === undefined) return undefined;
    first = Math.min(first, r.offset);
    last = Math.max(last, r.offset);
    // One record without a timestamp: the span cannot be guarded, the store drops the marker.
    const t = r.appendTime;
    maxAppendTime =
      maxAppendTime === undefined || t === undefined || !Number.isFinite(t) || t < 0
        ? undefined
        : Math.max(maxAppendTime, t);
  }
  if (records.length === 0) return undefined;
  return { first, last, ...(maxAppendTime === undefined ? {} : { maxAppendTime }), ...(restart ? { restart } : {}) };
}

export interface PayloadDecoder {
  prediction(bytes: Buffer): Promise<PredictionEvent> | PredictionEvent;
  label(bytes: Buffer): Promise<LabelEvent> | LabelEvent;
}

export interface JoinedSink {
  insertJoined(rows: readonly JoinedRow[]): Promise<void>;
  insertExpired(rows: readonly ExpiredPredictionRow[]): Promise<void>;
  /**
   * Which predictions already have a labeled or unlabeled row, and which: records that may
   * duplicate a prediction joined or expired longer ago than the tombstones last (sinkLookups of
   * @driftline/join), replayed dead letters, and labels that may have come after their prediction
   * expired.
   */
  writtenPredictionRows: PredictionStore['writtenPredictionRows'];
}

/**
 * The prediction id a DLQ reason names, its first 64 characters: the reason header is capped
 * (1 KiB), and a whole over-long id had filled it before the problem was said. The record's key
 * keeps the whole id.
 */
const reasonId = (id: string) => JSON.stringify(id.length > 64 ? `${id.slice(0, 64)}…` : id);

/**
 * Rejects events the join cannot use (they go to the DLQ with this reason): the field rules the
 * SDK refuses at the publish call too (`predictionFieldsProblem` of @driftline/core), and an event
 * time outside the bounds (µs, far future, pre-1900), which would never expire and fail every
 * ClickHouse insert of it.
 */
export function validatePrediction(e: PredictionEvent, time: EventTimeCheck): void {
  const problem = predictionFieldsProblem(e) ?? eventTimeProblem(e.event_time, time.now, time.bounds);
  if (problem !== undefined) {
    throw new PoisonRecordError('VALIDATION_FAILED', `prediction ${reasonId(e.prediction_id)}: ${problem}`);
  }
}

/**
 * `task`: the label's model's task (DRIFTLINE_JOINER_TASK, _MODEL_TASKS). A classification model's
 * label must be a class, 0 or 1; a regression model takes any finite value (`labelFieldsProblem`
 * of @driftline/core: the rules whatever the task, the SDK's too).
 */
export function validateLabel(e: LabelEvent, time: EventTimeCheck, task?: Task): void {
  const bad = (why: string) =>
    new PoisonRecordError('VALIDATION_FAILED', `label of ${reasonId(e.prediction_id)}: ${why}`);
  const problem = labelFieldsProblem(e) ?? eventTimeProblem(e.event_time, time.now, time.bounds);
  if (problem !== undefined) throw bad(problem);
  // Any other value was left out of the windows' metrics without a word: labels −1/+1 left only
  // the positives, and a model scoring 0.55 on everything showed accuracy 1 (found by a review).
  if (task === 'classification' && !isClassLabel(e.label)) {
    throw bad(
      `label ${e.label} is not a class (0 or 1): model ${JSON.stringify(e.model.slice(0, 64))} is a classification model (DRIFTLINE_JOINER_TASK, DRIFTLINE_JOINER_MODEL_TASKS)`,
    );
  }
}

/**
 * One side of a join as the store holds it, decoded. An outage (the registry unreachable) is
 * rethrown as it is: the batch is retried whole. Bytes that decoded when stored and no longer do (a
 * schema id the registry no longer knows: DECODE_FAILED) are poison for the record that joined
 * them, non-retriable, so the consumer's bisection dead-letters that record alone with this reason
 * and the rest of its batch is joined. Thrown retriable (INTERNAL), they had failed the whole batch
 * for ever — good labels too — and the partition, never caught up, held the expiry clock of every
 * model (found by a review). The join state stays `K` (until its backstop TTL): replaying the dead
 * letter once the bytes decode again re-emits the row, so nothing is lost. Another code (INTERNAL:
 * a decoder bug) is kept, so the consumer's processor-fault hold still applies to it.
 */
async function decodeStored<T>(
  side: 'prediction' | 'label',
  joined: { readonly model: string; readonly id: string },
  decode: () => Promise<T> | T,
): Promise<T> {
  try {
    return await decode();
  } catch (thrown) {
    const error = toDriftlineError(thrown);
    if (error.retriable) throw error;
    const message = `the stored ${side} of ${joinKey(joined)} no longer decodes (${error.message}); this record joined it, replay it once the ${side} decodes again`;
    if (error.code === 'DECODE_FAILED' || error.code === 'VALIDATION_FAILED') {
      throw new PoisonRecordError(error.code, message, { cause: error });
    }
    throw new DriftlineError(error.code, message, { cause: error, retriable: false });
  }
}

/** What a prediction adds to the join store's tallies (the CBPE score histograms, estimates.ts). */
export interface PredictionTallies {
  /** Throws a retriable error while tallies cannot be taken in (the consumer pauses, nothing applied). */
  admit(): void;
  tallyOf(event: PredictionEvent, windowKey: string): TallyInput | undefined;
}

/**
 * Joined labels their model's task cannot use: validated before the task was (a label waiting in
 * the join state since before this check, a model's task changed since). Counted per model and
 * warned of at most once per {@link INVALID_LABEL_WARNING_MS}; their windows count them in
 * `invalid_labels` and have no classification metrics.
 */
export interface JoinedLabelCheck {
  readonly taskOf: (model: string) => Task;
  readonly logger?: Logger;
}

export const INVALID_LABEL_WARNING_MS = 60_000;

/**
 * Which records the engine checks against the sink before any transition, besides replayed
 * ones (see sinkLookup of @driftline/join); without it, replayed records only. `states` reads the
 * join states of the labels it would look up, so that a label whose prediction is pending (or
 * joined) is left to its transition without a query (labelAsksSink), and one whose state is
 * absent or waiting is judged only by predictions whose expiry the state can have forgotten
 * (sinkLookup with the state). `logger` takes the warning
 * about labels read after their prediction expired and the info line about skipped copies, each
 * at most once per {@link SINK_SKIP_LOG_MS}, with the count since the last one.
 */
export interface SinkCheck {
  readonly config: SinkCheckConfig;
  readonly states: JoinStateReader;
  readonly logger?: Logger;
}

export const SINK_SKIP_LOG_MS = 60_000;

/**
 * Labels dated more than {@link labelEarlyMs} (DRIFTLINE_EVENT_TIME_MAX_FUTURE + 1 min) before
 * their prediction never join it: `early` (read after the prediction, which keeps waiting and
 * expires unlabeled) and `pending-early-label` (read first and waiting, then replaced by the
 * prediction: never an orphan). A producer dating labels by the event the prediction was about
 * (a transaction scored by a nightly batch hours later) lost every label with no line and no
 * alert (a regression review). Warned of per model, each outcome at most once per
 * {@link EARLY_LABEL_WARNING_MS} with the count since the last line; `config` gives the reach.
 */
export interface EarlyLabelCheck {
  readonly config: JoinConfig;
  readonly logger: Logger;
}

export const EARLY_LABEL_WARNING_MS = 10 * 60_000;

/** What to do about early labels, the end of both warnings. */
const EARLY_LABEL_ADVICE =
  "date each label by when its outcome was observed (at or after its prediction), not by the event the prediction was about; labels dated before their predictions on purpose need the label-joiner's DRIFTLINE_EVENT_TIME_MAX_FUTURE raised above that span, with DRIFTLINE_JOINER_TOMBSTONE_TTL above it and the model-controller's DRIFTLINE_EVENT_TIME_MAX_FUTURE at least as large (label-joiner README, Limits: \"Labels dated before their prediction\"); an older prediction's label under an id the model used again is early too";

type EarlyOutcome = 'early' | 'pending-early-label';

/** A record the store answered `early` (a label) or `pending-early-label` (a prediction). */
interface EarlyRecord {
  readonly outcome: EarlyOutcome;
  readonly input: { readonly model: string; readonly id: string; readonly eventTime: number };
}

export interface EngineStats {
  joined: number;
  outcomes: Record<string, number>;
}

/**
 * The join hot path for one batch: atomic transitions in the store (pipelined), joined rows to the
 * sink, then the acknowledgement (K → J). A crash anywhere leaves either nothing done, or `K`
 * states that the redelivered records re-emit; the sink deduplicates rows by prediction.
 */
export class JoinEngine {
  private readonly metrics;
  private readonly invalidLines = lineLimit();
  private readonly expiredLines = lineLimit();
  private readonly copiesLines = lineLimit();
  // Models come from events: one line per model and outcome, past MAX_LABEL_VALUES models one more.
  private readonly earlyLines = {
    early: keyedLineLimit<string>({
      intervalMs: EARLY_LABEL_WARNING_MS,
      maxKeys: MAX_LABEL_VALUES,
      onFull: 'overflow',
    }),
    'pending-early-label': keyedLineLimit<string>({
      intervalMs: EARLY_LABEL_WARNING_MS,
      maxKeys: MAX_LABEL_VALUES,
      onFull: 'overflow',
    }),
  };

  constructor(
    private readonly store: JoinStore<Buffer, Buffer>,
    private readonly decoder: PayloadDecoder,
    private readonly sink: JoinedSink,
    private readonly windowMs: number,
    registry?: Registry,
    private readonly tallies?: PredictionTallies,
    private readonly labelCheck?: JoinedLabelCheck,
    private readonly sinkCheck?: SinkCheck,
    private readonly earlyCheck?: EarlyLabelCheck,
  ) {
    this.metrics =
      registry === undefined
        ? undefined
        : {
            outcomes: counter(registry, 'driftline_joiner_events_total', 'Join events by kind and outcome', [
              'kind',
              'outcome',
            ]),
            joined: counter(
              registry,
              'driftline_joiner_joined_total',
              'Rows written to labeled_predictions (re-emits included)',
              [],
            ),
            delay: histogram(
              registry,
              'driftline_joiner_label_delay_seconds',
              'Label event time minus prediction event time of joined rows',
              [],
              [1, 60, 600, 3_600, 21_600, 86_400, 259_200, 604_800, 2_592_000],
            ),
            // `model` comes from events: bounded (MAX_LABEL_VALUES, then `__other__`).
            invalidLabels: counter(
              registry,
              'driftline_joiner_invalid_labels_total',
              "Joined labels their model's task cannot use (not 0 or 1 for a classification model), left out of its metrics",
              ['model'],
              { bounded: ['model'] },
            ),
          };
    // Exported at 0 from the start: rate() and increase() miss the first step of a series created
    // above 0, and the first labels of a producer that misdates them all are what
    // DriftlineJoinerEarlyLabelsHigh is for.
    this.metrics?.outcomes.inc({ kind: 'label', outcome: 'early' }, 0);
    this.metrics?.outcomes.inc({ kind: 'prediction', outcome: 'pending-early-label' }, 0);
  }

  /** Joins one batch of records read from `source` (a partition: its watermark rises with them). */
  async process(
    records: readonly JoinerRecord[],
    now: number,
    source: string,
    options: { readonly restart?: boolean } = {},
  ): Promise<EngineStats> {
    // All records of a batch come from one partition, so one topic: its span goes to that side's
    // call, even with nothing to apply (only shadow predictions), so that the marker takes it in.
    // A mixed batch is no partition: no marker.
    const side = records.every((r) => r.kind === records[0]?.kind) ? records[0]?.kind : undefined;
    const span = side === undefined ? undefined : batchSpan(records, options.restart);
    const predictions: PredictionInput<Buffer>[] = [];
    const labels: LabelInput<Buffer>[] = [];
    const outcomes: Record<string, number> = {};
    const count = (kind: string, outcome: string) => {
      const key = `${kind}:${outcome}`;
      outcomes[key] = (outcomes[key] ?? 0) + 1;
      this.metrics?.outcomes.inc({ kind, outcome });
    };
    // Shadow records are never joined: no label names their id, and the answered record's `scores`
    // carries the shadow's score on the same instance (the paired comparison reads it). Counted,
    // then committed with the batch.
    const unshadowed = records.filter((r) => {
      if (r.kind !== 'prediction' || r.event.role !== 'shadow') return true;
      count('prediction', 'shadow');
      return false;
    });
    // Records whose prediction the sink may already hold a row of, found by no state: a copy read
    // under a new offset (a producer re-sending, a DLQ replay: the marker does not know it) after
    // the tombstone expired, or a label read after its prediction expired. Skipped like a shadow
    // record, inside the span. An outage of the look-up fails the batch before anything is applied.
    const candidateOf = (r: JoinerRecord): SinkCandidate => ({
      kind: r.kind,
      model: r.event.model,
      id: r.event.prediction_id,
      eventTime: r.event.event_time,
      replayed: r.replayed === true,
    });
    const candidates = unshadowed.map(candidateOf);
    const matches = await this.sinkMatches(candidates, now);
    // A K whose row the sink holds (its batch failed after the insert, before the ack) is
    // acknowledged with this batch's rows: its redelivered record is skipped here, and the ack
    // (K → J) is what marks its window dirty.
    const acknowledge = new Map<string, JoinRef>();
    let copies = 0;
    const joinable = unshadowed.filter((r, n) => {
      const match = matches[n];
      if (match === undefined) return true;
      const candidate = candidates[n]!;
      count(r.kind, match.verdict);
      if (match.row.labeled) acknowledge.set(joinKey(candidate), { model: candidate.model, id: candidate.id });
      if (match.verdict === 'expired-before-label') this.expiredBeforeLabel(candidate, match.row, now);
      if (match.verdict === 'sink-duplicate') copies++;
      return false;
    });
    this.copiesSkipped(copies, source, now);
    for (const r of joinable) {
      if (r.kind === 'prediction') {
        const e = r.event;
        const key = windowKey({
          model: e.model,
          modelVersion: e.model_version,
          windowStart: windowStart(e.event_time, this.windowMs),
        });
        const tally = this.tallies?.tallyOf(e, key);
        predictions.push({
          model: e.model,
          id: e.prediction_id,
          eventTime: e.event_time,
          ...(r.appendTime === undefined ? {} : { appendTime: r.appendTime }),
          ...(r.offset === undefined ? {} : { offset: r.offset }),
          windowKey: key,
          payload: r.raw,
          ...(tally === undefined ? {} : { tally }),
        });
      } else {
        labels.push({
          model: r.event.model,
          id: r.event.prediction_id,
          eventTime: r.event.event_time,
          ...(r.appendTime === undefined ? {} : { appendTime: r.appendTime }),
          ...(r.offset === undefined ? {} : { offset: r.offset }),
          payload: r.raw,
        });
      }
    }
    // A fresh join pairs the incoming record with the stored other side: only that side needs decoding.
    const emits: Array<{ emit: Joined<Buffer, Buffer>; prediction?: PredictionEvent; label?: LabelEvent }> = [];
    const predictionRecords = joinable.filter((r) => r.kind === 'prediction');
    const labelRecords = joinable.filter((r) => r.kind === 'label');
    if (predictions.length > 0) this.tallies?.admit();
    const early: EarlyRecord[] = [];
    (await this.store.applyPredictions(predictions, now, source, side === 'prediction' ? span : undefined)).forEach(
      (a, n) => {
        count('prediction', a.outcome);
        if (a.outcome === 'pending-early-label') early.push({ outcome: a.outcome, input: predictions[n]! });
        if (a.emit === undefined) return;
        const r = predictionRecords[n];
        emits.push(
          a.outcome === 'joined' && r?.kind === 'prediction' ? { emit: a.emit, prediction: r.event } : { emit: a.emit },
        );
      },
    );
    (await this.store.applyLabels(labels, now, source, side === 'label' ? span : undefined)).forEach((a, n) => {
      count('label', a.outcome);
      if (a.outcome === 'early') early.push({ outcome: a.outcome, input: labels[n]! });
      if (a.emit === undefined) return;
      const r = labelRecords[n];
      emits.push(a.outcome === 'joined' && r?.kind === 'label' ? { emit: a.emit, label: r.event } : { emit: a.emit });
    });
    this.earlyLabels(early, now);
    if (emits.length === 0) {
      if (acknowledge.size > 0) await this.store.ackJoined([...acknowledge.values()], now);
      return { joined: 0, outcomes };
    }
    // The same prediction can be emitted twice in one batch (a replayed duplicate); one row is enough.
    const unique = new Map(emits.map((e) => [joinKey(e.emit), e]));
    const rows: JoinedRow[] = [];
    for (const { emit: e, ...known } of unique.values()) {
      const prediction =
        known.prediction ?? (await decodeStored('prediction', e, () => this.decoder.prediction(e.prediction)));
      const label = known.label ?? (await decodeStored('label', e, () => this.decoder.label(e.label)));
      rows.push({ prediction, label, joinedAt: e.joinedAt });
      this.metrics?.delay.observe(Math.max(0, (label.event_time - prediction.event_time) / 1000));
    }
    await this.sink.insertJoined(rows);
    this.checkLabels(rows, now);
    for (const { emit } of unique.values()) acknowledge.set(joinKey(emit), emit);
    await this.store.ackJoined([...acknowledge.values()], now);
    this.metrics?.joined.inc(rows.length);
    return { joined: rows.length, outcomes };
  }

  /**
   * Each record's verdict from the sink (sinkVerdict), undefined where it takes its transition:
   * not looked up (sinkLookup; without a check, replayed records only), a label whose join state
   * answers for it or leaves it no range (sinkLookup with its state: one read of the states of the
   * labels to look up, none when there are none), or no row within its own bounds. One query per
   * batch for the rest.
   */
  private async sinkMatches(candidates: readonly SinkCandidate[], now: number): Promise<Array<SinkMatch | undefined>> {
    const check = this.sinkCheck;
    const lookups: Array<SinkLookup | undefined> = candidates.map((c) => {
      if (check !== undefined) return sinkLookup(c, now, check.config);
      // Without a check, replayed records only, whatever the bounds.
      return c.replayed ? sinkLookup(c, now, { maxDelayMs: 0, graceMs: 0, tombstoneMs: 0, maxFutureMs: 0 }) : undefined;
    });
    const labels = candidates.flatMap((c, n) => (c.kind === 'label' && lookups[n] !== undefined ? [n] : []));
    if (check !== undefined && labels.length > 0) {
      const tags = await check.states.stateTags(
        labels.map((n) => candidates[n]!),
        now,
      );
      // Looked up again with its state: none when the state answers for it, and a narrower
      // range when that state is absent or a waiting label (sinkLookup).
      labels.forEach((n, k) => {
        lookups[n] = sinkLookup(candidates[n]!, now, check.config, { tag: tags[k] });
      });
    }
    const sent = mergeSinkLookups(lookups.filter((l): l is SinkLookup => l !== undefined));
    if (sent.length === 0) return candidates.map(() => undefined);
    const rows = await this.sink.writtenPredictionRows(
      sent.map((l) => ({
        model: l.model,
        predictionId: l.id,
        ...(l.from === undefined ? {} : { from: l.from }),
        ...(l.to === undefined ? {} : { to: l.to }),
      })),
    );
    const written = new Map<string, WrittenRow[]>();
    for (const r of rows) {
      const key = joinKey({ model: r.model, id: r.predictionId });
      const held = written.get(key) ?? [];
      held.push({ labeled: r.labeled, predictionTime: r.predictionTime });
      written.set(key, held);
    }
    const maxDelayMs = check?.config.maxDelayMs ?? Number.POSITIVE_INFINITY;
    return candidates.map((c, n) => {
      const lookup = lookups[n];
      return lookup === undefined ? undefined : sinkVerdict(c, lookup, written.get(joinKey(c)) ?? [], maxDelayMs);
    });
  }

  /**
   * Copies of predictions the sink holds, and labels of joined ones, skipped: one info line at
   * most once per {@link SINK_SKIP_LOG_MS} with the count since the last (a producer re-sending a
   * day of predictions had written one line per batch).
   */
  private copiesSkipped(skipped: number, source: string, now: number): void {
    const logger = this.sinkCheck?.logger;
    if (logger === undefined) return;
    // Every batch: one without copies (weight 0) writes the count left out once the minute is up.
    const leftOut = admitLine(this.copiesLines, now, SINK_SKIP_LOG_MS, skipped);
    if (leftOut === undefined) return;
    logger.info(
      { skipped: leftOut + skipped, source },
      'copies of predictions already written, and labels of predictions already joined, were skipped (sink-duplicate)',
    );
  }

  /**
   * A label on time by event time read after its prediction expired unlabeled: it never joins.
   * The grace (DRIFTLINE_JOINER_EXPIRY_GRACE) is the knob: expiry waits for it past the deadline.
   */
  private expiredBeforeLabel(label: SinkCandidate, row: WrittenRow, now: number): void {
    const logger = this.sinkCheck?.logger;
    if (logger === undefined) return;
    const leftOut = admitLine(this.expiredLines, now, SINK_SKIP_LOG_MS);
    if (leftOut === undefined) return;
    const deadline = row.predictionTime + (this.sinkCheck?.config.maxDelayMs ?? 0);
    logger.warn(
      {
        expiredBeforeLabel: leftOut + 1,
        model: label.model,
        prediction_id: label.id,
        labelTime: new Date(label.eventTime).toISOString(),
        deadline: new Date(deadline).toISOString(),
        readAfterDeadline: humanSpan(now - deadline),
      },
      'labels on time by event time were read after their prediction had expired unlabeled and are dropped: DRIFTLINE_JOINER_EXPIRY_GRACE must exceed how long after their event time labels are published (README, "When a label joins")',
    );
  }

  /**
   * Early labels of the batch (EarlyLabelCheck): per model and outcome, at most one warning per
   * {@link EARLY_LABEL_WARNING_MS} naming one example, with the count since the last line. The
   * store answers with the outcome alone, so the line names the record's own time and the bound
   * the other side's lies beyond (the waiting label is gone, the pending prediction unread).
   */
  private earlyLabels(early: readonly EarlyRecord[], now: number): void {
    const check = this.earlyCheck;
    if (check === undefined || early.length === 0) return;
    const reachMs = labelEarlyMs(check.config);
    const bound = `DRIFTLINE_EVENT_TIME_MAX_FUTURE (${formatDuration(reachMs - CLOCK_SKEW_MS)}) + 1 minute`;
    const byModel = new Map<string, { outcome: EarlyOutcome; first: EarlyRecord['input']; n: number }>();
    for (const { outcome, input } of early) {
      const key = JSON.stringify([outcome, input.model]);
      const seen = byModel.get(key);
      if (seen === undefined) byModel.set(key, { outcome, first: input, n: 1 });
      else seen.n++;
    }
    const iso = (t: number) => new Date(t).toISOString();
    for (const { outcome, first, n } of byModel.values()) {
      const leftOut = this.earlyLines[outcome].admit(first.model, now, n);
      if (leftOut === undefined) continue;
      const shown = { model: first.model, prediction_id: first.id, allowedBefore: formatDuration(reachMs) };
      if (outcome === 'early') {
        check.logger.warn(
          {
            earlyLabels: leftOut + n,
            ...shown,
            labelTime: iso(first.eventTime),
            predictionTimeAfter: iso(first.eventTime + reachMs),
          },
          `labels dated more than ${bound} before their pending prediction never join it (early): the prediction keeps waiting and expires unlabeled, and the window's label coverage and metrics miss them; ${EARLY_LABEL_ADVICE}`,
        );
      } else {
        check.logger.warn(
          {
            earlyLabelsReplaced: leftOut + n,
            ...shown,
            predictionTime: iso(first.eventTime),
            labelTimeBefore: iso(first.eventTime - reachMs),
          },
          `predictions found their label waiting but dated more than ${bound} before them (pending-early-label): the label is dropped, never counted as an orphan, and the prediction waits for another; ${EARLY_LABEL_ADVICE}`,
        );
      }
    }
    for (const outcome of ['early', 'pending-early-label'] as const) {
      const over = this.earlyLines[outcome].overflow(now);
      if (over === undefined) continue;
      check.logger.warn(
        { outcome, models: `${over.keys}${over.keysAtLeast ? '+' : ''}`, count: over.weight },
        `more models with labels dated before their prediction beyond DRIFTLINE_EVENT_TIME_MAX_FUTURE + 1 minute (${outcome}): never joined`,
      );
    }
  }

  private checkLabels(rows: readonly JoinedRow[], now: number): void {
    const check = this.labelCheck;
    if (check === undefined) return;
    let example: { model: string; prediction_id: string; label: number } | undefined;
    let invalid = 0;
    for (const { prediction, label } of rows) {
      if (check.taskOf(prediction.model) !== 'classification' || isClassLabel(label.label)) continue;
      this.metrics?.invalidLabels.inc({ model: prediction.model });
      invalid++;
      example ??= { model: prediction.model, prediction_id: prediction.prediction_id, label: label.label };
    }
    // A batch without one writes nothing (the line names an example): the count left out waits.
    if (example === undefined) return;
    const leftOut = admitLine(this.invalidLines, now, INVALID_LABEL_WARNING_MS, invalid);
    if (leftOut === undefined) return;
    check.logger?.warn(
      { invalidLabels: leftOut + invalid, ...example },
      'joined labels that are not a class (0 or 1) of a classification model: their windows have no classification metrics',
    );
  }
}
