import { setImmediate as nextTurn } from 'node:timers/promises';
import { DriftlineError, setOwn, uuidV4Source } from '@driftline/core';
import { hasFeatureType } from '@driftline/features';
import { type FeatureRow, MAX_READ_BATCH, type OnlineStore } from '@driftline/online-store';
import { inCanary } from '@driftline/policy';
import type { FeatureValue, PredictionEvent } from '@driftline/schemas';
import { missingAsFloat32, ScoringInputError } from '@driftline/scoring';
import { badRequest, HttpError, oneLine } from '@driftline/service/http';
import type { Instance } from './request.js';
import type { PlannedVersion, Role, ServingPlan } from './version.js';

/** The answer for one instance. */
export interface Prediction {
  readonly entity_id: string;
  readonly prediction_id: string;
  readonly score: number;
  readonly version: string;
  readonly role: Role;
}

export interface Scored {
  readonly predictions: Prediction[];
  /** What goes to predictions.v1: the answered predictions and every shadow's. */
  readonly events: PredictionEvent[];
  /** Versions scored only for comparison (shadows, production on canary instances) that could not score an instance, or were left out of the request for its work (they never fail the request). */
  readonly shadowFailures: number;
  /** The same failures by version (each a version of the plan, so from models.v1: bounded). */
  readonly shadowFailuresByVersion: ReadonlyMap<string, number>;
  /**
   * Instances of the canary's share that the canary could not answer (a request value it encodes
   * differently from production, a score that is not a finite number, its scorer failing, the
   * canary left out of the request for its work): production answered them, and `why` is the
   * first reason, in one line.
   */
  readonly canaryFailures: { readonly version: string; readonly count: number; readonly why: string } | undefined;
  /** Numbers of the answered records logged as null for being beyond float32's range (missing to the model). */
  readonly outOfRange: number;
}

/** A request's scoring, and how to score it again with a newer plan (no await, no read). */
export interface ScoredRequest extends Scored {
  /** The plan that scored it. */
  readonly plan: ServingPlan;
  /**
   * The request scored by `plan` with the rows already read (synchronous): a 503 to retry when
   * `plan` reads other views or features than those rows or would walk more than one chunk
   * ({@link SCORING_CHUNK_LEVELS}), a 400 as scoring would give one.
   */
  rescore(plan: ServingPlan): ScoredRequest;
}

/** One version's input rows for a request, and its scores once the batch call ran. */
interface VersionBatch {
  readonly rows: Float32Array;
  count: number;
  scores: Float64Array | undefined;
  /** Whether it answers an instance of the request (else it is scored only for comparison). */
  answers: boolean;
}

/** A version's part in one instance: the record it sees and its row in the version's batch (-1: it could not take it). */
interface Scoring {
  readonly v: PlannedVersion;
  readonly record: Readonly<Record<string, FeatureValue>>;
  readonly row: number;
  /** Numbers of `record` logged as null for lying beyond float32 (counted when it is answered). */
  readonly outOfRange: number;
}

/**
 * Most tree levels one version may walk for a request: its instances × the depths, summed over all
 * trees, of that version. Production past it is a 413 before any read; a canary or a shadow past it
 * is left out of the request (named in `unscored`, below), so the batches a client may send do not
 * depend on the rollout: starting a canary or a shadow turned batches production alone scored into
 * 413s (a regression review: 4,200 instances of a 1,000-tree depth-6 model). Scoring runs on the
 * serving thread, a few to 50 ns a level, in chunks of {@link SCORING_CHUNK_LEVELS} between which other
 * requests are served: 200 chain trees of depth 999 (within the served model bounds) at a batch of
 * 1,000, before the chunks, held every other request, /healthz included, for 4 s.
 */
export const MAX_REQUEST_TREE_LEVELS = 50_000_000;

/**
 * Most tree levels all the versions of one request may walk together (4 × a version's bound): the
 * versions past it (the canary first, then the shadows in plan order) are left out of the request.
 * It bounds a request's CPU time (production, a canary and 8 shadows could each walk
 * {@link MAX_REQUEST_TREE_LEVELS}); the chunks keep the thread answering meanwhile.
 */
export const MAX_REQUEST_TREE_LEVELS_ALL = 4 * MAX_REQUEST_TREE_LEVELS;

