import {
  DriftlineError,
  isRetriable,
  keyedLineLimit,
  type Logger,
  serialByKey,
  toDriftlineError,
} from '@driftline/core';
import type { FeatureViews } from '@driftline/features';
import { gauge, MAX_SERIES_PER_METRIC, type Registry } from '@driftline/observability';
import {
  type CanarySpec,
  EMPTY_STAGES,
  MAX_WATCHED,
  type ModelStages,
  reduceStages,
  type StageEvent,
  withServing,
} from '@driftline/policy';
import type { VersionLoader } from './artifacts.js';
import { hiddenCanary, type ServedSet, type StageOverrides, servedSet } from './stages.js';
import { type LoadedVersion, planServing, type ServingPlan } from './version.js';

export interface ServingTableOptions {
  readonly views: FeatureViews;
  readonly load: VersionLoader;
  /**
   * Operator overrides (DRIFTLINE_MODEL_SERVER_CANARY): replace the canary of models.v1 (one
   * warning per model and staged canary hidden), unless their version is production.
   */
  readonly canaries: ReadonlyMap<string, CanarySpec>;
  /** Operator overrides (DRIFTLINE_MODEL_SERVER_SHADOW): scored in addition to the staged shadows. */
  readonly shadows: ReadonlyMap<string, readonly string[]>;
  readonly logger: Logger;
  /** Where `driftline_model_serving{model,version,role}` is exported (none: not exported). */
  readonly registry?: Registry;
  /** Called after each swap (metrics, tests). */
  readonly onSwap?: (plan: ServingPlan) => void;
}

/**
 * The models served and how: one immutable {@link ServingPlan} per model, replaced whole when
 * models.v1 moves a version between stages. The events of a model are reduced to its stages
 * ({@link applyStageEvent}, pure), the stages and the operator overrides to the versions served
 * ({@link servedSet}), and those to a plan. Loading (file reads, parsing, compiling) happens before
 * the swap, and a request takes the plan once its body is read and again after its feature read
 * (handler, predictor), so it is scored by the plan current when it is scored: a swap drops no
 * request (a second swap to other reads during one feature read is a 503 to retry). The
 * events of one model are applied in order. A production version that fails to load leaves the
 * current production serving (the rest of the change applies); a canary or shadow that fails to
 * load is served without. A version whose load fails for good (not retriable: malformed artifacts,
 * a model that kills the load thread again and again) is given up: one error line, and it is not
 * loaded again until an event of models.v1 names it again (or a restart).
 */
export class ServingTable {
  private readonly plans = new Map<string, ServingPlan>();
  private readonly stages = new Map<string, ModelStages>();
  private readonly serially = serialByKey();
  /** Loaded versions by `model/version`, kept while a plan uses them. */
  private readonly loaded = new Map<string, LoadedVersion>();
  /** Versions that have answered as production here, by model (see `watchServedOnly`). */
  private readonly servedProductions = new Map<string, Set<string>>();
  /** Versions given up by `model/version`, oldest first (at most {@link MAX_GIVEN_UP}). */
  private readonly givenUpVersions = new Map<string, VersionGivenUpError>();
  /** What serves, as a gauge: 1 per model, version and role served (see `showServing`). */
  private readonly servingGauge;
  /** The series of `servingGauge` set per model, by `version/role`: those no longer served are removed. */
  private readonly shown = new Map<string, Map<string, ServingLabels>>();
  /** Models promoted in models.v1 of which no version serves here (see `unservedProduction`). */
  private readonly unserved = new Map<string, UnservedProduction>();
  /** By model, the productions the stages named whose load failed while nothing served (see `unwatchNeverLoaded`). */
  private readonly failedUnserved = new Map<string, Set<string>>();
  /**
   * By model, the staged canary the operator's canary hides, once said (see `sayHiddenCanary`): at
   * most one entry per model with an override.
   */
  private readonly hiddenCanaries = new Map<string, string>();
  /**
   * "version not loaded; served without it", at most once per model and version per
   * {@link NOT_LOADED_LINE_MS} (the rest counted in the next), for as many versions as the serving
   * gauge keeps, the others summed in one line per interval: it was written at every retry of
   * every model (once a minute each at the longest backoff, for ever).
   */
  private readonly notLoadedLines = keyedLineLimit<string>({
    intervalMs: NOT_LOADED_LINE_MS,
    maxKeys: MAX_SERIES_PER_METRIC,
    onFull: 'overflow',
  });

