import { DriftlineError } from '@driftline/core';
import { LATE_ONLY_FEATURE, PREDICTED_CLASS_FEATURE, PREDICTION_FEATURE } from '@driftline/drift';
import { STAGE_TRANSITIONS } from '@driftline/policy';
import {
  MAX_REPORT_FEATURES,
  type ModelCardData,
  type ModelCardDecision,
  type ModelCardDrift,
  type ModelCardLive,
  type ModelCardTraining,
  type ModelCardTransition,
} from '@driftline/report';
import type { ClickHouse } from '../client.js';
import { lastPromoted, SAMPLED_LABELS, stageViewAt } from './report.js';

// Tables a card reads; a missing one leaves its part empty with a note (an older database).
const TABLES = [
  'model_versions',
  'retrain_decisions',
  'reference_profiles',
  'model_transitions',
  'performance_windows',
  'drift_windows',
] as const;
type Table = (typeof TABLES)[number];

const LIVE_METRICS = ['roc_auc', 'accuracy', 'f1', 'log_loss', 'brier', 'mae', 'rmse'] as const;
/**
 * Segments shown per segment feature, the most labelled first: enough for a page, bounded whatever
 * the feature's cardinality. Per feature: one cap over all of them, alphabetical, let a feature of
 * 480 segments hide another feature (and its degraded segment) whole, saying nothing.
 */
const MAX_SEGMENTS_PER_FEATURE = 50;
/** Live rows per card at most, whatever the number of segment features. */
const MAX_LIVE_ROWS = 1_000;

const ms = (v: unknown) => Number(v);

async function loadTraining(ch: ClickHouse, model: string, version: string): Promise<ModelCardTraining | undefined> {
  const [x] = await ch.select<{
    request_id: string;
    base_version: string;
    status: string;
    promotion_reason: string;
    df: number;
    dt: number;
    rows_train: number;
    rows_holdout: number;
    device: string;
    device_reason: string;
    metrics: Record<string, number | null>;
    params: string;
    artifact_uri: string;
    reference_id: string | null;
    reference_uri: string | null;
    ra: number;
  }>(
    `SELECT request_id, base_version, status, promotion_reason, toUnixTimestamp64Milli(data_from) AS df,
       toUnixTimestamp64Milli(data_to) AS dt, rows_train, rows_holdout, device, device_reason, metrics, params,
       artifact_uri, reference_id, reference_uri, toUnixTimestamp64Milli(registered_at) AS ra
     FROM ${ch.table('model_versions')} FINAL
     WHERE model = {model:String} AND version = {version:String}
     ORDER BY updated_at DESC LIMIT 1`,
    { model, version },
  );
  if (x === undefined) return undefined;
  return {
    requestId: x.request_id,
    challenged: x.base_version,
    status: x.status,
    reason: x.promotion_reason,
    dataFrom: ms(x.df),
    dataTo: ms(x.dt),
    rowsTrain: Number(x.rows_train),
    rowsHoldout: Number(x.rows_holdout),
    device: x.device,
    deviceReason: x.device_reason,
    // NaN and ±Inf arrive as JSON null: kept null ("—"), never Number(null) = 0.
    metrics: Object.fromEntries(Object.entries(x.metrics).map(([k, v]) => [k, v === null ? null : Number(v)])),
    params: x.params,
    artifactUri: x.artifact_uri,
    referenceId: x.reference_id,
    referenceUri: x.reference_uri,
    registeredAt: ms(x.ra),
  };
}

async function loadDecision(ch: ClickHouse, model: string, requestId: string): Promise<ModelCardDecision | undefined> {
  const [x] = await ch.select<{ t: number; reason: string; detail: string; signals: string[]; alert_kind: string }>(
    `SELECT toUnixTimestamp64Milli(decided_at) AS t, reason, detail, signals, alert_kind
     FROM ${ch.table('retrain_decisions')} FINAL
     WHERE model = {model:String} AND request_id = {id:String} AND fired = 1
     ORDER BY decided_at LIMIT 1`,
    { model, id: requestId },
  );
  return x === undefined
    ? undefined
    : { decidedAt: ms(x.t), reason: x.reason, detail: x.detail, signals: x.signals, alertKind: x.alert_kind };
}

