import { type DriftlineError, isRetriable, type Logger, toDriftlineError } from '@driftline/core';
import { type ExpiredRow, type ExpiryClock, expiryClock, type JoinStore, type SourceReport } from '@driftline/join';
import { isolateRejected } from '@driftline/kafka';
import { counter, gauge, type Registry } from '@driftline/observability';
import {
  ALL_SEGMENT,
  businessMetrics,
  computeWindow,
  currentWindow,
  evaluateBounds,
  evaluateEstimateBounds,
  type MetricBound,
  type PerformanceRow,
  parseWindowKey,
  performanceAlertId,
  type Task,
  type WindowRef,
  windowKey,
} from '@driftline/performance';
import type { DriftAlert } from '@driftline/schemas';
import type { Warehouse } from '@driftline/warehouse';
import { DEFAULT_MAX_WINDOW_ROWS } from './config.js';
import type { JoinedSink, PayloadDecoder } from './engine.js';
import type { WindowEstimator } from './estimates.js';

/**
 * A loop's health, by `loop` label: its failed passes (driftline_joiner_loop_failures_total), the
 * time of its last pass that succeeded (driftline_joiner_loop_last_success_timestamp_seconds; 0
 * before the first) and its interval (driftline_joiner_loop_interval_seconds), so an alert can ask
 * for no success in ten intervals (DriftlineJoinerRecomputeFailing). A recompute failing every
 * pass had only logged warnings, its windows_recomputed_total flat like an idle joiner's.
 */
export interface LoopHealth {
  readonly registry: Registry;
  readonly loop: string;
  readonly now?: () => number;
}

function loopMetrics(h: LoopHealth, intervalMs: number) {
  const m = {
    failures: counter(
      h.registry,
      'driftline_joiner_loop_failures_total',
      "Passes of the label-joiner's periodic loops (expiry, recompute) that failed",
      ['loop'],
    ),
    lastSuccess: gauge(
      h.registry,
      'driftline_joiner_loop_last_success_timestamp_seconds',
      'Unix time of the last pass of each loop that succeeded (0: none yet)',
      ['loop'],
    ),
    interval: gauge(h.registry, 'driftline_joiner_loop_interval_seconds', 'Interval of each loop', ['loop']),
  };
  m.failures.inc({ loop: h.loop }, 0);
  m.lastSuccess.set({ loop: h.loop }, 0);
  m.interval.set({ loop: h.loop }, intervalMs / 1000);
  return m;
}

/** Runs `tick` every `intervalMs` (never overlapping) until stopped; failures are logged, counted (`health`) and retried. */
export function every(
  intervalMs: number,
  tick: () => Promise<void>,
  logger: Logger,
  what: string,
  health?: LoopHealth,
): { stop(): Promise<void>; runNow(): Promise<void> } {
  let stopped = false;
  let timer: NodeJS.Timeout | undefined;
  let running: Promise<void> = Promise.resolve();
  const metrics = health === undefined ? undefined : loopMetrics(health, intervalMs);
  const labels = { loop: health?.loop ?? '' };
  const run = (): Promise<void> => {
    running = running.then(async () => {
      if (stopped) return;
      try {
        await tick();
        metrics?.lastSuccess.set(labels, (health?.now ?? Date.now)() / 1000);
      } catch (error) {
        const e = toDriftlineError(error);
        metrics?.failures.inc(labels);
        logger.warn({ code: e.code, err: e.message, retriable: e.retriable }, `${what} failed; retrying next tick`);
      }
    });
    return running;
  };
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => void run().then(schedule), intervalMs);
  };
  schedule();
  return {
    async stop() {
      stopped = true;
      if (timer !== undefined) clearTimeout(timer);
      await running;
    },
    runNow: run,
  };
}

/** An expired row the pass can never write: its stored prediction no longer decodes, or ClickHouse refuses it. */
export interface UnwritableExpiry {
  readonly row: ExpiredRow<Buffer>;
  readonly error: DriftlineError;
}