/**
 * Tree levels a request walks between two turns of the event loop: 4 to 12 ms at the 4 to 12 ns a
 * level measured for 100 to 1,000 trees of depth 6 to 10 in batch calls; at least one instance a
 * chunk. Smaller chunks cost throughput: 1,000 trees of depth 10 walk 11 ns a level 100 rows a call,
 * 17 ns 48 rows a call, 45 ns one row a call. A request that walks no more than this is scored in
 * one go, with no await (most requests: 100 trees of depth 6 at a batch of 100 is 60,000).
 */
export const SCORING_CHUNK_LEVELS = 1_000_000;

/** Scorings of one request restarted because its plan was swapped between chunks, before a 503. */
const MAX_SCORINGS = 3;

/**
 * Throws the 413 of a request whose production version would walk more than
 * {@link MAX_REQUEST_TREE_LEVELS} tree levels with `plan` (production alone: the other versions'
 * work never refuses a request).
 */
export function checkScoringWork(plan: ServingPlan, instances: number): void {
  const levels = plan.production.loaded.scorer.totalDepth;
  if (instances * levels <= MAX_REQUEST_TREE_LEVELS) return;
  throw new HttpError(
    413,
    'BAD_REQUEST',
    `request would walk ${instances * levels} tree levels (${instances} instances × ${levels}, the levels of model "${oneLine(plan.model)}"'s production version ${oneLine(plan.production.loaded.version)}), more than ${MAX_REQUEST_TREE_LEVELS}: send at most ${Math.max(1, Math.floor(MAX_REQUEST_TREE_LEVELS / levels))} instances per request (DRIFTLINE_MODEL_SERVER_MAX_BATCH bounds a batch)`,
  );
}

/**
 * The canary and shadows of `plan` left out of a request of `instances` for its work, each with
 * why (one line); undefined when every version scores it (no allocation then). A version past
 * {@link MAX_REQUEST_TREE_LEVELS} alone (as production it would refuse the request), or one that
 * would take the request past {@link MAX_REQUEST_TREE_LEVELS_ALL} (the canary counted first, then
 * the shadows in plan order). The canary is judged on every instance, as if it answered them all.
 */
function leftOut(plan: ServingPlan, instances: number): Map<PlannedVersion, string> | undefined {
  let all = plan.production.loaded.scorer.totalDepth;
  if (plan.canary !== undefined) all += plan.canary.planned.loaded.scorer.totalDepth;
  for (const s of plan.shadows) all += s.loaded.scorer.totalDepth;
  if (instances * all <= MAX_REQUEST_TREE_LEVELS) return undefined;
  const out = new Map<PlannedVersion, string>();
  let total = instances * plan.production.loaded.scorer.totalDepth;
  const judge = (v: PlannedVersion) => {
    const levels = v.loaded.scorer.totalDepth;
    const work = instances * levels;
    if (work > MAX_REQUEST_TREE_LEVELS) {
      out.set(
        v,
        `left out of the request: it would walk ${work} tree levels (${instances} instances × ${levels}), more than the ${MAX_REQUEST_TREE_LEVELS} one version may walk for a request`,
      );
    } else if (total + work > MAX_REQUEST_TREE_LEVELS_ALL) {
      out.set(
        v,
        `left out of the request: its versions would walk more than the ${MAX_REQUEST_TREE_LEVELS_ALL} tree levels a request may walk in all`,
      );
    } else total += work;
  };
  if (plan.canary !== undefined) judge(plan.canary.planned);
  for (const s of plan.shadows) judge(s);
  return out.size === 0 ? undefined : out;
}

/** Whether a request of `instances` scored by `plan` walks more than one chunk (the versions left out not counted). */
function walksChunks(plan: ServingPlan, instances: number): boolean {
  let all = plan.production.loaded.scorer.totalDepth;
  if (plan.canary !== undefined) all += plan.canary.planned.loaded.scorer.totalDepth;
  for (const s of plan.shadows) all += s.loaded.scorer.totalDepth;
  if (instances * all <= SCORING_CHUNK_LEVELS) return false;
  const out = leftOut(plan, instances);
  if (out === undefined) return true;
  for (const v of out.keys()) all -= v.loaded.scorer.totalDepth;
  return instances * all > SCORING_CHUNK_LEVELS;
}

/**
 * Most bytes the online-store rows one feature read of a request may hold as stored (whole rows of
 * every view the plan reads, each distinct entity once), as the feature API's answer bound: above
 * it the store refuses the read before reading any row, a 400 (see `toHttpError`). Without it, a
 * batch of 1,000 entities whose rows hold 512 KB each was read, in 1 MiB replies, into the serving
 * thread's memory: ~0.5 GB for one small request.
 */
