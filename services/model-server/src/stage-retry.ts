import type { EventTimeBounds, Logger } from '@driftline/core';
import {
  admitLine,
  DEFAULT_EVENT_TIME_BOUNDS,
  eventTimeProblem,
  lineLimit,
  serialByKey,
  toDriftlineError,
} from '@driftline/core';
import { counter, gauge, type Registry } from '@driftline/observability';
import type { ModelStages, StageEvent } from '@driftline/policy';
import { type UnservedProduction, VersionGivenUpError, VersionsNotServedError } from './serving.js';

export interface StageApplierOptions {
  /**
   * Applies a model's models.v1 events (ServingTable.apply): rejects when a version they name does
   * not serve. The first `replayed` events are a retry's (applied before), the rest are new.
   * `from`: the stages of the start-up replay folded as read ({@link ReplayedStages}), the
   * events reduced from them.
   */
  readonly apply: (model: string, events: readonly StageEvent[], replayed: number, from?: ModelStages) => Promise<void>;
  /**
   * The stages the table holds of a model (ServingTable.stagesOf). A batch's events are reduced from
   * those held before its first attempt, on every retry too. Absent, a retry reduced its events
   * again on top of what the failed attempt left, which is not idempotent: CANARY v1, CANARY v4,
   * PROMOTED v4 and a shadow that failed to load, applied again over production v4, brought canary
   * v1 back (found by a property test of the folded replay).
   */
  readonly stagesOf?: (model: string) => ModelStages;
  /** The versions of a model given up (ServingTable.givenUp), for the metric. */
  readonly givenUp?: (model: string) => readonly string[];
  /** The production named while nothing of the model serves (ServingTable.unservedProduction), for the log line. */
  readonly unserved?: (model: string) => UnservedProduction | undefined;
  readonly logger: Logger;
  readonly registry?: Registry;
  /** First retry delay; it doubles up to `maxDelayMs`. */
  readonly firstDelayMs?: number;
  readonly maxDelayMs?: number;
  /**
   * Events dated beyond now + {@link FUTURE_SKEW_FACTOR} × `maxFutureMs` are refused; those beyond
   * `maxFutureMs` only are applied with a warning (DRIFTLINE_EVENT_TIME_*; default: libs/core's).
   */
  readonly eventTime?: EventTimeBounds;
  readonly now?: () => number;
  /**
   * Most models followed (default {@link MAX_MODELS}): the events of a new one beyond wait while
   * applications of other models that may free a place run, and are refused once none does.
   */
  readonly maxModels?: number;
  /**
   * Whether the model is followed now (ServingTable.follows): a model that is not, and has no
   * retry held, frees its place under `maxModels`. Absent: every model taken is followed for good.
   */
  readonly follows?: (model: string) => boolean;
  /** Drops what is held of a model no longer followed (ServingTable.forget), once more than `maxModels` such are. */
  readonly forget?: (model: string) => void;
}

/**
 * Most models one server follows at once: models with a version served or staged (production,
 * canary, shadow, watched), promoted with nothing serving, or with events being applied or retried.
 * Their stages and retries are held for as long: 20,000 names PROMOTED without files took 138 MB
 * and logged 20,000 lines at once, then one a model a minute for ever (found by a review). A model
 * whose versions all ended (rejected, retired, rolled back before any promotion) or only trained
 * frees its place; the stages of at most as many such models are kept too (their ended versions,
 * so that a stale event of one is still ignored), the oldest forgotten first. Before, every name
 * ever seen on models.v1 (the start-up replay included) held a place for good: the 1,001st name in
 * log order was never served, however many before it had ended.
 *
 * A new model past the bound is not refused while applications of models taken are under way (one
 * may end with the model no longer followed, and free its place): its events wait, in arrival
 * order, and are applied when a place frees; they are refused once nothing is under way and the
 * bound is still full. The start-up replay applies every model at once, so the 1,001st name was
 * refused while the ended models before it were still being applied (found by a review). What
 * waits is what `apply`'s callers hold until its promise resolves (the follower: the start-up
 * replay, then one batch at a time): the wait adds no events to memory.
 */
export const MAX_MODELS = 1_000;

