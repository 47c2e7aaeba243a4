import { readFile } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { DriftlineError, type Logger } from '@driftline/core';
import type { FeatureViews } from '@driftline/features';
import type { CanarySpec } from './specs.js';
import { buildVersion, type LoadedVersion, planServing, type ServingPlan } from './version.js';

/** Loads one version's artifacts. */
export type VersionLoader = (model: string, version: string) => Promise<LoadedVersion>;

const NAME = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;

/**
 * Reads `<dir>/<model>/<version>/model.json` and `meta.json`, the trainer's artifact layout. The
 * names are checked to be plain path segments, so nothing outside the directory is read whatever
 * models.v1 carries.
 */
export function artifactLoader(dir: string): VersionLoader {
  const root = resolve(dir);
  return async (model, version) => {
    for (const [what, name] of [
      ['model', model],
      ['version', version],
    ] as const) {
      if (!NAME.test(name)) {
        throw new DriftlineError(
          'VALIDATION_FAILED',
          `${what} ${JSON.stringify(name.slice(0, 140))} cannot name an artifact directory`,
        );
      }
    }
    const at = join(root, model, version);
    if (!at.startsWith(root + sep))
      throw new DriftlineError('VALIDATION_FAILED', `${model}/${version} escapes the artifact directory`);
    let modelText: string;
    let metaText: string;
    try {
      [modelText, metaText] = await Promise.all([
        readFile(join(at, 'model.json'), 'utf8'),
        readFile(join(at, 'meta.json'), 'utf8'),
      ]);
    } catch (error) {
      throw new DriftlineError(
        'NOT_FOUND',
        `model ${model} version ${version}: no artifacts in ${at} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
        { cause: error },
      );
    }
    return buildVersion(model, version, modelText, metaText);
  };
}

export interface ServingTableOptions {
  readonly views: FeatureViews;
  readonly load: VersionLoader;
  readonly canaries: ReadonlyMap<string, CanarySpec>;
  readonly shadows: ReadonlyMap<string, readonly string[]>;
  readonly logger: Logger;
  /** Called after each swap (metrics, tests). */
  readonly onSwap?: (plan: ServingPlan) => void;
}

/**
 * The models served and how: one immutable {@link ServingPlan} per model, replaced whole when a
 * version is promoted. Loading (file reads, parsing, compiling) happens before the swap, and a
 * request takes the plan once when it starts, so a swap never drops or fails a request: requests
 * already running finish on the old plan, the next ones get the new one. Promotions of one model
 * are applied in order; a version that fails to load leaves the current plan serving.
 */
export class ServingTable {
  private readonly plans = new Map<string, ServingPlan>();
  private readonly chains = new Map<string, Promise<void>>();
  /** Loaded versions by `model/version`, kept while a plan uses them (static canary/shadow reused across swaps). */
  private readonly loaded = new Map<string, LoadedVersion>();

  constructor(private readonly options: ServingTableOptions) {}

  get(model: string): ServingPlan | undefined {
    return this.plans.get(model);
  }

  /** Every served model with its versions and roles (for `GET /v1/models`). */
  describe(): Array<{
    model: string;
    production: string;
    canary?: { version: string; share: number };
    shadows: string[];
  }> {
    return [...this.plans.values()].map((p) => ({
      model: p.model,
      production: p.production.loaded.version,
      ...(p.canary === undefined
        ? {}
        : { canary: { version: p.canary.planned.loaded.version, share: p.canary.share } }),
      shadows: p.shadows.map((s) => s.loaded.version),
    }));
  }

  /** Makes `version` the production version of `model` (after the promotions queued before it). */
  promote(model: string, version: string): Promise<void> {
    const next = (this.chains.get(model) ?? Promise.resolve()).then(() => this.swap(model, version));
    const settled = next.catch(() => {});
    this.chains.set(model, settled);
    void settled.then(() => {
      if (this.chains.get(model) === settled) this.chains.delete(model);
    });
    return next;
  }

  private async version(model: string, version: string): Promise<LoadedVersion> {
    const key = `${model}/${version}`;
    const known = this.loaded.get(key);
    if (known !== undefined) return known;
    const v = await this.options.load(model, version);
    this.loaded.set(key, v);
    return v;
  }

  private async optional(model: string, version: string, role: string): Promise<LoadedVersion | undefined> {
    try {
      return await this.version(model, version);
    } catch (error) {
      this.options.logger.warn(
        { model, version, role, err: (error as Error).message },
        'configured version not loaded; served without it',
      );
      return undefined;
    }
  }

  private async swap(model: string, version: string): Promise<void> {
    const { logger, views } = this.options;
    const production = await this.version(model, version);
    const spec = this.options.canaries.get(model);
    const canary =
      spec === undefined || spec.version === version ? undefined : await this.optional(model, spec.version, 'canary');
    const shadows: LoadedVersion[] = [];
    for (const s of this.options.shadows.get(model) ?? []) {
      if (s === version) continue;
      const v = await this.optional(model, s, 'shadow');
      if (v !== undefined) shadows.push(v);
    }
    const plan = planServing(views, {
      production,
      ...(canary === undefined || spec === undefined ? {} : { canary: { loaded: canary, share: spec.share } }),
      shadows,
    });
    const previous = this.plans.get(model);
    this.plans.set(model, plan);
    // Forget versions of this model no plan uses any more.
    const inUse = new Set(
      [plan.production, ...(plan.canary ? [plan.canary.planned] : []), ...plan.shadows].map((p) => p.loaded),
    );
    for (const [key, v] of this.loaded) if (v.model === model && !inUse.has(v)) this.loaded.delete(key);
    logger.info(
      {
        model,
        version,
        previous: previous?.production.loaded.version,
        canary: plan.canary?.planned.loaded.version,
        shadows: shadows.map((s) => s.version),
      },
      'model swapped',
    );
    this.options.onSwap?.(plan);
  }
}