/** What the expiry scanner needs besides the store, the decoder and the sink. */
export interface ExpiryOptions {
  /** A label joins up to this long after its prediction (the unlabeled row's deadline). */
  readonly maxDelayMs: number;
  /** Allowance for pipeline lag: an entry is due once the expiry clock is this far past it. */
  readonly graceMs: number;
  /** This instance's partitions of either topic now, caught up or not; reported every pass. */
  readonly positions: () => Promise<readonly SourceReport[]>;
  /** Sources that count for the clock (the partitions of the topics read now). */
  readonly counts: (source: string) => boolean;
  /** Where rows that can never be written go (the dead-letter topic). */
  readonly deadLetter: (rows: readonly UnwritableExpiry[]) => Promise<void>;
  readonly logger?: Logger;
  readonly forgetMs?: number;
  readonly batch?: number;
}

/**
 * Most bytes of stored predictions one step of the expiry pass reads (at least one row). A stored
 * prediction is up to a Kafka record (1 MiB by default): a step of 1,000 of them had copied a
 * gigabyte out of Redis at once, and decoded it.
 */
export const EXPIRY_READ_BYTES = 64 * 1_048_576;

/**
 * The expiry pass: due pending predictions become `E` (counted unlabeled), their rows go to
 * `unlabeled_predictions`, then they are acknowledged (`X`). The outbox makes the pass crash-safe:
 * rows of a pass that died before its acknowledgement are sent again by the next pass. A row that
 * can never be written (poison: a stored prediction that no longer decodes, a row ClickHouse
 * refuses) goes to `deadLetter` and is acknowledged; kept at the head of the outbox it stopped
 * every later expiry. An outage (retriable) acknowledges nothing.
 *
 * What is due follows the slowest partition of either topic ({@link expiryClock}): each pass first
 * reports this instance's partitions, then reads every instance's reports. Until this instance has
 * reported once (it has joined its group), nothing expires.
 */
export class ExpiryScanner {
  private readonly metrics;
  private readonly batch: number;
  private reported = false;
  private heldBy: string | undefined;
  private forgotten = new Set<string>();
  private positionsFailing = false;
  private reportFailing = false;

  constructor(
    private readonly store: JoinStore<Buffer, Buffer>,
    private readonly decoder: PayloadDecoder,
    private readonly sink: JoinedSink,
    private readonly options: ExpiryOptions,
    registry: Registry,
  ) {
    this.batch = options.batch ?? 1_000;
    this.metrics = {
      expired: counter(registry, 'driftline_joiner_expired_total', 'Predictions expired without a label', []),
      orphans: counter(registry, 'driftline_joiner_orphan_labels_total', 'Labels whose prediction never came', []),
      deadLettered: counter(
        registry,
        'driftline_joiner_expiry_dead_letters_total',
        'Expired predictions that can never be written (undecodable, refused by ClickHouse), sent to the dead-letter topic',
        [],
      ),
      scheduled: gauge(
        registry,
        'driftline_joiner_scheduled',
        'Pending predictions plus labels waiting for theirs',
        [],
      ),
      behind: gauge(
        registry,
        'driftline_joiner_expiry_clock_behind_seconds',
        'Wall time minus the expiry clock (the slowest partition of either topic); grows while one has a backlog, +Inf while one has no progress yet',
        [],
      ),
    };
  }

