/** Times are epoch milliseconds (UTC). */
export type EpochMs = number;

/** One row of `drift_windows`: a feature measured one way in one window. */
export interface DriftPoint {
  readonly feature: string;
  readonly method: string;
  readonly version: string;
  readonly windowStart: EpochMs;
  readonly statistic: number;
  readonly pValue: number | null;
  /** The threshold the row was judged against (PSI: the statistic's; KS/chi2: the p-value's alpha). */
  readonly threshold: number;
  readonly drifted: boolean;
}

/** One bin of a distribution: shares (0..1) of the reference and of the current data. */
export interface DistributionBin {
  readonly label: string;
  readonly reference: number;
  readonly current: number;
}

export interface FeatureDistribution {
  readonly feature: string;
  readonly kind: 'numeric' | 'categorical';
  readonly version: string;
  readonly bins: readonly DistributionBin[];
  /** Values the current shares were computed from (0: no current data in the range). */
  readonly currentCount: number;
  readonly referenceCount: number;
}

/** One row of `performance_windows` (overall segment). Metrics absent for the task are null. */
export interface PerformancePoint {
  readonly version: string;
  readonly windowStart: EpochMs;
  readonly task: string;
  readonly predictions: number;
  readonly labeled: number;
  readonly labelCoverage: number | null;
  readonly metrics: Readonly<Record<string, number | null>>;
}

/** A retrain decision or a model version event, for the history timeline. */
export interface RetrainEvent {
  readonly time: EpochMs;
  /** `decision` (retrain-trigger) or `model` (trainer: trained, promoted, rejected). */
  readonly source: 'decision' | 'model';
  /** e.g. `retrain`, `suppressed`, `TRAINED`, `PROMOTED`. */
  readonly kind: string;
  readonly version: string;
  readonly detail: string;
}

export interface ReportData {
  readonly model: string;
  readonly from: EpochMs;
  readonly to: EpochMs;
  readonly generatedAt: EpochMs;
  readonly drift: readonly DriftPoint[];
  readonly distributions: readonly FeatureDistribution[];
  readonly performance: readonly PerformancePoint[];
  readonly retrain: readonly RetrainEvent[];
  /** Notes shown at the top, e.g. tables that were missing when the report was made. */
  readonly notes?: readonly string[];
}
