import type { CanarySpec, ModelStages } from '@driftline/policy';

/** What one model serves: the production version, the canary and the shadows (operator overrides applied). */
export interface ServedSet {
  readonly production: string;
  readonly canary?: CanarySpec;
  readonly shadows: readonly string[];
}

export interface StageOverrides {
  /** DRIFTLINE_MODEL_SERVER_CANARY of the model: replaces the canary of models.v1. */
  readonly canary?: CanarySpec;
  /** DRIFTLINE_MODEL_SERVER_SHADOW of the model: scored in addition to the shadows of models.v1. */
  readonly shadows?: readonly string[];
}

/**
 * The versions a model serves (pure), or undefined before its first promotion. A static canary
 * (operator override) replaces the staged one; static shadows add to the staged ones and the watched
 * version. A version is served in one role only: production, then canary, then shadow.
 */
export function servedSet(s: ModelStages, overrides: StageOverrides = {}): ServedSet | undefined {
  const production = s.production;
  if (production === undefined) return undefined;
  const c = overrides.canary ?? s.canary;
  const canary = c === undefined || c.version === production ? undefined : c;
  const shadows: string[] = [];
  for (const v of [...s.shadows, ...s.watched, ...(overrides.shadows ?? [])]) {
    if (v !== production && v !== canary?.version && !shadows.includes(v)) shadows.push(v);
  }
  return { production, ...(canary === undefined ? {} : { canary }), shadows };
}