  constructor(private readonly options: ServingTableOptions) {
    // Model and version names come from models.v1: bounded labels. The versions of a model are
    // few (one production, one canary, at most 8 staged shadows, one watched version and the
    // overrides), so only the series cap binds: at the default 100 values per label, 60 models'
    // productions and watched versions put 20 series under version="__other__" (quiet models lost
    // theirs), which remove() cannot clear. Bounding the model alone would leak instead: past 100
    // models, each new version of the rest adds a model="__other__" series that is never removed.
    this.servingGauge =
      options.registry === undefined
        ? undefined
        : gauge(
            options.registry,
            'driftline_model_serving',
            'Versions this instance serves, 1 per model, version and role (production, canary, shadow, watched: the replaced production scored for the rollback watch); compare with model_transitions',
            ['model', 'version', 'role'],
            { bounded: ['model', 'version'], max: MAX_SERIES_PER_METRIC },
          );
  }

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

  /**
   * The production the stages of `model` name while no version of the model serves here (its files
   * missing or unreadable at start and no previous production loads, or it was given up), or
   * undefined: the model serves, or was never promoted. Predict answers 503 for it, not 404
   * "unknown model": the model is known, and another instance (or this one, later) can answer.
   */
  unservedProduction(model: string): UnservedProduction | undefined {
    return this.unserved.get(model);
  }

  /** Every model promoted but served by no version here (for `GET /v1/models`). */
  describeUnserved(): Array<{ model: string; production: string; reason: string }> {
    return [...this.unserved].map(([model, u]) => ({ model, production: u.version, reason: unservedReason(u) }));
  }

  /** The stages the table holds of `model` (none: EMPTY_STAGES), what its next events reduce from. */
  stagesOf(model: string): ModelStages {
    return this.stages.get(model) ?? EMPTY_STAGES;
  }

  /**
   * Whether `model` is followed: a version of it serves or is named by its stages (production,
   * canary, shadow, watched), or it is promoted with nothing serving. A model whose versions all
   * ended (rejected, retired, rolled back) or that was only trained is not (see `forget`).
   */
  follows(model: string): boolean {
    if (this.plans.has(model) || this.unserved.has(model)) return true;
    const s = this.stages.get(model);
    return (
      s !== undefined &&
      (s.production !== undefined || s.canary !== undefined || s.shadows.length > 0 || s.watched.length > 0)
    );
  }

  /**
   * Forgets what the table holds of `model` when it is not followed (its stages: the ended versions
   * remembered to ignore stale events): a later event of it starts afresh, as on a models.v1 cut by
   * retention. Queued after the model's applications.
   */
  forget(model: string): Promise<void> {
    return this.serially(model, async () => {
      if (this.follows(model)) return;
      this.stages.delete(model);
      this.hiddenCanaries.delete(model);
      this.failedUnserved.delete(model);
      this.servedProductions.delete(model);
      for (const [key, e] of this.givenUpVersions) if (e.model === model) this.givenUpVersions.delete(key);
    });
  }

  /** The versions of `model` given up (see the class): not loaded until models.v1 names them again. */
  givenUp(model: string): string[] {
    return [...this.givenUpVersions.values()].filter((e) => e.model === model).map((e) => e.version);
  }