export const MAX_READ_ROW_BYTES = 32 * 1_048_576;

/** Prediction ids: random UUIDs, each built in one piece (see uuidV4Source). */
const nextPredictionId = uuidV4Source();

/** No versions besides the answering one (shared: most instances have none). */
const NONE: readonly Scoring[] = [];

/** Whether a record has no own key (without listing its keys). */
function isEmpty(record: Readonly<Record<string, unknown>>): boolean {
  for (const key in record) if (Object.hasOwn(record, key)) return false;
  return true;
}

/** The version that answers an entity: the canary for its sticky share of entities, else production. */
export function answering(plan: ServingPlan, entityId: string): PlannedVersion {
  const c = plan.canary;
  return c !== undefined && inCanary(c.salt, entityId, c.share) ? c.planned : plan.production;
}

/** The rows of a plan's reads for a request, by read and instance; undefined when it reads nothing. */
type Rows = Array<Array<FeatureRow | undefined>> | undefined;

/** A request value for a feature no version of the plan takes, or not of the type its view declares: a 400. */
function checkFeatures(plan: ServingPlan, instances: readonly Instance[], where: (i: number) => string): void {
  for (let i = 0; i < instances.length; i++) {
    const inst = instances[i]!;
    if (inst.features === undefined) continue;
    for (const name in inst.features) {
      if (!plan.features.has(name)) {
        throw badRequest(`${where(i)}.features.${oneLine(name)}: not a feature of model "${plan.model}"`);
      }
      // A feature a view declares takes a value of its declared type, as its feature events do:
      // the log and the monitors downstream read it with that type.
      const declared = plan.types.get(name);
      const value = inst.features[name];
      if (declared !== undefined && value !== null && !hasFeatureType(declared.type, value)) {
        throw badRequest(
          `${where(i)}.features.${oneLine(name)}: expected a ${declared.type} (view ${declared.view}), got ${typeof value}`,
        );
      }
    }
  }
}

/** Reads done for a request: the plan's reads and their rows. */
interface ReadDone {
  readonly reads: ServingPlan['reads'];
  readonly rows: Rows;
}

/**
 * The rows of `done` arranged for `reads` when both read the same views with the same features,
 * in any order (plans order their reads by their versions: a canary promoted reads the same views
 * as before in another order); else undefined.
 */
function rowsFor(reads: ServingPlan['reads'], done: ReadDone): ReadDone | undefined {
  if (reads === done.reads) return done;
  if (reads.length !== done.reads.length) return undefined;
  const order: number[] = [];
  for (const r of reads) {
    const k = done.reads.findIndex(
      (o) =>
        o.view.name === r.view.name &&
        o.features.length === r.features.length &&
        r.features.every((f) => o.features.includes(f)),
    );
    if (k === -1 || order.includes(k)) return undefined;
    order.push(k);
  }
  const rows = done.rows;
  return { reads, rows: rows === undefined ? undefined : order.map((k) => rows[k]!) };
}

/**
 * Scores instances with the newest serving plan of their model: `plan` is the plan, or how to get
 * the model's current one. Features come from ONE batch read of the plan's views (skipped when it
 * reads none) and the request's values, which take precedence. The read is the only wait but for
 * the turns between the chunks of a long scoring: when the plan was swapped during it, the request
 * is scored by the new plan (its features read again only when that plan reads other views or
 * features than every read done, in any order; a plan swapped again during that second read, to
 * reads neither read did, is a 503 to retry rather than a third read; one swapped back to the first
 * read's reads is scored with its rows), so no request is scored by a plan replaced before its
 * scoring (swapped between chunks, the scoring starts again with the newest plan; a third such swap
 * is a 503 to retry). Production walks at most {@link MAX_REQUEST_TREE_LEVELS} (else a 413); a
 * canary or shadow past its share of the work is left out of the request, as a version that could
 * not score it (`unscored`). A feature that is neither in the store nor in the request is missing:
 * null in the log, NaN to the model, which takes its trained default direction; so is a number
 * beyond float32's range. An instance with no row in any view and no values of its own is a 422
 * (nothing to score); a value for a feature no version takes, or one production cannot encode, is a
 * 400. An instance of the canary's share that only the canary cannot encode (a request-only feature
 * it takes as a number where production takes categories) is answered by production and counted
 * (`canaryFailures`): it was a 400 to the same entities on every retry. Shadows score every
 * instance and are logged, never answered. The answered record carries `scores`: every version
 * scored on the instance (production too when the canary answered), by version; and `unscored`,
 * when some version was to score it and could not (the canary of its share, a shadow, production
 * beside the canary), by version with its role.
 */