/**
 * How far ahead of this server's clock a models.v1 event may be dated and still be applied, in
 * multiples of DRIFTLINE_EVENT_TIME_MAX_FUTURE (the bound): its producer's clock may be up to the
 * bound ahead, and this server's as much behind. An event within the bound on the clock of the
 * host that dated it (the controller's, `driftline model stage`'s) was refused here when this
 * server's clock was a little behind (producers 59 min ahead, the server 2 min behind: the
 * CANARY refused; a PROMOTED so refused leaves the old production answering), and never applied again while the controller took it as
 * delivered (it publishes a transition once; found by a review). Beyond twice the bound (9e18,
 * microseconds) an event is refused: taken, it made every later transition of the model look
 * stale. Applied at once rather than held until its time comes: held, the model's later events
 * would wait behind it, and once applied its date weighs the same on later events' staleness.
 */
export const FUTURE_SKEW_FACTOR = 2;

/** Retry lines written per interval at most; the failures of the others are summed in one line at its end. */
const RETRY_LINES_PER_INTERVAL = 10;
/** The interval of {@link RETRY_LINES_PER_INTERVAL} and of the refused-events lines. */
const LINE_INTERVAL_MS = 60_000;
/** Models named in a summary line, at most. */
const SUMMARY_NAMES = 5;

/**
 * A model's start-up replay of models.v1 folded as it was read (the follower): the stages its
 * events reduce to from none (`reduceStages`), and how many events it folded (admitted by
 * {@link StageApplier.admit}). Bounded per model, where the events it replaces were not.
 */
export interface ReplayedStages {
  readonly stages: ModelStages;
  readonly events: number;
}

export interface StageApplier {
  /**
   * Applies `events` of `model` after its earlier ones (those dated too far ahead refused, see
   * {@link StageApplier.admit}). `replay`: the model's start-up replay folded as read, applied
   * ahead of `events` (its events admitted as they were read); only for the model's first
   * application.
   */
  apply(model: string, events: readonly StageEvent[], replay?: ReplayedStages): Promise<void>;
  /**
   * The events of `model` not dated beyond {@link FUTURE_SKEW_FACTOR} × the event-time bound (the
   * others refused and counted, those beyond the bound only applied with a warning a minute): what
   * `apply` does to its events first, for a replay folded as it is read.
   */
  admit(model: string, events: readonly StageEvent[]): StageEvent[];
  /** Models whose production version the stages name but that does not serve yet. */
  pending(): string[];
  /** Models whose last application failed for good (not retriable): not retried until their next event. */
  failed(): string[];
  stop(): void;
}

/**
 * models.v1 events applied to the serving table, with the production load retried: a PROMOTED
 * whose artifact is not readable yet (written after the event, a slow or remounted volume) was
 * logged once and never retried, so the server kept the previous version until another event of
 * that model or a restart, while the drift-monitor and the controller took the new one as
 * production. Events that failed retriably are applied again (they are replays by then, and change
 * only what failed), alone on a timer with backoff or ahead of the model's next events. A failure
 * that is not retriable (malformed artifacts, a version given up) is not retried: every retry would
 * fail the same way (before, it was retried every minute for ever).
 */