async function loadReference(
  ch: ClickHouse,
  model: string,
  version: string,
  referenceId: string | null,
): Promise<{ id: string; createdAt: number; features: string[]; featureCount: number } | undefined> {
  // The first MAX_REPORT_FEATURES names and the count: 100,000 features made a 60.8 MB card.
  // The names libs/drift reserves are not inputs: the prediction's profiles (__prediction__,
  // __predicted_class__) and a late-only window's row (__window__). Exactly those: an input
  // named `__x` is a feature like any (`NOT startsWith(feature, '__')` left it out).
  const input = `feature NOT IN ('${PREDICTION_FEATURE}', '${PREDICTED_CLASS_FEATURE}', '${LATE_ONLY_FEATURE}')`;
  const list = await ch.select<{ reference_id: string; t: number; features: string[]; n: number | string }>(
    `SELECT reference_id, toUnixTimestamp64Milli(max(created_at)) AS t,
       arraySlice(arraySort(groupUniqArrayIf(feature, ${input})), 1, ${MAX_REPORT_FEATURES}) AS features,
       uniqExactIf(feature, ${input}) AS n
     FROM ${ch.table('reference_profiles')} FINAL
     WHERE model = {model:String} AND version = {version:String}
       AND ({id:String} = '' OR reference_id = {id:String})
     GROUP BY reference_id ORDER BY t DESC LIMIT 1`,
    { model, version, id: referenceId ?? '' },
  );
  const x = list[0];
  if (x === undefined) return undefined;
  return { id: x.reference_id, createdAt: ms(x.t), features: x.features, featureCount: Number(x.n) };
}

async function loadTransitions(ch: ClickHouse, model: string, version: string): Promise<ModelCardTransition[]> {
  const list = await ch.select<{
    t: number;
    from_stage: string;
    to_stage: string;
    decided_by: string;
    reason: string;
    detail: string;
    evidence: string;
  }>(
    `SELECT toUnixTimestamp64Milli(at) AS t, from_stage, to_stage, decided_by, reason, detail, evidence
     FROM ${ch.table('model_transitions')} FINAL
     WHERE model = {model:String} AND version = {version:String}
     ORDER BY at`,
    { model, version },
  );
  // Ties at one millisecond in the model-controller's order (viewOf: stage order, terminal last),
  // not alphabetical: `production` before `canary` showed a version's stages backwards.
  const order = Object.keys(STAGE_TRANSITIONS).slice(0, 4); // candidate, shadow, canary, production
  const rank = (stage: string) => (order.includes(stage) ? order.indexOf(stage) : order.length);
  list.sort((a, b) => Number(a.t) - Number(b.t) || rank(a.to_stage) - rank(b.to_stage));
  return list.map((x) => ({
    at: ms(x.t),
    from: x.from_stage,
    to: x.to_stage,
    decidedBy: x.decided_by,
    reason: x.reason,
    detail: x.detail,
    evidence: x.evidence,
  }));
}

/**
 * A live metric over the windows with a finite value of it, weighted by their valid labels, those
 * its metrics used (a window with 10 counts a tenth of one with 100; `labeled` had weighted by the
 * invalid ones too, which rows written before invalid labels nulled the metrics still have). A mean of per-label terms (accuracy, log loss,
 * Brier, MAE) pools exactly as the weighted mean; RMSE as the root of the weighted mean square (its
 * weighted mean understated it); ROC AUC and F1 have no such form — the card calls them the mean of
 * windows (libs/report WINDOW_MEAN_METRICS).
 */
function pooled(m: (typeof LIVE_METRICS)[number]): string {
  const has = `${m} IS NOT NULL AND isFinite(${m})`;
  const weight = '(labeled - invalid_labels)';
  const mean = (term: string) =>
    `if(sumIf(${weight}, ${has}) = 0, NULL, sumIf(${term} * ${weight}, ${has}) / sumIf(${weight}, ${has}))`;
  return m === 'rmse' ? `sqrt(${mean(`${m} * ${m}`)}) AS ${m}` : `${mean(m)} AS ${m}`;
}