export async function scoreInstances(
  plan: ServingPlan | (() => ServingPlan),
  request: { readonly batch: boolean; readonly instances: readonly Instance[] },
  store: OnlineStore,
  now: number,
  newId: () => string = nextPredictionId,
  maxRowBytes: number = MAX_READ_ROW_BYTES,
  /** Aborted once the client went away: the reads not yet issued are skipped (ReadAbortedError). */
  signal?: AbortSignal,
): Promise<ScoredRequest> {
  const current = typeof plan === 'function' ? plan : () => plan;
  const { instances } = request;
  const where = (i: number) => (request.batch ? `instances[${i}]` : 'body');
  const entities = instances.map((x) => x.entityId);
  // No read when every instance passes every stored feature itself (the "features in the request" case).
  const readFor = async (p: ServingPlan): Promise<Rows> => {
    const needed = p.reads.some((r) =>
      instances.some((x) => x.features === undefined || r.features.some((f) => !Object.hasOwn(x.features!, f))),
    );
    return needed ? await readRows(store, p.reads, entities, maxRowBytes, signal) : undefined;
  };
  let p = current();
  checkFeatures(p, instances, where);
  checkScoringWork(p, instances.length);
  let rows = await readFor(p);
  // The reads done so far and their rows (at most two): a plan swapped away and back (A, B, A)
  // reads what an earlier read read, and is scored with its rows (a 503 to 4.3% of requests under
  // a fast-moving models.v1 before, found by a review).
  const done: ReadDone[] = [{ reads: p.reads, rows }];
  const scoredWith = (
    plan: ServingPlan,
    rowsOf: ReadDone,
    scored: Scored = scoreRows(plan, request, rowsOf.rows, now, newId, where),
  ): ScoredRequest => ({
    ...scored,
    plan,
    rescore(next) {
      checkFeatures(next, instances, where);
      const same = rowsFor(next.reads, rowsOf);
      if (same === undefined) {
        throw new HttpError(
          503,
          'SINK_UNAVAILABLE',
          `model "${oneLine(next.model)}": its serving plan changed to other reads while the request waited for room in the prediction log; retry`,
        );
      }
      // Synchronous (the log takes the records in the same turn): a long scoring would hold the
      // thread for all of its chunks at once.
      if (walksChunks(next, instances.length)) {
        throw new HttpError(
          503,
          'SINK_UNAVAILABLE',
          `model "${oneLine(next.model)}": its serving plan changed while the request waited for room in the prediction log, and the request is too long to score again at once; retry`,
        );
      }
      return scoredWith(next, same);
    },
  });
  for (let scorings = 0; ; scorings++) {
    // After the read, no await until the answer is scored but between the chunks of a long scoring,
    // after which a swapped plan scores again: the plan checked last is the one that scores.
    for (let newest = current(); newest !== p; newest = current()) {
      checkFeatures(newest, instances, where);
      p = newest;
      const reads = p.reads;
      let same: ReadDone | undefined;
      for (const d of done) same ??= rowsFor(reads, d);
      if (same !== undefined) {
        rows = same.rows;
        continue;
      }
      if (done.length > 1) {
        throw new HttpError(
          503,
          'SINK_UNAVAILABLE',
          `model "${oneLine(p.model)}": its serving plan changed twice during the feature read, to other reads each time; retry`,
        );
      }
      rows = await readFor(p);
      done.push({ reads, rows });
    }
    // Most requests: one chunk or less, scored at once (no await, as before the chunks).
    if (!walksChunks(p, instances.length)) return scoredWith(p, { reads: p.reads, rows });
    if (scorings === MAX_SCORINGS) {
      throw new HttpError(
        503,
        'SINK_UNAVAILABLE',
        `model "${oneLine(p.model)}": its serving plan changed ${MAX_SCORINGS} times during the request's scoring; retry`,
      );
    }
    const plan = p;
    const scored = await scoreRowsInChunks(plan, request, rows, now, newId, where, () => current() !== plan);
    if (scored !== undefined && current() === plan) return scoredWith(plan, { reads: plan.reads, rows }, scored);
    // Swapped between chunks: the newest plan scores it (above), with the rows read when it reads the same.
  }
}