  /**
   * Applies models.v1 events of `model`, in order, after the events queued before them, then swaps
   * the plan once. Rejects when the production version the events ask for could not be loaded
   * (after the swap of everything else, with the previous production still serving). The first
   * `replayed` events were applied before (a retry): only the others are new publications, which
   * make the versions they name loadable again if they were given up.
   *
   * `from`: the stages of the model's events before `events`, reduced from none as they were read
   * (the start-up replay of models.v1, folded by the follower: `reduceStages`); `events` are
   * reduced from them instead of from what the table holds. On the model's first application
   * (the table holds nothing of it) this is what reducing every event here gives. A retry of it
   * reduces from them again; with the events held, it reduced them again on top of the stages the
   * failed attempt left (a fallback serving), which by design changes nothing they already say.
   */
  apply(model: string, events: readonly StageEvent[], replayed = 0, from?: ModelStages): Promise<void> {
    return this.serially(model, () => this.reduce(model, events, replayed, from));
  }

  /** Makes `version` the production version of `model` (a PROMOTED event). */
  promote(model: string, version: string): Promise<void> {
    return this.apply(model, [{ kind: 'PROMOTED', version }]);
  }

  private async version(model: string, version: string): Promise<LoadedVersion> {
    const key = `${model}/${version}`;
    const known = this.loaded.get(key);
    if (known !== undefined) return known;
    const givenUp = this.givenUpVersions.get(key);
    if (givenUp !== undefined) throw givenUp;
    let v: LoadedVersion;
    try {
      v = await this.options.load(model, version);
    } catch (error) {
      if (isRetriable(error)) throw error;
      const final = new VersionGivenUpError(model, version, error);
      this.givenUpVersions.set(key, final);
      for (const oldest of this.givenUpVersions.keys()) {
        if (this.givenUpVersions.size <= MAX_GIVEN_UP) break;
        this.givenUpVersions.delete(oldest);
      }
      // The one line that says so: later events of the model that still name it say nothing.
      this.options.logger.error(
        { model, version, code: final.code, err: toDriftlineError(error).message },
        'model version cannot be loaded: given up, not loaded again until models.v1 publishes it again or the server restarts',
      );
      throw final;
    }
    this.loaded.set(key, v);
    return v;
  }

  /** The first of `versions` that loads, or undefined. */
  private async firstLoadable(model: string, versions: readonly string[]): Promise<LoadedVersion | undefined> {
    for (const v of versions) {
      try {
        return await this.version(model, v);
      } catch {
        // the next one
      }
    }
    return undefined;
  }

  /**
   * A canary or shadow version, or undefined when it cannot serve: it did not load, or it cannot be
   * planned on its own (a feature two views declare). Planned together, such a version failed the
   * whole plan: the model's later stage events never applied, and after a restart it served nothing.
   */
  private async optional(
    model: string,
    version: string,
    role: string,
    failures: Map<string, unknown>,
  ): Promise<LoadedVersion | undefined> {
    try {
      const v = await this.version(model, version);
      planServing(this.options.views, { production: v });
      return v;
    } catch (error) {
      failures.set(version, error);
      if (!(error instanceof VersionGivenUpError)) this.notLoadedLine(model, version, role, error);
      return undefined;
    }
  }

  /** "version not loaded; served without it", rate-limited (see `notLoadedLines`). */
  private notLoadedLine(model: string, version: string, role: string, error: unknown): void {
    const { logger } = this.options;
    const now = Date.now();
    const leftOut = this.notLoadedLines.admit(JSON.stringify([model, version]), now);
    if (leftOut !== undefined) {
      logger.warn(
        { model, version, role, err: (error as Error).message, failures_since_last_line: leftOut + 1 },
        'version not loaded; served without it',
      );
    }
    const over = this.notLoadedLines.overflow(now);
    if (over !== undefined) {
      logger.warn(
        { versions: over.keys, versions_at_least: over.keysAtLeast, failures: over.weight },
        `versions not loaded and served without, of more models and versions than their lines are kept for (${MAX_SERIES_PER_METRIC}): see driftline_model_server_stage_pending`,
      );
    }
  }

