import { DriftlineError } from '@driftline/core';
import type { FeatureType, FeatureView, FeatureViews } from '@driftline/features';
import { fieldType } from '@driftline/online-store';
import {
  loadXgboostModel,
  ModelFormatError,
  SERVED_MODEL_LIMITS,
  type TrainerFeatureEncoder,
  trainerFeatureEncoder,
  type XgboostModel,
} from '@driftline/scoring';

/** What a version does for a request: answered (production, canary) or only logged (shadow). */
export type Role = 'production' | 'canary' | 'shadow';

/** One trained version, ready to score: the compiled model and its encoder. */
export interface LoadedVersion {
  readonly model: string;
  readonly version: string;
  readonly scorer: XgboostModel;
  readonly encoder: TrainerFeatureEncoder;
  /** Feature names in model input order (meta.json `features`). */
  readonly features: readonly string[];
}

/**
 * A version from the trainer's artifact files (model.json and meta.json, as text or parsed).
 * Throws `ModelFormatError` naming the field for a malformed model or meta, and refuses a model
 * with more than one output per row (the server answers one score).
 */
export function buildVersion(model: string, version: string, modelJson: unknown, metaJson: unknown): LoadedVersion {
  return versionOf(model, version, loadXgboostModel(modelJson, SERVED_MODEL_LIMITS), metaJson);
}

/** A version from its loaded scorer and its meta.json (text or parsed); throws as `buildVersion`. */
export function versionOf(model: string, version: string, scorer: XgboostModel, metaJson: unknown): LoadedVersion {
  const encoder = trainerFeatureEncoder(metaJson, scorer);
  if (scorer.numOutputs !== 1) {
    throw new DriftlineError(
      'VALIDATION_FAILED',
      `model ${model} version ${version}: ${scorer.objective} has ${scorer.numOutputs} outputs per row; the model server answers one score`,
    );
  }
  return { model, version, scorer, encoder, features: encoder.features };
}

/** One projection of one view, read for every entity of a request. */
export interface ViewRead {
  readonly view: FeatureView;
  readonly features: readonly string[];
}

/** A version as a model's serving plan uses it: where each of its features comes from. */
export interface PlannedVersion {
  readonly loaded: LoadedVersion;
  readonly role: Role;
  /** Per feature (model input order): index into the plan's reads, or -1 (request only). */
  readonly sources: Int32Array;
}

/**
 * How one model is served now: the answering versions, the shadows, and the ONE batch read that
 * feeds all of them (every view that holds one of their features, projected to those features).
 * Immutable: a swap builds a new plan and replaces the reference; a request takes it once its body
 * is read and looks again after its feature read (`scoreInstances`), so a request scored after a
 * swap is scored by the new plan.
 */
export interface ServingPlan {
  readonly model: string;
  readonly production: PlannedVersion;
  readonly canary?: { readonly planned: PlannedVersion; readonly share: number; readonly salt: string };
  readonly shadows: readonly PlannedVersion[];
  readonly reads: readonly ViewRead[];
  /** Every feature some version of the plan takes (request overrides must be among them). */
  readonly features: ReadonlySet<string>;
  /** The declared type of each feature a view serves: a request's value for it must have it. */
  readonly types: ReadonlyMap<string, { readonly type: FeatureType; readonly view: string }>;
}

/**
 * The views a feature comes from: the one view that declares it as a feature or an aggregate, or
 * none (it can only come with the request). A name two views declare is refused: which value the
 * model was trained on would be a guess.
 */
function viewOf(views: FeatureViews, model: string, name: string): FeatureView | undefined {
  const found = views.views.filter((v) => fieldType(v, name) !== undefined);
  if (found.length > 1) {
    throw new DriftlineError(
      'VALIDATION_FAILED',
      `model ${model}: feature "${name}" is declared by views ${found.map((v) => v.name).join(' and ')}; rename one so the model's input is unambiguous`,
    );
  }
  return found[0];
}

export interface PlanInput {
  readonly production: LoadedVersion;
  readonly canary?: { readonly loaded: LoadedVersion; readonly share: number };
  readonly shadows?: readonly LoadedVersion[];
}

/** The serving plan of one model (pure). Throws when a feature is ambiguous between views. */
export function planServing(views: FeatureViews, input: PlanInput): ServingPlan {
  const model = input.production.model;
  const reads: Array<{ view: FeatureView; features: string[] }> = [];
  const features = new Set<string>();
  const types = new Map<string, { type: FeatureType; view: string }>();
  const plan = (loaded: LoadedVersion, role: Role): PlannedVersion => {
    const sources = new Int32Array(loaded.features.length);
    loaded.features.forEach((name, i) => {
      features.add(name);
      const view = viewOf(views, model, name);
      if (view === undefined) {
        sources[i] = -1;
        return;
      }
      const type = fieldType(view, name)!;
      // A string feature the model takes as a number (no categories) fails every request that
      // reads it, with a 400 that blames the client: refused here, with the version.
      if (type === 'string' && !loaded.encoder.categorical.has(name)) {
        throw new ModelFormatError(
          `meta.features.${name}`,
          `view ${view.name} declares a string but version ${loaded.version} takes it as a number (no categories)`,
        );
      }
      types.set(name, { type, view: view.name });
      let r = reads.findIndex((x) => x.view === view);
      if (r === -1) r = reads.push({ view, features: [] }) - 1;
      if (!reads[r]!.features.includes(name)) reads[r]!.features.push(name);
      sources[i] = r;
    });
    return { loaded, role, sources };
  };
  const production = plan(input.production, 'production');
  const canary =
    input.canary === undefined
      ? undefined
      : {
          planned: plan(input.canary.loaded, 'canary'),
          share: input.canary.share,
          // Which entities a canary gets depends on the model and the canary version.
          salt: `${model}:${input.canary.loaded.version}`,
        };
  const shadows = (input.shadows ?? []).map((s) => plan(s, 'shadow'));
  return { model, production, ...(canary === undefined ? {} : { canary }), shadows, reads, features, types };
}
