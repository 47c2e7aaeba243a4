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
 * (operator override) replaces the staged one, unless its version is production (promoted, it is
 * no canary: the staged one serves; before, the override named production and no canary served at
 * all). Static shadows add to the staged ones and the watched version. A version is served in one
 * role only: production, then canary, then shadow.
 */
export function servedSet(s: ModelStages, overrides: StageOverrides = {}): ServedSet | undefined {
  const production = s.production;
  if (production === undefined) return undefined;
  const canary = servedCanary(s, overrides);
  const shadows: string[] = [];
  for (const v of [...s.shadows, ...s.watched, ...(overrides.shadows ?? [])]) {
    if (v !== production && v !== canary?.version && !shadows.includes(v)) shadows.push(v);
  }
  return { production, ...(canary === undefined ? {} : { canary }), shadows };
}

/**
 * The canary models.v1 stages that the operator's canary keeps from serving (pure), or undefined:
 * none is staged, there is no override, or the override names the staged version (another share).
 * Not scored at all: a canary's evidence is the requests it answers as canary (the controller's
 * comparison), so scoring it as a shadow would cost a scoring per request and add none.
 */
export function hiddenCanary(s: ModelStages, overrides: StageOverrides = {}): CanarySpec | undefined {
  const staged = s.canary;
  if (s.production === undefined || staged === undefined || staged.version === s.production) return undefined;
  return servedCanary(s, overrides)?.version === staged.version ? undefined : staged;
}

function servedCanary(s: ModelStages, overrides: StageOverrides): CanarySpec | undefined {
  const o = overrides.canary;
  const c = o !== undefined && o.version !== s.production ? o : s.canary;
  return c === undefined || c.version === s.production ? undefined : c;
}
