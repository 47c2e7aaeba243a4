import { LATE_ONLY_METHOD } from '@driftline/drift';
import type { ClickHouse } from '../client.js';

/**
 * How far the loop has come, across every model: what `make demo` prints while it runs. Drift
 * figures count measurements: a late-only row (LATE_ONLY_METHOD: the late events of a window with
 * none on time) measures nothing, so it is neither a drift row nor a measured window.
 */
export interface PipelineCounts {
  /** Measurement rows of drift_windows (one per feature, method and window). */
  readonly driftRows: number;
  /**
   * Distinct windows measured, and those where some feature drifted. A window is its start and end:
   * windows of two lengths starting at the same time (DRIFTLINE_DRIFT_WINDOW changed) are two.
   */
  readonly windows: number;
  readonly driftedWindows: number;
  /** Alerts decided by the retrain-trigger, and those that fired a retrain request. */
  readonly decisions: number;
  readonly retrainRequests: number;
  readonly modelVersions: number;
  readonly promoted: number;
}

export interface TrainedVersion {
  readonly version: string;
  readonly status: string;
  readonly promotionReason: string;
  readonly device: string;
}

/**
 * One window's PSI verdicts for a model: which features were measured and which drifted. Windows of
 * two lengths starting at the same time (DRIFTLINE_DRIFT_WINDOW changed) are two, told apart by their end.
 */
export interface WindowVerdicts {
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly version: string;
  readonly drifted: string[];
  readonly measured: string[];
}

/** One answered (production or canary) labelled prediction: what live performance is computed from. */
export interface LiveOutcome {
  readonly time: number;
  readonly version: string;
  readonly role: string;
  readonly score: number;
  readonly label: number;
}

/** Read model of the whole loop (drift → decisions → versions), for the demo and smoke checks. */
export class PipelineSummary {
  constructor(private readonly ch: ClickHouse) {}

  async counts(): Promise<PipelineCounts> {
    const t = (name: string) => this.ch.table(name);
    const measured = 'method != {lateOnly:String}';
    const [row] = await this.ch.select<Record<keyof PipelineCounts, number | string>>(
      `SELECT
         (SELECT count() FROM ${t('drift_windows')} FINAL WHERE ${measured}) AS driftRows,
         (SELECT uniqExact(window_start, window_end) FROM ${t('drift_windows')} FINAL WHERE ${measured}) AS windows,
         (SELECT uniqExact(window_start, window_end) FROM ${t('drift_windows')} FINAL WHERE drifted AND ${measured}) AS driftedWindows,
         (SELECT count() FROM ${t('retrain_decisions')} FINAL) AS decisions,
         (SELECT count() FROM ${t('retrain_decisions')} FINAL WHERE fired) AS retrainRequests,
         (SELECT count() FROM ${t('model_versions')} FINAL) AS modelVersions,
         (SELECT count() FROM ${t('model_versions')} FINAL WHERE status = 'PROMOTED') AS promoted`,
      { lateOnly: LATE_ONLY_METHOD },
    );
    const n = (k: keyof PipelineCounts) => Number(row?.[k] ?? 0);
    return {
      driftRows: n('driftRows'),
      windows: n('windows'),
      driftedWindows: n('driftedWindows'),
      decisions: n('decisions'),
      retrainRequests: n('retrainRequests'),
      modelVersions: n('modelVersions'),
      promoted: n('promoted'),
    };
  }

  /** Every trained version, in training order. */
  async versions(): Promise<TrainedVersion[]> {
    const rows = await this.ch.select<{ version: string; status: string; promotion_reason: string; device: string }>(
      `SELECT version, status, promotion_reason, device FROM ${this.ch.table('model_versions')} FINAL ORDER BY registered_at`,
    );
    return rows.map((r) => ({
      version: r.version,
      status: r.status,
      promotionReason: r.promotion_reason,
      device: r.device,
    }));
  }

  /** The most recently promoted version, if any. */
  async latestPromoted(): Promise<string | undefined> {
    const [row] = await this.ch.select<{ version: string }>(
      `SELECT version FROM ${this.ch.table('model_versions')} FINAL WHERE status = 'PROMOTED'
       ORDER BY registered_at DESC LIMIT 1`,
    );
    return row?.version;
  }

  async psiWindows(model: string): Promise<WindowVerdicts[]> {
    const rows = await this.ch.select<{
      ws: number | string;
      we: number | string;
      version: string;
      drifted: string[];
      measured: string[];
    }>(
      `SELECT toUnixTimestamp64Milli(window_start) AS ws, toUnixTimestamp64Milli(window_end) AS we, version,
         groupArrayIf(feature, drifted = 1) AS drifted, groupArray(feature) AS measured
       FROM ${this.ch.table('drift_windows')} FINAL WHERE model = {model:String} AND method = 'psi'
       GROUP BY ws, we, version ORDER BY ws, we, version`,
      { model },
    );
    return rows.map((r) => ({
      windowStart: Number(r.ws),
      windowEnd: Number(r.we),
      version: r.version,
      drifted: r.drifted,
      measured: r.measured,
    }));
  }

  /** Labelled predictions of one version (answered or not), deduplicated. */
  async labeledCount(model: string, version: string): Promise<number> {
    const [row] = await this.ch.select<{ n: number | string }>(
      `SELECT count() AS n FROM ${this.ch.table('labeled_predictions')} FINAL
       WHERE model = {model:String} AND model_version = {version:String}`,
      { model, version },
    );
    return Number(row?.n ?? 0);
  }

  /**
   * Answered labelled predictions (shadow records are never joined) with prediction_time in
   * [from, to), in time order: live performance per phase of the demo. Bounded by `limit`.
   */
  async liveOutcomes(model: string, from: number, to: number, limit = 1_000_000): Promise<LiveOutcome[]> {
    const rows = await this.ch.select<{ t: number | string; v: string; r: string; p: number; y: number }>(
      `SELECT toUnixTimestamp64Milli(prediction_time) AS t, model_version AS v, role AS r, prediction AS p, label AS y
       FROM ${this.ch.table('labeled_predictions')} FINAL
       WHERE model = {model:String} AND role != 'shadow'
         AND prediction_time >= fromUnixTimestamp64Milli({from:Int64}, 'UTC')
         AND prediction_time < fromUnixTimestamp64Milli({to:Int64}, 'UTC')
       ORDER BY prediction_time, prediction_id LIMIT {limit:UInt32}`,
      { model, from, to, limit },
    );
    return rows.map((r) => ({ time: Number(r.t), version: r.v, role: r.r, score: Number(r.p), label: Number(r.y) }));
  }
}