/** Phases 1-3 of {@link scoreInstances} at once, on the rows read for the plan (synchronous). */
function scoreRows(
  plan: ServingPlan,
  request: { readonly batch: boolean; readonly instances: readonly Instance[] },
  rows: Rows,
  now: number,
  newId: () => string,
  where: (i: number) => string,
): Scored {
  const encoded = encodeRows(plan, request, rows, where);
  for (const [v, b] of encoded.batches) {
    if (b.count === 0) continue;
    try {
      b.scores = v.loaded.scorer.predict(b.rows.subarray(0, b.count * v.loaded.features.length));
    } catch (error) {
      scorerFailed(plan, encoded, v, b, error);
    }
  }
  return answers(plan, request, encoded, now, newId, where);
}

/**
 * Phases 1-3 of {@link scoreInstances}, the batch calls in chunks of about
 * {@link SCORING_CHUNK_LEVELS} tree levels, each after a turn of the event loop (other requests,
 * /healthz, are served in between); undefined, with no more work done, once `swapped` says the
 * plan was replaced meanwhile. Each row is scored exactly as in one call: a row's trees are summed
 * in order whatever the rows beside it.
 */
async function scoreRowsInChunks(
  plan: ServingPlan,
  request: { readonly batch: boolean; readonly instances: readonly Instance[] },
  rows: Rows,
  now: number,
  newId: () => string,
  where: (i: number) => string,
  swapped: () => boolean,
): Promise<Scored | undefined> {
  const encoded = encodeRows(plan, request, rows, where);
  for (const [v, b] of encoded.batches) {
    if (b.count === 0) continue;
    const f = v.loaded.features.length;
    const per = Math.max(1, Math.floor(SCORING_CHUNK_LEVELS / Math.max(1, v.loaded.scorer.totalDepth)));
    const scores = new Float64Array(b.count);
    let from = 0;
    for (; from < b.count; from += per) {
      await nextTurn();
      if (swapped()) return undefined;
      const to = Math.min(b.count, from + per);
      try {
        v.loaded.scorer.predict(b.rows.subarray(from * f, to * f), scores.subarray(from, to));
      } catch (error) {
        scorerFailed(plan, encoded, v, b, error);
        break;
      }
    }
    if (from >= b.count) b.scores = scores;
  }
  return answers(plan, request, encoded, now, newId, where);
}

/**
 * A version's batch call threw: production's answers fail the request; a version scored only for
 * comparison never does (its scores are missing); neither do the canary's, whose share production
 * then answers (phase 3).
 */
function scorerFailed(plan: ServingPlan, encoded: Encoded, v: PlannedVersion, b: VersionBatch, error: unknown): void {
  if (b.answers && v === plan.production) throw error;
  if (b.answers) encoded.canaryScorerError ??= error instanceof Error ? error.message : String(error);
}

/** A request after phase 1: each version's input matrix, and what scores each instance. */
interface Encoded {
  readonly batches: Map<PlannedVersion, VersionBatch>;
  /** Per instance: its answer, the others scored on it, and the canary of its share when production answers for it. */
  readonly planned: Array<{ answer: Scoring; extra: readonly Scoring[]; canaryUnscored: PlannedVersion | undefined }>;
  canaryFailures: { version: string; count: number; why: string } | undefined;
  /** The first error of the canary's batch call, when it threw. */
  canaryScorerError: string | undefined;
}

/** Counts an instance of the canary's share that production answers, with the first reason. */
function canaryFailed(encoded: Encoded, v: PlannedVersion, why: () => string): void {
  encoded.canaryFailures ??= { version: v.loaded.version, count: 0, why: oneLine(why()) };
  encoded.canaryFailures.count++;
}

/** The record of a version left out of the request: it scores no instance (no record built). */
const LEFT_OUT: Readonly<Record<string, FeatureValue>> = Object.freeze({});

/**
 * Phase 1 of {@link scoreInstances}, per instance in order: which versions score it, and each one's
 * feature record, encoded into that version's input matrix. Phase 2: one batch call per version
 * (the scorer interleaves rows; a call per row was 1.5× slower), or its chunks. Phase 3
 * ({@link answers}): the answers and log records, in instance order.
 */