export function createStageApplier(options: StageApplierOptions): StageApplier {
  const { logger } = options;
  const first = options.firstDelayMs ?? 1_000;
  const max = options.maxDelayMs ?? 60_000;
  // `model` comes from models.v1 events: bounded (MAX_LABEL_VALUES, then `__other__`).
  const failures =
    options.registry === undefined
      ? undefined
      : counter(
          options.registry,
          'driftline_model_server_load_failures_total',
          'Applications of the stages that left a version they name unserved: production (the previous one serves), or a canary or shadow (served without); retried with backoff',
          ['model'],
          { bounded: ['model'] },
        );
  const pendingGauge =
    options.registry === undefined
      ? undefined
      : gauge(
          options.registry,
          'driftline_model_server_stage_pending',
          '1 while a version the stages name (production, canary or shadow) does not serve, or no version of the model does (predict answers 503): retried, or given up (driftline_model_server_versions_given_up)',
          ['model'],
          { bounded: ['model'] },
        );
  const givenUpGauge =
    options.registry === undefined || options.givenUp === undefined
      ? undefined
      : gauge(
          options.registry,
          'driftline_model_server_versions_given_up',
          'Versions whose load failed for good (malformed, or killing the load thread): not loaded again until models.v1 publishes them again or a restart',
          ['model'],
          { bounded: ['model'] },
        );
  const refusedEvents =
    options.registry === undefined
      ? undefined
      : counter(
          options.registry,
          'driftline_model_server_model_events_refused_total',
          `models.v1 events not applied: dated more than ${FUTURE_SKEW_FACTOR} x the event-time bound into the future (reason future_event_time: taken, they made every later transition of the model look stale), or of a new model while ${MAX_MODELS} are followed (too_many_models); not applied later: the transitions they carry are missing here`,
          ['reason'],
        );
  // Both series from the start: increase() does not count a series' first sample, so an alert on
  // it missed a first refusal after the first scrape.
  for (const reason of ['future_event_time', 'too_many_models'] as const) refusedEvents?.inc({ reason }, 0);
  /** What failed retriably, held for a retry: the events, and the folded replay they follow. */
  const waiting = new Map<
    string,
    { events: readonly StageEvent[]; from: ModelStages | undefined; attempt: number; timer: NodeJS.Timeout }
  >();
  const failedModels = new Set<string>();
  let stopped = false;
  const bounds = options.eventTime ?? DEFAULT_EVENT_TIME_BOUNDS;
  const now = options.now ?? Date.now;
  const maxModels = options.maxModels ?? MAX_MODELS;
  /** Models followed, or whose events were taken and are not applied yet (at most `maxModels`). */
  const known = new Set<string>();
  /** Applications of each model taken and not finished (a retry's not counted: `waiting` holds it). */
  const inFlight = new Map<string, number>();
  /** Models taken once and no longer followed whose stages the table keeps, oldest first (at most `maxModels`). */
  const retired = new Set<string>();
  const refusedLines = { future_event_time: lineLimit(), too_many_models: lineLimit() };
  /** Events applied though dated beyond the bound (within {@link FUTURE_SKEW_FACTOR} of it): one warning a minute. */
  const aheadLines = lineLimit();
  const accepted: EventTimeBounds = { ...bounds, maxFutureMs: FUTURE_SKEW_FACTOR * bounds.maxFutureMs };
  /**
   * New models past `maxModels` waiting for a place, in arrival order, while applications run
   * (`inFlight`): `settle` resolves `done` (what their `apply` calls return) with the application
   * once admitted, at once when refused.
   */
  const queued = new Map<
    string,
    {
      events: StageEvent[];
      replay: ReplayedStages | undefined;
      settle: (applied?: Promise<void>) => void;
      done: Promise<void>;
    }
  >();

  /** Counts refused events of `model`, and says so at most once a minute per reason. */
  const refuse = (
    model: string,
    reason: keyof typeof refusedLines,
    n: number,
    fields: Record<string, unknown>,
    msg: string,
  ) => {
    refusedEvents?.inc({ reason }, n);
    const leftOut = admitLine(refusedLines[reason], Date.now(), LINE_INTERVAL_MS, n);
    if (leftOut !== undefined) logger.error({ model, ...fields, refused_since_last_line: leftOut + n }, msg);
  };
  const refuseNew = (model: string, n: number) =>
    refuse(
      model,
      'too_many_models',
      n,
      { models: known.size },
      `models.v1 events of a new model not applied: ${maxModels} models are followed already, the model is not served here (see driftline_model_server_model_events_refused_total)`,
    );
  /**
   * The events of `model` not dated beyond {@link FUTURE_SKEW_FACTOR} × the event-time bound: the
   * others are refused. Those beyond the bound only are applied, with a warning a minute.
   */
  const timely = (model: string, events: readonly StageEvent[]): StageEvent[] => {
    const at = now();
    return events.filter((e) => {
      if (e.event_time === undefined || e.event_time <= at + bounds.maxFutureMs) return true;
      if (e.event_time <= at + accepted.maxFutureMs) {
        const leftOut = admitLine(aheadLines, Date.now(), LINE_INTERVAL_MS);
        if (leftOut !== undefined) {
          logger.warn(
            {
              model,
              version: e.version,
              kind: e.kind,
              ahead_ms: e.event_time - at,
              max_future_ms: bounds.maxFutureMs,
              since_last_line: leftOut + 1,
            },
            `models.v1 event dated beyond DRIFTLINE_EVENT_TIME_MAX_FUTURE ahead of this server's clock, within ${FUTURE_SKEW_FACTOR} x it: applied (clock skew); check the clocks of this host and of the one that dated it (the controller's, driftline model stage's)`,
          );
        }
        return true;
      }
      refuse(
        model,
        'future_event_time',
        1,
        { version: e.version, kind: e.kind, err: eventTimeProblem(e.event_time, at, accepted) },
        `models.v1 event dated in the future not applied (beyond ${FUTURE_SKEW_FACTOR} x DRIFTLINE_EVENT_TIME_MAX_FUTURE): taken, every later transition of the model would look stale; the transition it carries is missing here`,
      );
      return false;
    });
  };

  /**
   * Frees the place of `model` when it is no longer followed and nothing of it is applied or held
   * for a retry; its stages are kept among the `maxModels` newest such models, the oldest forgotten.
   */
  const release = (model: string) => {
    if (options.follows === undefined || options.follows(model)) return;
    if ((inFlight.get(model) ?? 0) > 0 || waiting.has(model) || !known.has(model)) return;
    known.delete(model);
    failedModels.delete(model);
    retired.add(model);
    for (const oldest of retired) {
      if (retired.size <= maxModels) break;
      retired.delete(oldest);
      options.forget?.(oldest);
    }
  };

  /**
   * Admits the models waiting, oldest first, while places are free; once no application runs (none
   * can free a place), those still waiting are refused.
   */
  const admitWaiting = () => {
    for (const [model, { events, replay, settle }] of queued) {
      if (known.size >= maxModels) break;
      queued.delete(model);
      settle(start(model, events, replay?.stages));
    }
    if (inFlight.size > 0 || queued.size === 0) return;
    for (const [model, { events, replay, settle }] of queued) {
      queued.delete(model);
      refuseNew(model, events.length + (replay?.events ?? 0));
      settle();
    }
  };

  // Retry lines: at most RETRY_LINES_PER_INTERVAL per interval, the rest summed in one line at its
  // end (20,000 models without files logged 20,000 lines at once, then each one a minute).
  let windowStart = Number.NEGATIVE_INFINITY;
  let linesInWindow = 0;
  const leftOut = new Map<string, string>();
  let failuresLeftOut = 0;
  let summaryTimer: NodeJS.Timeout | undefined;
  const flushSummary = () => {
    clearTimeout(summaryTimer);
    summaryTimer = undefined;
    if (leftOut.size === 0) return;
    const [first] = leftOut.values();
    logger.error(
      {
        models: leftOut.size,
        failures: failuresLeftOut,
        sample: [...leftOut.keys()].slice(0, SUMMARY_NAMES),
        err: first,
      },
      `versions the stages name still do not load for ${leftOut.size} more models (their lines left out, at most ${RETRY_LINES_PER_INTERVAL} a minute); retrying: see driftline_model_server_stage_pending`,
    );
    leftOut.clear();
    failuresLeftOut = 0;
  };
  /** Writes a retry's line, or counts it into the interval's summary. */
  const retryLine = (model: string, err: string, write: () => void) => {
    const t = Date.now();
    if (t - windowStart >= LINE_INTERVAL_MS) {
      flushSummary();
      windowStart = t;
      linesInWindow = 0;
    }
    if (linesInWindow < RETRY_LINES_PER_INTERVAL) {
      linesInWindow++;
      write();
      return;
    }
    leftOut.set(model, err);
    failuresLeftOut++;
    if (summaryTimer === undefined) {
      summaryTimer = setTimeout(flushSummary, windowStart + LINE_INTERVAL_MS - t);
      summaryTimer.unref();
    }
  };

  const run = async (
    model: string,
    events: readonly StageEvent[],
    from: ModelStages | undefined,
    attempt: number,
    replayed = 0,
  ): Promise<void> => {
    // The stages the events are reduced from, now and on each retry (see `stagesOf`).
    const base = from ?? options.stagesOf?.(model);
    try {
      await options.apply(model, events, replayed, base);
      // An application can succeed with nothing of the model serving (an event that names no
      // production, such as a TRAINED): the gauge went to 0 while predict answered 503.
      const unserved = options.unserved?.(model) !== undefined;
      if (attempt > 0 && !unserved)
        logger.info({ model, attempts: attempt + 1 }, 'versions the stages name serve after retries');
      pendingGauge?.set({ model }, unserved ? 1 : 0);
      failedModels.delete(model);
    } catch (error) {
      failures?.inc({ model });
      pendingGauge?.set({ model }, 1);
      if (stopped) return;
      const failure = toDriftlineError(error);
      if (!failure.retriable) {
        // Not held: the serving table keeps what serves, and the model's next event starts afresh.
        failedModels.add(model);
        // The table has logged each version it gave up or served without; anything else is said here.
        if (!(error instanceof VersionGivenUpError || error instanceof VersionsNotServedError)) {
          logger.error(
            { model, code: failure.code, err: failure.message, attempt: attempt + 1 },
            'models.v1 events not applied in full and not retried (the error is not retriable); what served serves on',
          );
        }
        return;
      }
      failedModels.delete(model);
      const delay = Math.min(max, first * 2 ** attempt);
      // At start with no previous production that loads, nothing serves: the line said "the
      // previous one keeps serving" while every request of the model was refused.
      const unserved = options.unserved?.(model);
      const fields = { model, err: (error as Error).message, attempt: attempt + 1, retry_in_ms: delay };
      retryLine(model, fields.err, () => {
        if (unserved !== undefined) {
          logger.error(
            { ...fields, version: unserved.version },
            'production version could not be loaded and no version of the model serves: predict answers 503 until one does; retrying',
          );
        } else if (error instanceof VersionsNotServedError) {
          logger.warn(
            { model, versions: error.versions, attempt: attempt + 1, retry_in_ms: delay },
            'canary or shadow versions not served; production serves, retrying them',
          );
        } else {
          logger.error(fields, 'production version could not be loaded; the previous one keeps serving, retrying');
        }
      });
      const timer = setTimeout(() => {
        void serially(model, async () => {
          const held = take(model);
          if (held !== undefined) await run(model, held.events, held.from, held.attempt + 1, held.events.length);
          release(model);
          admitWaiting();
        });
      }, delay);
      timer.unref();
      waiting.set(model, { events, from: base, attempt, timer });
    } finally {
      givenUpGauge?.set({ model }, options.givenUp?.(model).length ?? 0);
    }
  };
  /** The events held for a retry of `model`, no longer held (their timer cleared). */
  const take = (model: string) => {
    const held = waiting.get(model);
    if (held !== undefined) {
      clearTimeout(held.timer);
      waiting.delete(model);
    }
    return held;
  };
  // One run at a time per model, retries included: a retry that ran beside a newer event (its
  // timer fired while the newer one was arriving) replayed the older events after the newer ones,
  // so a stale PROMOTED took production back from a newer one once its files appeared.
  const serially = serialByKey();

  /**
   * Takes `model` (a place under `maxModels`) and applies `events`, after its earlier ones (`from`:
   * its folded replay, on its first application only).
   */
  function start(model: string, events: readonly StageEvent[], from?: ModelStages): Promise<void> {
    known.add(model);
    retired.delete(model);
    inFlight.set(model, (inFlight.get(model) ?? 0) + 1);
    return serially(model, async () => {
      try {
        const held = take(model);
        // Held events go first, with everything after them: the model's events stay in order.
        await (held === undefined
          ? run(model, events, from, 0)
          : run(model, [...held.events, ...events], held.from ?? from, held.attempt + 1, held.events.length));
      } finally {
        const left = inFlight.get(model)! - 1;
        if (left > 0) inFlight.set(model, left);
        else inFlight.delete(model);
        release(model);
        admitWaiting();
      }
    });
  }

  return {
    apply(model, given, replay) {
      const entry = queued.get(model);
      if (entry !== undefined) {
        // Behind its earlier events, still waiting for a place: applied (or refused) with them.
        entry.events.push(...timely(model, given));
        return entry.done;
      }
      if (!known.has(model) && known.size >= maxModels) {
        // Nothing under way can free a place: refused at once, as before.
        if (inFlight.size === 0) {
          refuseNew(model, given.length + (replay?.events ?? 0));
          return Promise.resolve();
        }
        const events = timely(model, given);
        if (events.length === 0 && replay === undefined) return Promise.resolve();
        let settle!: (applied?: Promise<void>) => void;
        const done = new Promise<void>((resolve) => {
          settle = resolve;
        });
        queued.set(model, { events, replay, settle, done });
        return done;
      }
      const events = timely(model, given);
      if (events.length === 0 && replay === undefined) return Promise.resolve();
      return start(model, events, replay?.stages);
    },
    admit: (model, events) => timely(model, events),
    pending: () => [...waiting.keys()],
    failed: () => [...failedModels],
    stop() {
      stopped = true;
      for (const { settle } of queued.values()) settle();
      queued.clear();
      for (const { timer } of waiting.values()) clearTimeout(timer);
      waiting.clear();
      clearTimeout(summaryTimer);
      summaryTimer = undefined;
    },
  };
}