async function loadLive(
  ch: ClickHouse,
  model: string,
  version: string,
): Promise<{ rows: ModelCardLive[]; count: number }> {
  const weighted = LIVE_METRICS.map(pooled);
  const list = await ch.select<Record<string, unknown>>(
    `SELECT segment_feature, segment, count() AS windows, sum(predictions) AS n_predictions, sum(labeled) AS n_labeled,
       countIf(${SAMPLED_LABELS} > 0) AS n_sampled, sumIf(${SAMPLED_LABELS}, ${SAMPLED_LABELS} > 0) AS sampled_labels_sum,
       sumIf(labeled, ${SAMPLED_LABELS} > 0) AS sampled_of,
       ${weighted.join(',\n       ')},
       count() OVER () AS total_rows
     FROM ${ch.table('performance_windows')} FINAL
     WHERE model = {model:String} AND model_version = {version:String}
       -- Rows of each window's newest recompute only: a segment that left the top segments (late
       -- labels moved it into __other__) keeps its old row, which was counted beside __other__.
       AND (window_start, version) IN (
         SELECT window_start, max(version) FROM ${ch.table('performance_windows')}
         WHERE model = {model:String} AND model_version = {version:String}
         GROUP BY window_start)
     GROUP BY segment_feature, segment
     ORDER BY segment_feature, n_labeled DESC, segment
     LIMIT ${MAX_SEGMENTS_PER_FEATURE} BY segment_feature
     LIMIT ${MAX_LIVE_ROWS}`,
    { model, version },
  );
  const rows = list.map((x) => ({
    segmentFeature: String(x.segment_feature),
    segment: String(x.segment),
    windows: Number(x.windows),
    predictions: Number(x.n_predictions),
    labeled: Number(x.n_labeled),
    metrics: Object.fromEntries(LIVE_METRICS.map((m) => [m, x[m] === null ? null : Number(x[m])])),
    sampled: { windows: Number(x.n_sampled), labels: Number(x.sampled_labels_sum), of: Number(x.sampled_of) },
  }));
  return { rows, count: Number(list[0]?.total_rows ?? 0) };
}

/** The MAX_REPORT_FEATURES most drifted (feature, method) rows, and how many there are. */
async function loadTrainingDrift(
  ch: ClickHouse,
  model: string,
  t: ModelCardTraining,
): Promise<{ rows: ModelCardDrift[]; count: number }> {
  const list = await ch.select<{
    feature: string;
    method: string;
    windows: number;
    n_drifted: number;
    top: number | null;
    total: number | string;
  }>(
    `SELECT feature, method, count() AS windows, sum(drifted) AS n_drifted, maxIfOrNull(statistic, isFinite(statistic)) AS top,
       count() OVER () AS total
     FROM ${ch.table('drift_windows')} FINAL
     WHERE model = {model:String} AND version = {version:String} AND method IN ('psi', 'ks', 'chi2')
       AND window_start >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
       AND window_start < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
     GROUP BY feature, method ORDER BY n_drifted DESC, feature, method
     LIMIT ${MAX_REPORT_FEATURES}`,
    { model, version: t.challenged, from: t.dataFrom, to: t.dataTo },
  );
  const rows = list.map((x) => ({
    feature: x.feature,
    method: x.method,
    windows: Number(x.windows),
    drifted: Number(x.n_drifted),
    maxStatistic: x.top === null ? null : Number(x.top),
  }));
  return { rows, count: Number(list[0]?.total ?? 0) };
}

/**
 * The stage a version is in, read as the report reads production (found by a review: with the
 * default rollout `direct` every version ever promoted said `production`): the version the
 * model-controller's view of the model's transitions serves, else — a model without any — the
 * trainer's last PROMOTED. Any other version that served says whom it was replaced by; a version with
 * transitions its last stage in that view; otherwise what the trainer's gate said.
 */