  /** The expiry clock after reporting this instance's partitions (see {@link expiryClock}). */
  private async clock(now: number): Promise<ExpiryClock | undefined> {
    let reports: readonly SourceReport[] = [];
    try {
      reports = await this.options.positions();
      this.positionsFailing = false;
    } catch (error) {
      // Kafka not answering: this instance's last reports stand (they hold the clock where it
      // was) and the pass goes on, so expired rows already in the outbox still reach ClickHouse.
      if (!this.positionsFailing) {
        this.options.logger?.warn(
          { err: (error as Error).message },
          'partition positions unavailable; expiry uses the last reports',
        );
      }
      this.positionsFailing = true;
    }
    if (reports.length > 0) {
      try {
        await this.store.reportSources(reports, now);
        this.reported = true;
        this.reportFailing = false;
      } catch (error) {
        // Redis refusing writes (OOM under noeviction) while its expiry steps still run: the
        // stored reports stand and the pass goes on — expiring is what frees memory (found by a
        // review: the pass aborted here, exactly when it was needed).
        if (!isRetriable(error)) throw error;
        if (!this.reportFailing) {
          this.options.logger?.warn(
            { err: (error as Error).message },
            'partition reports not stored; expiry uses the stored ones',
          );
        }
        this.reportFailing = true;
      }
    }
    if (!this.reported) return undefined;
    const sources = (await this.store.sources()).filter((s) => this.options.counts(s.source));
    const clock = expiryClock(now, sources, this.options.graceMs, this.options.forgetMs);
    // +Inf: a source has no progress at all yet (nothing expires until it has).
    this.metrics.behind.set(Math.max(0, now - clock.clock) / 1000);
    const log = this.options.logger;
    for (const source of clock.forgotten) {
      if (!this.forgotten.has(source))
        log?.warn({ source }, 'no report on this partition for an hour: it no longer holds expiry back');
    }
    this.forgotten = new Set(clock.forgotten);
    // One line when a partition starts holding expiry back by more than the grace, one when it stops.
    const held = now - clock.clock > this.options.graceMs ? clock.heldBy : undefined;
    if (held !== this.heldBy) {
      if (held !== undefined) {
        log?.info(
          { source: held, behindMs: Number.isFinite(clock.clock) ? now - clock.clock : null },
          'expiry held back: a partition has records not yet read (predictions wait for labels it may hold)',
        );
      } else log?.info({ source: this.heldBy }, 'expiry no longer held back');
      this.heldBy = held;
    }
    return clock;
  }

  async pass(now = Date.now()): Promise<number> {
    let expired = 0;
    const clock = await this.clock(now);
    const cutoff = clock?.cutoff ?? Number.NEGATIVE_INFINITY;
    for (;;) {
      const summary = await this.store.expireDue(cutoff, now, this.batch);
      this.metrics.orphans.inc(summary.counts['orphan-label']);
      const handled = summary.counts.expiring + summary.counts['orphan-label'] + summary.counts.stale;
      const rows = await this.store.unackedExpired(this.batch, EXPIRY_READ_BYTES);
      if (rows.length > 0) {
        const out = [];
        const unwritable: UnwritableExpiry[] = [];
        for (const r of rows) {
          try {
            const prediction = await this.decoder.prediction(r.prediction);
            out.push({
              row: r,
              prediction,
              deadline: prediction.event_time + this.options.maxDelayMs,
              expiredAt: r.expiredAt,
            });
          } catch (thrown) {
            const error = toDriftlineError(thrown);
            if (error.retriable) throw error;
            unwritable.push({ row: r, error });
          }
        }
        const refused = await isolateRejected(out, (part) =>
          this.sink.insertExpired(
            part.map(({ prediction, deadline, expiredAt }) => ({ prediction, deadline, expiredAt })),
          ),
        );
        for (const { item, error } of refused) unwritable.push({ row: item.row, error });
        if (unwritable.length > 0) await this.options.deadLetter(unwritable);
        await this.store.ackExpired(
          rows.map((r) => ({ model: r.model, id: r.id })),
          now,
        );
        const written = rows.length - unwritable.length;
        this.metrics.expired.inc(written);
        this.metrics.deadLettered.inc(unwritable.length);
        expired += written;
      }
      // Until the outbox is empty (rows cut by bytes are fewer than a batch, with more behind them).
      if (handled < this.batch && rows.length === 0) break;
    }
    this.metrics.scheduled.set(await this.store.scheduledCount());
    return expired;
  }
}