function encodeRows(
  plan: ServingPlan,
  request: { readonly batch: boolean; readonly instances: readonly Instance[] },
  rows: Rows,
  where: (i: number) => string,
): Encoded {
  const { instances } = request;
  // Again: the plan may have been swapped during the read (a deeper version promoted).
  checkScoringWork(plan, instances.length);
  // The canary and shadows too costly for this request score none of it (each named in `unscored`).
  const skipped = leftOut(plan, instances.length);
  const batches = new Map<PlannedVersion, VersionBatch>();
  const batchOf = (v: PlannedVersion): VersionBatch => {
    let b = batches.get(v);
    if (b === undefined) {
      const f = v.loaded.features.length;
      b = { rows: new Float32Array(instances.length * f), count: 0, scores: undefined, answers: false };
      batches.set(v, b);
    }
    return b;
  };
  /** Out-of-range numbers of the record `record` built last (a Scoring keeps it). */
  let recordOutOfRange = 0;
  const record = (v: PlannedVersion, i: number, inst: Instance): Readonly<Record<string, FeatureValue>> => {
    recordOutOfRange = 0;
    const names = v.loaded.features;
    const { categorical } = v.loaded.encoder;
    const given = inst.features;
    const out: Record<string, FeatureValue> = {};
    for (let j = 0; j < names.length; j++) {
      const name = names[j]!;
      let value: FeatureValue | undefined;
      if (given !== undefined && Object.hasOwn(given, name)) value = given[name];
      else {
        const r = v.sources[j]!;
        if (r >= 0 && rows !== undefined) value = rows[r]![i]?.features[name];
      }
      // A number beyond float32's range is missing to the model (trainerFeatureEncoder) and to the
      // trainer (out_of_range_values): logged as sent (1e+308), monitors saw a value the model never did.
      // Counted on the answered record, the one the trainer reads (as null now, not out_of_range_values).
      if (typeof value === 'number' && missingAsFloat32(value) && !categorical.has(name)) {
        value = null;
        recordOutOfRange++;
      }
      setOwn(out, name, value ?? null);
    }
    return out;
  };
  const planned: Encoded['planned'] = [];
  const encoded: Encoded = { batches, planned, canaryFailures: undefined, canaryScorerError: undefined };
  /**
   * Encodes the record into the version's matrix; its row, or -1 when the version cannot take it
   * (a version scored only for comparison, or the canary when production can answer instead).
   */
  const enqueue = (
    v: PlannedVersion,
    rec: Readonly<Record<string, FeatureValue>>,
    answered: boolean,
    i: number,
  ): number => {
    const b = batchOf(v);
    try {
      v.loaded.encoder.encode(rec, b.rows, b.count * v.loaded.features.length);
    } catch (error) {
      if (answered && error instanceof ScoringInputError) {
        if (v !== plan.production) {
          // The canary cannot take a value production may: production answers (below).
          canaryFailed(encoded, v, () => `cannot take ${error.message}`);
          return -1;
        }
        throw badRequest(`${where(i)}.${error.message}`);
      }
      if (answered || !(error instanceof DriftlineError)) throw error;
      return -1; // a version scored only for comparison never fails the request
    }
    if (answered) b.answers = true;
    return b.count++;
  };
  for (let i = 0; i < instances.length; i++) {
    const inst = instances[i]!;
    const found = rows?.some((r) => r[i] !== undefined) === true;
    if (!found && (inst.features === undefined || isEmpty(inst.features))) {
      const views = plan.reads.map((r) => r.view.name).join(', ');
      throw new HttpError(
        422 as number,
        'NOT_FOUND',
        `${where(i)}: entity ${JSON.stringify(inst.entityId)} has no features in ${views === '' ? 'the online store' : `views ${views}`} and the request passes none`,
      );
    }
    let answer = answering(plan, inst.entityId);
    let canaryUnscored: PlannedVersion | undefined;
    const why = skipped?.get(answer);
    if (why !== undefined) {
      // The canary is left out of this request: production answers its share, as when it fails.
      canaryFailed(encoded, answer, () => why);
      canaryUnscored = answer;
      answer = plan.production;
    }
    let answerRecord = record(answer, i, inst);
    let answerOutOfRange = recordOutOfRange;
    let row = enqueue(answer, answerRecord, true, i);
    if (row < 0) {
      // The canary could not take it: production answers, as for an entity outside the share.
      canaryUnscored = answer;
      answer = plan.production;
      answerRecord = record(answer, i, inst);
      answerOutOfRange = recordOutOfRange;
      row = enqueue(answer, answerRecord, true, i);
    }
    // A canary-answered instance is scored by production too: the pair (canary, production) on the
    // same instance. Not logged as a record of its own.
    const others = answer === plan.production ? plan.shadows : [plan.production, ...plan.shadows];
    planned.push({
      canaryUnscored,
      answer: { v: answer, record: answerRecord, row, outOfRange: answerOutOfRange },
      extra:
        others.length === 0
          ? NONE
          : others.map((v) => {
              if (skipped?.has(v) === true) return { v, record: LEFT_OUT, row: -1, outOfRange: 0 };
              const rec = record(v, i, inst);
              const counted = recordOutOfRange;
              return { v, record: rec, row: enqueue(v, rec, false, i), outOfRange: counted };
            }),
    });
  }
  return encoded;
}