async function currentStage(
  ch: ClickHouse,
  model: string,
  version: string,
  training: ModelCardTraining | undefined,
  tables: { transitions: boolean; versions: boolean },
  now: number,
): Promise<string> {
  // Transitions recorded up to the card's time, as the report's up to its `to`.
  const to = now + 1;
  const { view, staged } = tables.transitions ? await stageViewAt(ch, model, to) : { view: undefined, staged: false };
  const serving = staged ? view?.production : tables.versions ? await lastPromoted(ch, model, to) : undefined;
  if (serving === version) return 'production';
  const replaced = serving === undefined ? 'production' : `replaced by ${serving}`;
  const own = view?.versions.get(version)?.stage;
  if (own !== undefined) return own === 'production' ? replaced : own;
  if (training?.status === 'PROMOTED') return replaced;
  if (training?.status === 'REJECTED') return 'rejected';
  if (training !== undefined) return 'candidate';
  // No trainer record (the first version, deployed by hand): it served when a trained version challenged it.
  if (serving !== undefined && tables.versions && (await challenged(ch, model, version))) return replaced;
  return 'unknown';
}

/** Whether a trained version of `model` was gated against `version` (its base_version). */
async function challenged(ch: ClickHouse, model: string, version: string): Promise<boolean> {
  const [x] = await ch.select<{ n: number | string }>(
    `SELECT count() AS n FROM ${ch.table('model_versions')} FINAL
     WHERE model = {model:String} AND base_version = {version:String}`,
    { model, version },
  );
  return Number(x?.n ?? 0) > 0;
}

/**
 * Everything the model card of (model, version) shows. NOT_FOUND when nothing at all is recorded
 * for the version (a typo in the name, most likely).
 */
export async function loadModelCard(
  ch: ClickHouse,
  model: string,
  version: string,
  now = Date.now(),
): Promise<ModelCardData> {
  const present = await ch.select<{ name: string }>('SELECT name FROM system.tables WHERE database = {db:String}', {
    db: ch.database,
  });
  const names = new Set(present.map((p) => p.name));
  const has = (t: Table) => names.has(t);
  const notes = TABLES.filter((t) => !has(t)).map(
    (t) => `table ${ch.database}.${t} does not exist (yet): its part of the card is empty`,
  );
  const training = has('model_versions') ? await loadTraining(ch, model, version) : undefined;
  const decision =
    training !== undefined && has('retrain_decisions') ? await loadDecision(ch, model, training.requestId) : undefined;
  const reference = has('reference_profiles')
    ? await loadReference(ch, model, version, training?.referenceId ?? null)
    : undefined;
  const transitions = has('model_transitions') ? await loadTransitions(ch, model, version) : [];
  const { rows: live, count: liveCount } = has('performance_windows')
    ? await loadLive(ch, model, version)
    : { rows: [], count: 0 };
  const trainingDrift =
    training !== undefined && has('drift_windows')
      ? await loadTrainingDrift(ch, model, training)
      : { rows: [], count: 0 };
  if (training === undefined && reference === undefined && transitions.length === 0 && live.length === 0) {
    throw new DriftlineError(
      'NOT_FOUND',
      `model ${model} version ${version}: nothing recorded (no trained version, reference profile, stage or live metrics)`,
    );
  }
  return {
    model,
    version,
    generatedAt: now,
    training,
    features: reference?.features ?? [],
    ...(reference === undefined ? {} : { featureCount: reference.featureCount }),
    decision,
    reference:
      reference === undefined
        ? undefined
        : { id: reference.id, createdAt: reference.createdAt, features: reference.featureCount },
    transitions,
    live,
    liveCount,
    trainingDrift: trainingDrift.rows,
    trainingDriftCount: trainingDrift.count,
    stage: await currentStage(
      ch,
      model,
      version,
      training,
      { transitions: has('model_transitions'), versions: has('model_versions') },
      now,
    ),
    notes,
  };
}
