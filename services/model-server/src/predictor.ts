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
  /** Versions scored only for comparison (shadows, production on canary instances) that could not score an instance (they never fail the request). */
  readonly shadowFailures: number;
  /** The same failures by version (each a version of the plan, so from models.v1: bounded). */
  readonly shadowFailuresByVersion: ReadonlyMap<string, number>;
  /**
   * Instances of the canary's share that the canary could not answer (a request value it encodes
   * differently from production, a score that is not a finite number, its scorer failing):
   * production answered them, and `why` is the first reason, in one line.
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
   * `plan` reads other views or features than those rows, a 400 as scoring would give one.
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
 * Most tree levels one request may walk: its instances × the depths, summed over all trees, of every
 * version it scores (production, canary, shadows). A request past it is a 413 before any read. Its
 * scoring runs on the serving thread, 20 to 50 ns a level: 200 chain trees of depth 999 (within the
 * served model bounds) and a batch of 1,000 held every other request, /healthz included, for 4 s.
 * 1,000 trees of depth 10 scored by production, a canary and two shadows at a batch of 1,000 is
 * 40,000,000.
 */
export const MAX_REQUEST_TREE_LEVELS = 50_000_000;

/** Throws the 413 of a request that would walk more than {@link MAX_REQUEST_TREE_LEVELS} tree levels with `plan`. */
export function checkScoringWork(plan: ServingPlan, instances: number): void {
  let levels = plan.production.loaded.scorer.totalDepth;
  if (plan.canary !== undefined) levels += plan.canary.planned.loaded.scorer.totalDepth;
  for (const s of plan.shadows) levels += s.loaded.scorer.totalDepth;
  if (instances * levels <= MAX_REQUEST_TREE_LEVELS) return;
  throw new HttpError(
    413,
    'BAD_REQUEST',
    `request would walk ${instances * levels} tree levels (${instances} instances × ${levels}, the levels of every version of model "${oneLine(plan.model)}" it scores: production, canary, shadows), more than ${MAX_REQUEST_TREE_LEVELS}: send at most ${Math.max(1, Math.floor(MAX_REQUEST_TREE_LEVELS / levels))} instances per request (DRIFTLINE_MODEL_SERVER_MAX_BATCH bounds a batch)`,
  );
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
 * reads none) and the request's values, which take precedence. The read is the only wait: when the
 * plan was swapped during it, the request is scored by the new plan (its features read again only
 * when that plan reads other views or features than every read done, in any order; a plan swapped again during
 * that second read, to reads neither read did, is a 503 to retry rather than a third read; one
 * swapped back to the first read's reads is scored with its rows), so no request is scored by a plan
 * replaced before its scoring. A feature that is neither in the store nor in the request is
 * missing: null in the log, NaN to the model, which takes its trained default direction; so is a
 * number beyond float32's range. An instance with no row in any view and no values of its own is a
 * 422 (nothing to score); a value for a feature no version takes, or one production cannot encode,
 * is a 400. An instance of the canary's share that only the canary cannot encode (a request-only
 * feature it takes as a number where production takes categories) is answered by production and
 * counted (`canaryFailures`): it was a 400 to the same entities on every retry. Shadows score every
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
    return needed ? await readRows(store, p.reads, entities, maxRowBytes) : undefined;
  };
  let p = current();
  checkFeatures(p, instances, where);
  checkScoringWork(p, instances.length);
  let rows = await readFor(p);
  // The reads done so far and their rows (at most two): a plan swapped away and back (A, B, A)
  // reads what an earlier read read, and is scored with its rows (a 503 to 4.3% of requests under
  // a fast-moving models.v1 before, found by a review).
  const done: ReadDone[] = [{ reads: p.reads, rows }];
  // After the read, no await until the answer is scored: the plan checked last is the one that scores.
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
  const scoredWith = (plan: ServingPlan, rowsOf: ReadDone) => {
    const scored: ScoredRequest = {
      ...scoreRows(plan, request, rowsOf.rows, now, newId, where),
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
        return scoredWith(next, same);
      },
    };
    return scored;
  };
  return scoredWith(p, { reads: p.reads, rows });
}

/** Phases 1-3 of {@link scoreInstances}, on the rows read for the plan (synchronous). */
function scoreRows(
  plan: ServingPlan,
  request: { readonly batch: boolean; readonly instances: readonly Instance[] },
  rows: Rows,
  now: number,
  newId: () => string,
  where: (i: number) => string,
): Scored {
  const { instances } = request;
  // Again: the plan may have been swapped during the read (a deeper version promoted).
  checkScoringWork(plan, instances.length);
  // Phase 1, per instance in order: which versions score it, and each one's feature record, encoded
  // into that version's input matrix. Phase 2: one batch call per version (the scorer interleaves
  // rows; a call per row was 1.5× slower). Phase 3: the answers and log records, in instance order.
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
  let canaryFailures: { version: string; count: number; why: string } | undefined;
  const canaryFailed = (v: PlannedVersion, why: () => string) => {
    canaryFailures ??= { version: v.loaded.version, count: 0, why: oneLine(why()) };
    canaryFailures.count++;
  };
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
          canaryFailed(v, () => `cannot take ${error.message}`);
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
  /** Per instance: its answer, the others scored on it, and the canary of its share when production answers for it. */
  const planned: Array<{ answer: Scoring; extra: readonly Scoring[]; canaryUnscored: PlannedVersion | undefined }> = [];
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
    let answerRecord = record(answer, i, inst);
    let answerOutOfRange = recordOutOfRange;
    let row = enqueue(answer, answerRecord, true, i);
    let canaryUnscored: PlannedVersion | undefined;
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
              const rec = record(v, i, inst);
              const counted = recordOutOfRange;
              return { v, record: rec, row: enqueue(v, rec, false, i), outOfRange: counted };
            }),
    });
  }
  let canaryScorerError: string | undefined;
  for (const [v, b] of batches) {
    if (b.count === 0) continue;
    try {
      b.scores = v.loaded.scorer.predict(b.rows.subarray(0, b.count * v.loaded.features.length));
    } catch (error) {
      // A version scored only for comparison never fails the request: its scores are missing; so
      // are the canary's, whose share production then answers (below).
      if (b.answers && v === plan.production) throw error;
      if (b.answers) canaryScorerError ??= error instanceof Error ? error.message : String(error);
    }
  }
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
        canaryFailed(failed, () =>
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
 * entities per read): DRIFTLINE_MODEL_SERVER_MAX_BATCH allows up to 10,000 instances. The rows read
 * hold at most `maxRowBytes` as stored (refused by the store before it reads them); split, each
 * read may hold its share of it (by its entities), so the bound holds for the whole request.
 */
async function readRows(
  store: OnlineStore,
  reads: ServingPlan['reads'],
  entities: readonly string[],
  maxRowBytes: number,
): Promise<Array<Array<FeatureRow | undefined>>> {
  const read = (part: readonly string[], bound: number) =>
    store.readBatch(
      reads.map((r) => ({ view: r.view, entities: part, features: r.features })),
      { maxRowBytes: bound },
    );
  const per = Math.max(1, Math.floor(MAX_READ_BATCH / reads.length));
  if (entities.length <= per) return read(entities, maxRowBytes);
  const out = reads.map((): Array<FeatureRow | undefined> => []);
  for (let from = 0; from < entities.length; from += per) {
    const part = entities.slice(from, from + per);
    const got = await read(part, Math.floor((maxRowBytes * part.length) / entities.length));
    got.forEach((rows, k) => {
      for (const row of rows) out[k]!.push(row);
    });
  }
  return out;
}