  private async reduce(
    model: string,
    events: readonly StageEvent[],
    replayed: number,
    from: ModelStages | undefined,
  ): Promise<void> {
    try {
      await this.reduceAndSwap(model, events, replayed, from);
    } finally {
      if (this.plans.has(model)) {
        this.unserved.delete(model);
        this.failedUnserved.delete(model);
      }
      this.showServing(model);
    }
  }

  private async reduceAndSwap(
    model: string,
    events: readonly StageEvent[],
    replayed: number,
    from: ModelStages | undefined,
  ): Promise<void> {
    const { logger } = this.options;
    for (const e of events.slice(replayed)) {
      for (const v of [e.version, e.previous_version]) if (v) this.givenUpVersions.delete(`${model}/${v}`);
    }
    const before = this.stages.get(model) ?? EMPTY_STAGES;
    const reduced = reduceStages(from ?? before, events);
    // A retry applies its held events again: each was logged when it was new (a folded replay's
    // when it was read).
    for (const { index, reason } of reduced.ignored) {
      const e = events[index]!;
      if (index >= replayed)
        logger.warn({ model, version: e.version, kind: e.kind, reason }, 'models.v1 event ignored');
    }
    let stages = reduced.stages;
    const current = this.plans.get(model);
    // What may serve at start if the production does not load: every watched version, one that
    // failed as production before included (its files may be back).
    const fallbacks = stages.watched;
    stages =
      current === undefined
        ? this.unwatchNeverLoaded(model, stages)
        : this.watchServedOnly(model, before, stages, current);
    this.stages.set(model, stages);
    const overrides: StageOverrides = {
      ...(this.options.canaries.has(model) ? { canary: this.options.canaries.get(model)! } : {}),
      shadows: this.options.shadows.get(model) ?? [],
    };
    const served = servedSet(stages, overrides);
    // No production (no PROMOTED yet).
    if (served === undefined) return;
    this.sayHiddenCanary(model, stages, overrides, served);
    // Replays and TRAINED events change nothing: no reload, no swap — unless the plan is not yet
    // what the stages ask for (a version failed to load before): then any event retries it.
    if (current !== undefined && servesExactly(current, served)) return;
    // Why each canary or shadow the plan serves without does not serve.
    const failures = new Map<string, unknown>();
    const retriable = (v: string) => !failures.has(v) || isRetriable(failures.get(v));
    try {
      await this.swap(model, served, fallbacks, failures);
    } catch (error) {
      // The production version did not load: the stages keep the one actually serving, so that a
      // re-published PROMOTED is a change again, and a version that never served is never watched
      // as "the previous production".
      const serving = this.plans.get(model);
      // Nothing serves the model: its requests are told why (503), not "unknown model" (404).
      if (serving === undefined) {
        this.unserved.set(model, {
          version: served.production,
          retriable: isRetriable(error),
          code: toDriftlineError(error).code,
        });
        const failed = this.failedUnserved.get(model) ?? new Set<string>();
        failed.add(served.production);
        this.failedUnserved.set(model, failed);
      }
      // With nothing serving, a retriable failure holds the events (the retry reduces them again
      // from `before`); one that is not retriable does not, so the stages keep them: reset to
      // `before`, a later ROLLED_BACK v9 -> v1 was reduced without v9 as production, ignored, and
      // v1 never tried until a restart (found by a review).
      this.stages.set(
        model,
        serving === undefined
          ? isRetriable(error)
            ? before
            : stages
          : withServing(stages, before, { production: serving.production.loaded.version, watched: before.watched }),
      );
      // A production given up must not end the retries of a canary or shadow that may still load.
      const retried = [...failures.keys()].filter(retriable);
      if (!isRetriable(error) && retried.length > 0) throw new VersionsNotServedError(model, retried);
      throw error;
    }
    // Production serves; a canary or shadow that could not serve is retried by the caller (a
    // volume not mounted yet, a file being replaced): served without it for good, its comparison
    // would end at max_time with no evidence. Unless it cannot serve whatever the retries (given
    // up, or it cannot be planned): then the caller does not retry.
    const missing = notServed(this.plans.get(model), served);
    if (missing.length > 0) {
      throw new VersionsNotServedError(model, missing, { retriable: missing.some(retriable) });
    }
  }