/** Phase 3 of {@link scoreInstances}: the answers and log records, in instance order, once the batch calls ran. */
function answers(
  plan: ServingPlan,
  request: { readonly batch: boolean; readonly instances: readonly Instance[] },
  encoded: Encoded,
  now: number,
  newId: () => string,
  where: (i: number) => string,
): Scored {
  const { instances } = request;
  const { batches, planned, canaryScorerError } = encoded;
  const scoreOf = (s: Scoring) => batches.get(s.v)!.scores?.[s.row] ?? Number.NaN;
  const predictions: Prediction[] = [];
  const events: PredictionEvent[] = [];
  let outOfRange = 0;
  let shadowFailures = 0;
  const shadowFailuresByVersion = new Map<string, number>();
  const failed = (v: PlannedVersion) => {
    shadowFailures++;
    shadowFailuresByVersion.set(v.loaded.version, (shadowFailuresByVersion.get(v.loaded.version) ?? 0) + 1);
  };
  for (let i = 0; i < instances.length; i++) {
    const inst = instances[i]!;
    let { answer, extra, canaryUnscored } = planned[i]!;
    const id = newId();
    let score = scoreOf(answer);
    if (!Number.isFinite(score) && answer.v !== plan.production) {
      // The canary scored no finite number (sums beyond float32, its scorer failing): production,
      // first among a canary-answered instance's others (phase 1), answers when it scored one.
      const production = extra[0]!;
      const s = scoreOf(production);
      if (Number.isFinite(s)) {
        const failed = answer.v;
        canaryFailed(encoded, failed, () =>
          canaryScorerError === undefined ? `scored ${score}` : `its scorer failed: ${canaryScorerError}`,
        );
        canaryUnscored = failed;
        answer = production;
        extra = extra.slice(1);
        score = s;
      }
    }
    const version = answer.v.loaded.version;
    // A model whose sums overflow float32 scores ±Infinity (or NaN): never answered as a score.
    if (!Number.isFinite(score)) {
      throw new HttpError(500, 'INTERNAL', `${where(i)}: version ${version} scored ${score}, not a finite number`);
    }
    outOfRange += answer.outOfRange;
    predictions.push({ entity_id: inst.entityId, prediction_id: id, score, version, role: answer.v.role });
    // Every version scored on this instance, by version: the paired comparison of versions reads
    // it from the answered record (the labels join that one).
    const scores: Record<string, number> = {};
    setOwn(scores, version, score);
    const answered = event(
      plan.model,
      answer.v,
      id,
      inst.entityId,
      inst.eventTime ?? now,
      answer.record,
      score,
      scores,
    );
    events.push(answered);
    // Versions that were to score the instance and could not, with their roles: without them the
    // paired comparison saw only the instances a version could score, and a canary failing on the
    // hard cases (production answering them) looked better than it was.
    let unscored = canaryUnscored === undefined ? undefined : withUnscored(undefined, canaryUnscored);
    for (const other of extra) {
      const s = other.row < 0 ? Number.NaN : scoreOf(other);
      if (!Number.isFinite(s)) {
        failed(other.v);
        unscored = withUnscored(unscored, other.v);
        continue;
      }
      setOwn(scores, other.v.loaded.version, s);
      if (other.v.role !== 'shadow') continue;
      // The shadow's own id, derived from the answered one: drift of the shadow reads these
      // records; they are never joined with labels (the answered record's scores are).
      const shadowId = `${id}.shadow.${other.v.loaded.version}`;
      events.push(event(plan.model, other.v, shadowId, inst.entityId, inst.eventTime ?? now, other.record, s, null));
    }
    if (unscored !== undefined) answered.unscored = unscored;
  }
  const { canaryFailures } = encoded;
  return { predictions, events, shadowFailures, shadowFailuresByVersion, canaryFailures, outOfRange };
}

/** `unscored` (created when absent) with `v` named in it, under the role it held. */
function withUnscored(unscored: Record<string, string> | undefined, v: PlannedVersion): Record<string, string> {
  const out = unscored ?? {};
  setOwn(out, v.loaded.version, v.role);
  return out;
}