export interface RecomputeOptions {
  readonly windowMs: number;
  readonly taskOf: (model: string) => Task;
  readonly threshold: number;
  readonly segmentFeatures: readonly string[];
  readonly maxSegments: number;
  readonly bounds: readonly MetricBound[];
  readonly alertMinSamples: number;
  readonly alertSegments: boolean;
  readonly batch?: number;
  /** CBPE estimates and business outcome of classification windows (absent: neither is written). */
  readonly estimator?: WindowEstimator;
  /** Label coverage from which a window is judged on its realized metrics, not its estimate. */
  readonly realizedCoverage?: number;
  /**
   * Most labeled rows one recompute holds (DRIFTLINE_JOINER_MAX_WINDOW_ROWS); a window with more
   * is read as a sample of them (readWindow of @driftline/warehouse). Default {@link DEFAULT_MAX_WINDOW_ROWS}.
   */
  readonly maxWindowRows?: number;
  /** Takes the line said once per window read as a sample. */
  readonly logger?: Logger;
}

/** Windows whose sampling was logged, remembered (the oldest forgotten first). */
const SAMPLED_WINDOWS_LOGGED = 10_000;

/** Sends an alert once per id (best effort: a crash between send and mark re-sends the same id). */
export interface AlertPublisher {
  publish(alert: DriftAlert): Promise<void>;
}

/**
 * Recomputes dirty windows from ClickHouse: a window's metrics are a function of the deduplicated
 * joined rows, so a recompute is replay-safe and late labels simply make the window dirty again.
 * Rows carry `version` = the time the input was read; the newest version wins.
 */
/** Recomputes failed by an outage after which a pass stops (the rest stay dirty for the next). */
const MAX_OUTAGES_PER_PASS = 3;

export class WindowRecomputer {
  private readonly metrics;
  private readonly sampledLogged = new Set<string>();

  constructor(
    private readonly store: JoinStore<Buffer, Buffer>,
    private readonly warehouse: Pick<Warehouse, 'predictions' | 'performance'>,
    private readonly options: RecomputeOptions,
    private readonly alerts: AlertPublisher,
    private readonly alreadyAlerted: (id: string) => Promise<boolean>,
    private readonly markAlerted: (id: string) => Promise<void>,
    registry: Registry,
  ) {
    this.metrics = {
      recomputed: counter(registry, 'driftline_joiner_windows_recomputed_total', 'Performance windows recomputed', []),
      sampled: counter(
        registry,
        'driftline_joiner_windows_sampled_total',
        'Window recomputes whose labeled rows exceeded DRIFTLINE_JOINER_MAX_WINDOW_ROWS: metrics from a sample, counts exact',
        [],
      ),
      alerts: counter(registry, 'driftline_joiner_alerts_total', 'Performance alerts sent', ['metric']),
      // Both labels come from events: bounded (MAX_LABEL_VALUES each, then `__other__`).
      coverage: gauge(
        registry,
        'driftline_joiner_label_coverage',
        'Label coverage of the last recomputed window',
        ['model', 'model_version'],
        { bounded: ['model', 'model_version'] },
      ),
    };
  }

  /**
   * Flushes the score tallies (their acknowledgement marks their windows dirty), then recomputes the
   * dirty windows, each unmarked only if not marked again since it was read. A window that fails
   * stays dirty for a later pass and does not hold up the others (up to MAX_OUTAGES_PER_PASS outages);
   * the first failure is rethrown once the pass ends (the loop logs it). Returns the dirty windows
   * read.
   */
  async pass(): Promise<number> {
    const failures: unknown[] = [];
    let outages = 0;
    // A failing flush of the score histograms (ClickHouse refusing score_histograms_v2) leaves the
    // tallies in Redis for the next pass; the windows are recomputed all the same (their estimate
    // from the histograms written so far): it had stopped the whole pass, every window's realized
    // metrics and alerts with it (found by a review).
    try {
      await this.options.estimator?.flush();
    } catch (error) {
      failures.push(error);
      if (toDriftlineError(error).retriable) outages++;
    }
    const dirty = await this.store.dirtyWindows(this.options.batch ?? 200);
    for (const { key, mark } of dirty) {
      try {
        await this.recompute(parseWindowKey(key));
        await this.store.clearDirty(key, mark);
      } catch (error) {
        failures.push(error);
        // To the back of the queue: windows that keep failing, oldest first, had filled every
        // batch (200 refused for good, or 3 failing retriably) and no other window was
        // recomputed again (found by a review).
        await this.store.requeueDirty(key, mark).catch(() => {});
        // A few outages in one pass mean the warehouse is down or hung, not one bad window: stop
        // (each further attempt could wait out a timeout, a stop's final pass included). A window
        // refused for good (its alert too large for Kafka) does not count: three of them, oldest
        // first, had stopped every pass before any other window. (A calibration map the joiner
        // cannot parse no longer fails a recompute: the window is written without its estimate.)
        if (toDriftlineError(error).retriable && ++outages >= MAX_OUTAGES_PER_PASS) break;
      }
    }
    if (failures.length > 0) throw failures[0];
    return dirty.length;
  }