  /**
   * Says once per model and staged canary that DRIFTLINE_MODEL_SERVER_CANARY keeps the canary
   * models.v1 stages from serving here. It did so silently: the controller waited for evidence of a
   * canary no request reached (found by a review).
   */
  private sayHiddenCanary(model: string, stages: ModelStages, overrides: StageOverrides, served: ServedSet): void {
    const hidden = hiddenCanary(stages, overrides);
    if (hidden === undefined) {
      this.hiddenCanaries.delete(model);
      return;
    }
    if (this.hiddenCanaries.get(model) === hidden.version) return;
    this.hiddenCanaries.set(model, hidden.version);
    this.options.logger.warn(
      {
        model,
        staged_canary: hidden.version,
        staged_share: hidden.share,
        override_canary: served.canary?.version,
        override_share: served.canary?.share,
      },
      `DRIFTLINE_MODEL_SERVER_CANARY serves ${served.canary?.version} as the canary of ${model} instead of ${hidden.version}, the canary models.v1 stages: ${hidden.version} is not scored here, so this instance gives its comparison no evidence; served by no instance, the controller rejects it at max_time (rolled back, too_few_labels). Remove the override to serve it`,
    );
  }

  /**
   * The stages with their watched versions cut to those that answered here, when events reduced
   * together went past a production that never loaded (PROMOTED v2, held for a retry, then
   * PROMOTED v3): v2 was watched as "the version v3 replaced", retried for ever as a shadow, and a
   * rollback of v3 targeted it, while v1, which did serve, was not watched. The one serving now
   * is watched in its place. Versions watched before this step stay (a restart watches what
   * models.v1 says).
   */
  private watchServedOnly(model: string, before: ModelStages, stages: ModelStages, current: ServingPlan): ModelStages {
    const answered = this.servedProductions.get(model);
    const kept = stages.watched.filter((v) => before.watched.includes(v) || answered?.has(v) === true);
    if (kept.length === stages.watched.length) return stages;
    const serving = current.production.loaded.version;
    const watched =
      serving !== stages.production && !kept.includes(serving) ? [...kept, serving].slice(-MAX_WATCHED) : kept;
    this.options.logger.warn(
      { model, never_served: stages.watched.filter((v) => !kept.includes(v)), watched },
      'a replaced production that never served here is not watched; the one that served is',
    );
    return withServing(stages, before, { watched });
  }

  /**
   * With nothing serving: the stages with their watched versions cut to those that did not fail
   * here as production. PROMOTED x9 whose files are missing, then PROMOTED x10 that loads: x9 was
   * watched as "the version x10 replaced" and retried for ever as a shadow (the stage pending
   * alert up for good). A watched version that never was production here stays (a restart watches
   * what models.v1 says), and is still a fallback at start.
   */
  private unwatchNeverLoaded(model: string, stages: ModelStages): ModelStages {
    const failed = this.failedUnserved.get(model);
    if (failed === undefined) return stages;
    const watched = stages.watched.filter((v) => !failed.has(v));
    if (watched.length === stages.watched.length) return stages;
    this.options.logger.warn(
      { model, never_served: stages.watched.filter((v) => failed.has(v)), watched },
      'a replaced production that never served here is not watched',
    );
    return withServing(stages, stages, { watched });
  }

