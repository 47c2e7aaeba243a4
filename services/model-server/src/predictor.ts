import { randomUUID } from 'node:crypto';
import { DriftlineError } from '@driftline/core';
import type { FeatureRow, OnlineStore } from '@driftline/online-store';
import { inCanary } from '@driftline/policy';
import type { FeatureValue, PredictionEvent } from '@driftline/schemas';
import { ScoringInputError } from '@driftline/scoring';
import { badRequest, HttpError } from '@driftline/service/http';
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
}

/** The version that answers an entity: the canary for its sticky share of entities, else production. */
export function answering(plan: ServingPlan, entityId: string): PlannedVersion {
  const c = plan.canary;
  return c !== undefined && inCanary(c.salt, entityId, c.share) ? c.planned : plan.production;
}

/**
 * Scores instances with a serving plan. Features come from ONE batch read of the plan's views
 * (skipped when it reads none) and the request's values, which take precedence. A feature that is
 * neither in the store nor in the request is missing: null in the log, NaN to the model, which
 * takes its trained default direction. An instance with no row in any view and no values of its
 * own is a 422 (nothing to score); a value for a feature no version takes, or one the model cannot
 * encode, is a 400. Shadows score every instance and are logged, never answered. The answered
 * record carries `scores`: every version scored on the instance (production too when the canary
 * answered), by version.
 */
export async function scoreInstances(
  plan: ServingPlan,
  instances: readonly Instance[],
  store: OnlineStore,
  now: number,
  newId: () => string = randomUUID,
): Promise<Scored> {
  const single = instances.length === 1;
  const where = (i: number) => (single ? 'body' : `instances[${i}]`);
  for (const [i, inst] of instances.entries()) {
    if (inst.features === undefined) continue;
    for (const name in inst.features) {
      if (!plan.features.has(name)) {
        throw badRequest(`${where(i)}.features.${name}: not a feature of model "${plan.model}"`);
      }
    }
  }
  const entities = instances.map((x) => x.entityId);
  // No read when every instance passes every stored feature itself (the "features in the request" case).
  const needsRead = plan.reads.some((r) =>
    instances.some((x) => x.features === undefined || r.features.some((f) => !Object.hasOwn(x.features!, f))),
  );
  const rows: Array<Array<FeatureRow | undefined>> = needsRead
    ? await store.readBatch(plan.reads.map((r) => ({ view: r.view, entities, features: r.features })))
    : [];
  const predictions: Prediction[] = [];
  const events: PredictionEvent[] = [];
  let shadowFailures = 0;
  const score = (
    v: PlannedVersion,
    i: number,
    inst: Instance,
  ): { score: number; record: Record<string, FeatureValue> } => {
    const record: Record<string, FeatureValue> = {};
    const names = v.loaded.features;
    const given = inst.features;
    for (let j = 0; j < names.length; j++) {
      const name = names[j]!;
      let value: FeatureValue | undefined;
      if (given !== undefined && Object.hasOwn(given, name)) value = given[name];
      else {
        const r = v.sources[j]!;
        if (r >= 0 && needsRead) value = rows[r]![i]?.features[name];
      }
      record[name] = value ?? null;
    }
    try {
      v.loaded.encoder.encode(record, v.loaded.row);
    } catch (error) {
      if (error instanceof ScoringInputError) throw badRequest(`${where(i)}.${error.message}`);
      throw error;
    }
    return { score: v.loaded.scorer.predictOne(v.loaded.row), record };
  };
  for (const [i, inst] of instances.entries()) {
    const found = rows.some((r) => r[i] !== undefined);
    if (!found && (inst.features === undefined || Object.keys(inst.features).length === 0)) {
      const views = plan.reads.map((r) => r.view.name).join(', ');
      throw new HttpError(
        422 as number,
        'NOT_FOUND',
        `${where(i)}: entity ${JSON.stringify(inst.entityId)} has no features in ${views === '' ? 'the online store' : `views ${views}`} and the request passes none`,
      );
    }
    const answer = answering(plan, inst.entityId);
    const id = newId();
    const a = score(answer, i, inst);
    predictions.push({
      entity_id: inst.entityId,
      prediction_id: id,
      score: a.score,
      version: answer.loaded.version,
      role: answer.role,
    });
    // Every version scored on this instance, by version: the paired comparison of versions reads
    // it from the answered record (the labels join that one).
    const scores: Record<string, number> = { [answer.loaded.version]: a.score };
    events.push(event(plan.model, answer, id, inst.entityId, inst.eventTime ?? now, a.record, a.score, scores));
    // A canary-answered instance is scored by production too: the pair (canary, production) on the
    // same instance. Not logged as a record of its own; a failure never fails the request.
    const extra = answer === plan.production ? plan.shadows : [plan.production, ...plan.shadows];
    for (const other of extra) {
      try {
        const s = score(other, i, inst);
        scores[other.loaded.version] = s.score;
        if (other.role !== 'shadow') continue;
        // The shadow's own id, derived from the answered one: drift of the shadow reads these
        // records; they are never joined with labels (the answered record's scores are).
        events.push(
          event(
            plan.model,
            other,
            `${id}.shadow.${other.loaded.version}`,
            inst.entityId,
            inst.eventTime ?? now,
            s.record,
            s.score,
            null,
          ),
        );
      } catch (error) {
        if (!(error instanceof DriftlineError)) throw error;
        shadowFailures++;
      }
    }
  }
  return { predictions, events, shadowFailures };
}

function event(
  model: string,
  v: PlannedVersion,
  id: string,
  entityId: string,
  now: number,
  features: Record<string, FeatureValue>,
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