  async recompute(keyed: WindowRef): Promise<PerformanceRow[]> {
    const o = this.options;
    const readAt = Date.now();
    // A key written under another DRIFTLINE_JOINER_WINDOW: the current-size window containing its
    // start (see currentWindow). Predictions still pending under such a key count in no window's
    // `pending` until labeled or expired (their key is not this window's; README).
    const ref = currentWindow(keyed, o.windowMs);
    // Pending first: a prediction moving from pending to labeled in between is then counted twice at
    // worst (never lost), and the move marks the window dirty again anyway.
    const pending = await this.store.pendingCount(windowKey(ref));
    const window = await this.warehouse.predictions.readWindow(ref, o.windowMs, o.segmentFeatures, {
      maxRows: o.maxWindowRows ?? DEFAULT_MAX_WINDOW_ROWS,
      maxSegments: o.maxSegments,
    });
    if (window.sampled !== undefined) this.sampledWindow(ref, window.sampled.labeled, window.labeledCount);
    if (window.sampled?.cut === true) {
      // Rare by construction (rows arrived past the bound twice during one recompute): said each time.
      this.options.logger?.warn(
        {
          model: ref.model,
          model_version: ref.modelVersion,
          window_start: new Date(ref.windowStart).toISOString(),
          labeled: window.sampled.labeled,
        },
        'window sample cut at DRIFTLINE_JOINER_MAX_WINDOW_ROWS twice by rows arriving during its read: its metrics and business outcome are left empty this time (its counts exact); the next recompute reads it again',
      );
    }
    const task = o.taskOf(ref.model);
    const rows = computeWindow({
      task,
      threshold: o.threshold,
      segmentFeatures: o.segmentFeatures,
      maxSegments: o.maxSegments,
      window,
      pending,
      // A sampled slice with fewer sampled labels than an alert needs has no metrics (not a
      // handful's published beside the slice's exact count).
      minSampled: o.alertMinSamples,
    });
    const extras =
      task === 'classification' && o.estimator !== undefined ? await o.estimator.extras(ref, window) : undefined;
    await this.warehouse.performance.insert({
      ref,
      windowMs: o.windowMs,
      task,
      threshold: o.threshold,
      rows,
      version: readAt,
      computedAt: Date.now(),
      ...(extras?.estimate === undefined ? {} : { estimate: extras.estimate }),
      ...(extras === undefined ? {} : { business: extras.business }),
    });
    this.metrics.recomputed.inc();
    const all = rows[0];
    if (all?.labelCoverage !== null && all !== undefined) {
      this.metrics.coverage.set({ model: ref.model, model_version: ref.modelVersion }, all.labelCoverage);
    }
    for (const breach of evaluateBounds(rows, o.bounds, {
      minSamples: o.alertMinSamples,
      includeSegments: o.alertSegments,
      ...(extras === undefined ? {} : { business: businessMetrics(extras.business) }),
    })) {
      await this.alertOnce(ref, 'PERFORMANCE', breach, breach.row.segmentFeature, breach.row.segment, {
        labeled: breach.row.labeled,
        predictions: breach.row.predictions,
        expired: breach.row.expired,
        pending: breach.row.pending,
        label_coverage: breach.row.labelCoverage,
        metrics: breach.row.metrics,
        // A window over DRIFTLINE_JOINER_MAX_WINDOW_ROWS: the rows the metrics came from.
        ...(breach.row.sampled === undefined ? {} : { sampled_labels: breach.row.sampled }),
      });
    }
    // ESTIMATED_PERFORMANCE: the same bounds on the CBPE estimate, on each metric the realized row
    // does not judge (coverage below realizedCoverage, or fewer than alertMinSamples valid labels).
    const estimate = extras?.estimate;
    if (estimate !== undefined) {
      const coverage = all?.labelCoverage ?? null;
      for (const breach of evaluateEstimateBounds(estimate.value, all, o.bounds, {
        minSamples: o.alertMinSamples,
        realizedCoverage: o.realizedCoverage ?? 0.5,
      })) {
        const { n, accuracy, precision, recall, f1, roc_auc } = estimate.value;
        await this.alertOnce(ref, 'ESTIMATED_PERFORMANCE', breach, '', ALL_SEGMENT, {
          method: 'cbpe',
          scored: n,
          calibration_id: estimate.calibrationId,
          label_coverage: coverage,
          estimate: { accuracy, precision, recall, f1, roc_auc },
        });
      }
    }
    return rows;
  }