  /**
   * Sets `driftline_model_serving` to what `model` serves now (its plan; a shadow that is the
   * replaced production is `watched`), and removes the series of versions or roles it no longer
   * serves, which would otherwise be exported until a restart and hold their bounded places.
   */
  private showServing(model: string): void {
    const metric = this.servingGauge;
    if (metric === undefined) return;
    const plan = this.plans.get(model);
    const watched = this.stages.get(model)?.watched ?? [];
    const now = new Map<string, ServingLabels>();
    const add = (version: string, role: ServingLabels['role']) =>
      now.set(`${version}/${role}`, { model, version, role });
    if (plan !== undefined) {
      add(plan.production.loaded.version, 'production');
      if (plan.canary !== undefined) add(plan.canary.planned.loaded.version, 'canary');
      for (const s of plan.shadows) add(s.loaded.version, watched.includes(s.loaded.version) ? 'watched' : 'shadow');
    }
    for (const [key, labels] of this.shown.get(model) ?? []) if (!now.has(key)) metric.remove(labels);
    for (const labels of now.values()) metric.set(labels, 1);
    if (now.size === 0) this.shown.delete(model);
    else this.shown.set(model, now);
  }

  /**
   * Swaps in the plan for `served`. A production that does not load leaves the current one
   * serving; with none yet (a start whose newest PROMOTED names a version that cannot load), the
   * newest of `fallbacks` (the watched, previously promoted versions) that loads serves instead,
   * rather than no version at all. Either way the failure is rethrown (retried by the caller).
   */
  private async swap(
    model: string,
    served: ServedSet,
    fallbacks: readonly string[],
    failures: Map<string, unknown>,
  ): Promise<void> {
    const { logger, views } = this.options;
    const current = this.plans.get(model);
    let production: LoadedVersion;
    let failure: unknown;
    try {
      production = await this.version(model, served.production);
    } catch (error) {
      // The current production keeps serving; the rest of the change still applies.
      const instead = current?.production.loaded ?? (await this.firstLoadable(model, [...fallbacks].reverse()));
      if (instead === undefined) throw error;
      if (current === undefined) {
        logger.warn(
          { model, version: served.production, instead: instead.version, err: (error as Error).message },
          'production version could not be loaded at start; the previous production serves instead',
        );
      }
      failure = error;
      production = instead;
    }
    const spec = served.canary;
    const canary =
      spec === undefined || spec.version === production.version
        ? undefined
        : await this.optional(model, spec.version, 'canary', failures);
    const shadows: LoadedVersion[] = [];
    for (const s of served.shadows) {
      if (s === production.version || s === canary?.version) continue;
      const v = await this.optional(model, s, 'shadow', failures);
      if (v !== undefined) shadows.push(v);
    }
    const staged = canary === undefined || spec === undefined ? undefined : { loaded: canary, share: spec.share };
    // A retry whose production still does not load plans what serves already: no swap, no line
    // (it logged "model swapped" with the same production as previous at every retry).
    if (current === undefined || !isPlanOf(current, production, staged, shadows)) {
      const plan = planServing(views, { production, ...(staged === undefined ? {} : { canary: staged }), shadows });
      // The swap: one assignment.
      this.plans.set(model, plan);
      logger.info(
        {
          model,
          production: production.version,
          previous: current?.production.loaded.version,
          canary: plan.canary === undefined ? undefined : `${plan.canary.planned.loaded.version}@${plan.canary.share}`,
          shadows: shadows.map((s) => s.version),
        },
        'model swapped',
      );
      this.options.onSwap?.(plan);
    }
    const answered = this.servedProductions.get(model) ?? new Set<string>();
    answered.add(production.version);
    this.servedProductions.set(model, answered);
    // Forget versions of this model no plan uses any more.
    const plan = this.plans.get(model);
    const inUse = new Set(
      plan === undefined
        ? []
        : [plan.production, ...(plan.canary ? [plan.canary.planned] : []), ...plan.shadows].map((p) => p.loaded),
    );
    for (const [key, v] of this.loaded) if (v.model === model && !inUse.has(v)) this.loaded.delete(key);
    if (failure !== undefined) throw failure;
  }
}

/** A production that the stages of a model name while no version of the model serves. */
export interface UnservedProduction {
  readonly version: string;
  /** Whether its load is retried (files missing or unreadable, a load thread death) or was given up. */
  readonly retriable: boolean;
  /** The code of its load's failure (`NOT_FOUND`: artifacts missing or unreadable). */
  readonly code: string;
}