function event(
  model: string,
  v: PlannedVersion,
  id: string,
  entityId: string,
  now: number,
  features: Readonly<Record<string, FeatureValue>>,
  prediction: number,
  scores: Record<string, number> | null,
): PredictionEvent {
  return {
    prediction_id: id,
    model,
    model_version: v.loaded.version,
    entity_id: entityId,
    event_time: now,
    features,
    prediction,
    predicted_class: null,
    role: v.role,
    scores,
  };
}

/**
 * The rows of every read of the plan, in one batch read of the store for any ordinary request, in
 * several when the instances times the views pass the store's bound ({@link MAX_READ_BATCH}
 * entities per read): DRIFTLINE_MODEL_SERVER_MAX_BATCH allows up to 10,000 instances. The rows one
 * read reads hold at most `maxRowBytes` as stored (refused by the store before it reads them).
 * Split, each distinct entity is read once (its row shared by its instances), and each part may
 * read what the parts before it left of the bound, counted by the rows they returned (an estimate,
 * {@link rowBytes}); a part over it is refused naming the request's bytes. Before, each part had a share of the bound by its
 * entities: rows of 32 MiB in all, heavy ones in one part, or an entity repeated in several parts,
 * were a 400 (found by a review).
 */
async function readRows(
  store: OnlineStore,
  reads: ServingPlan['reads'],
  entities: readonly string[],
  maxRowBytes: number,
  signal: AbortSignal | undefined,
): Promise<Array<Array<FeatureRow | undefined>>> {
  const read = (part: readonly string[], bound: number) =>
    store.readBatch(
      reads.map((r) => ({ view: r.view, entities: part, features: r.features })),
      signal === undefined ? { maxRowBytes: bound } : { maxRowBytes: bound, signal },
    );
  const per = Math.max(1, Math.floor(MAX_READ_BATCH / reads.length));
  if (entities.length <= per) return read(entities, maxRowBytes);
  const distinct = [...new Set(entities)];
  if (distinct.length <= per) return spread(await read(distinct, maxRowBytes), distinct, entities);
  const got = reads.map((): Array<FeatureRow | undefined> => []);
  let used = 0;
  for (let from = 0; from < distinct.length; from += per) {
    const part = await read(distinct.slice(from, from + per), Math.max(0, maxRowBytes - used)).catch(
      (error: unknown) => {
        // The part's bytes and the bound left are the part's: the request's are said instead.
        const over = error instanceof DriftlineError ? error.details.rowBytes : undefined;
        if (error instanceof DriftlineError && error.code === 'BAD_REQUEST' && typeof over === 'number') {
          throw new DriftlineError(
            'BAD_REQUEST',
            `the rows asked for hold at least ${used + over} bytes in the online store, more than the ${maxRowBytes} a request may read`,
            { details: { rowBytes: used + over, maxRowBytes } },
          );
        }
        throw error;
      },
    );
    part.forEach((rows, k) => {
      for (const row of rows) {
        used += rowBytes(row);
        got[k]!.push(row);
      }
    });
  }
  return spread(got, distinct, entities);
}

/**
 * Bytes a row read holds, about as the store keeps it (a JSON object of strings: its time, event
 * id, copy digest and values). The store reports no count, so only the features asked for count,
 * a number as 12 bytes; `JSON.stringify` took 40 % of a 10,000-instance request's time.
 */
function rowBytes(row: FeatureRow | undefined): number {
  if (row === undefined) return 0;
  let bytes = ROW_OVERHEAD_BYTES + Buffer.byteLength(row.eventId);
  const { features } = row;
  for (const name in features) {
    const value = features[name];
    if (value === null || value === undefined) continue; // not stored
    bytes += name.length + 6 + (typeof value === 'string' ? Buffer.byteLength(value) : 12);
  }
  return bytes;
}

/** A stored row's bytes beside its event id and values: braces, its time and copy digest, their names. */
const ROW_OVERHEAD_BYTES = 64;

/** The rows read of `distinct` entities, per read, for each of `entities` (repeats share a row). */
function spread(
  got: ReadonlyArray<ReadonlyArray<FeatureRow | undefined>>,
  distinct: readonly string[],
  entities: readonly string[],
): Array<Array<FeatureRow | undefined>> {
  const at = new Map(distinct.map((e, i) => [e, i]));
  return got.map((rows) => entities.map((e) => rows[at.get(e)!]));
}