  /**
   * A window read as a sample: counted every time, said once per window (a live window is
   * recomputed every few seconds).
   */
  private sampledWindow(ref: WindowRef, labeled: number, sample: number): void {
    this.metrics.sampled.inc();
    const key = windowKey(ref);
    if (this.sampledLogged.has(key)) return;
    if (this.sampledLogged.size >= SAMPLED_WINDOWS_LOGGED) {
      this.sampledLogged.delete(this.sampledLogged.values().next().value as string);
    }
    this.sampledLogged.add(key);
    this.options.logger?.info(
      {
        model: ref.model,
        model_version: ref.modelVersion,
        window_start: new Date(ref.windowStart).toISOString(),
        labeled,
        sample,
        maxWindowRows: this.options.maxWindowRows ?? DEFAULT_MAX_WINDOW_ROWS,
      },
      'window over DRIFTLINE_JOINER_MAX_WINDOW_ROWS: its metrics and business outcome come from a uniform sample of its labeled rows (performance_windows.sampled_labels), its counts are exact',
    );
  }

  /** Publishes a breach once per (kind, window, slice, bound): the id is remembered after the send. */
  private async alertOnce(
    ref: WindowRef,
    kind: 'PERFORMANCE' | 'ESTIMATED_PERFORMANCE',
    breach: { readonly bound: MetricBound; readonly value: number },
    segmentFeature: string,
    segment: string,
    evidence: Record<string, unknown>,
  ): Promise<void> {
    const windowEnd = ref.windowStart + this.options.windowMs;
    const id = performanceAlertId({
      kind,
      model: ref.model,
      modelVersion: ref.modelVersion,
      windowStart: ref.windowStart,
      windowEnd,
      segmentFeature,
      segment,
      bound: breach.bound,
    });
    if (await this.alreadyAlerted(id)) return;
    await this.alerts.publish({
      alert_id: id,
      kind,
      model: ref.model,
      model_version: ref.modelVersion,
      feature: segmentFeature === '' ? null : segmentFeature,
      window_start: ref.windowStart,
      window_end: windowEnd,
      event_time: Date.now(),
      method: breach.bound.metric,
      statistic: breach.value,
      p_value: null,
      threshold: breach.bound.value,
      share_drifted: null,
      evidence: JSON.stringify({
        bound: `${breach.bound.metric}${breach.bound.op}${breach.bound.value}`,
        segment_feature: segmentFeature,
        segment,
        ...evidence,
      }),
    });
    await this.markAlerted(id);
    this.metrics.alerts.inc({
      metric: kind === 'PERFORMANCE' ? breach.bound.metric : `estimated_${breach.bound.metric}`,
    });
  }
}