/** Why `u` does not serve, in one line (versions come from models.v1: escaped and cut). */
export function unservedReason(u: UnservedProduction): string {
  const version = JSON.stringify(u.version).slice(1, -1).slice(0, 128);
  if (!u.retriable) {
    return `production ${version} cannot be loaded here (given up: ${u.code}); nothing serves the model on this instance until models.v1 publishes a version again`;
  }
  const why = u.code === 'NOT_FOUND' ? 'artifacts missing or unreadable' : `its load failed: ${u.code}`;
  return `production ${version} not loaded yet (${why}); retrying`;
}

/** At most one "version not loaded" line per model and version this often. */
const NOT_LOADED_LINE_MS = 10 * 60_000;

/** Versions of a model remembered as given up, at most (the oldest forgotten: loaded once more if named again). */
const MAX_GIVEN_UP = 1_000;

/**
 * Canary or shadow versions the stages name that the plan serves without: retriable (by default)
 * when one of them may still load, not when all were given up or cannot be planned.
 */
export class VersionsNotServedError extends DriftlineError {
  constructor(
    readonly model: string,
    readonly versions: readonly string[],
    options: { readonly retriable?: boolean } = {},
  ) {
    super('SOURCE_UNAVAILABLE', `model ${model}: versions ${versions.join(', ')} not served (see the load warnings)`, {
      retriable: options.retriable ?? true,
    });
    this.name = 'VersionsNotServedError';
  }
}

/**
 * A version whose load failed for good (its error not retriable): not loaded again until models.v1
 * names it again or the server restarts. Its code is the failure's.
 */
export class VersionGivenUpError extends DriftlineError {
  constructor(
    readonly model: string,
    readonly version: string,
    cause: unknown,
  ) {
    const failure = toDriftlineError(cause);
    super(failure.code, `model ${model} version ${version} cannot be loaded: ${failure.message}`, {
      cause,
      retriable: false,
      details: failure.details,
    });
    this.name = 'VersionGivenUpError';
  }
}

/** The canary and shadow versions `served` names that `plan` does not serve. */
function notServed(plan: ServingPlan | undefined, served: ServedSet): string[] {
  if (plan === undefined) return [];
  const production = plan.production.loaded.version;
  const serving = new Set([
    production,
    ...(plan.canary === undefined ? [] : [plan.canary.planned.loaded.version]),
    ...plan.shadows.map((p) => p.loaded.version),
  ]);
  const named = [...(served.canary === undefined ? [] : [served.canary.version]), ...served.shadows];
  return [...new Set(named)].filter((v) => !serving.has(v));
}

/** The labels of one series of `driftline_model_serving`. */
interface ServingLabels {
  readonly model: string;
  readonly version: string;
  readonly role: 'production' | 'canary' | 'shadow' | 'watched';
}

/** Whether `plan` is the plan of exactly these loaded versions (the same loads, canary share included). */
function isPlanOf(
  plan: ServingPlan,
  production: LoadedVersion,
  canary: { readonly loaded: LoadedVersion; readonly share: number } | undefined,
  shadows: readonly LoadedVersion[],
): boolean {
  return (
    plan.production.loaded === production &&
    plan.canary?.planned.loaded === canary?.loaded &&
    plan.canary?.share === canary?.share &&
    plan.shadows.length === shadows.length &&
    plan.shadows.every((p, i) => p.loaded === shadows[i])
  );
}

/** Whether `plan` serves exactly `served`: its production, canary (share included) and shadows. */
function servesExactly(plan: ServingPlan, served: ServedSet): boolean {
  const production = served.production;
  if (plan.production.loaded.version !== production) return false;
  const canary = served.canary?.version === production ? undefined : served.canary;
  if (plan.canary?.planned.loaded.version !== canary?.version || plan.canary?.share !== canary?.share) return false;
  const shadows = served.shadows.filter((v) => v !== production && v !== canary?.version);
  return plan.shadows.length === shadows.length && plan.shadows.every((p, i) => p.loaded.version === shadows[i]);
}
