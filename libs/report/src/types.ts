/** Times are epoch milliseconds (UTC). */
export type EpochMs = number;

/** One row of `drift_windows`: a feature measured one way in one window. */
export interface DriftPoint {
  readonly feature: string;
  readonly method: string;
  readonly version: string;
  readonly windowStart: EpochMs;
  /** Null when the stored value was NaN or ±Inf (ClickHouse answers those as JSON null). */
  readonly statistic: number | null;
  /** Null when the method has none (PSI), or when it was stored as NaN or ±Inf (KS, chi2: shown "—"). */
  readonly pValue: number | null;
  /**
   * The threshold the row was judged against (PSI: the statistic's; KS/chi2: the p-value's alpha);
   * NaN when the stored value was NaN or ±Inf (shown "—"; it read 0).
   */
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
  /**
   * Labeled rows whose label is not a class (`performance_windows.invalid_labels`; a classification
   * window with any has no metrics): `labeled` less these are the valid labels. Absent: none.
   */
  readonly invalidLabels?: number;
  readonly labelCoverage: number | null;
  readonly metrics: Readonly<Record<string, number | null>>;
  /**
   * CBPE estimates of the whole window by metric name without the `estimated_` prefix (accuracy,
   * roc_auc…; migration 0610). Absent: not stored (an older table); a null value: not estimated.
   */
  readonly estimated?: Readonly<Record<string, number | null>>;
  /** Predictions the estimate is computed over (`scored`). */
  readonly scored?: number;
  /** Business outcome of the window's labeled rows at the threshold; null or absent: no value known. */
  readonly business?: BusinessOutcomePoint | null;
  /**
   * Labels the window's metrics and business outcome were computed from when it held more than the
   * label-joiner's DRIFTLINE_JOINER_MAX_WINDOW_ROWS and was read as a sample
   * (`performance_windows.sampled_labels`, migration 0680); 0 or absent: from all of them. The
   * counts (`predictions`, `labeled`, coverage) are exact either way.
   */
  readonly sampled?: number;
}

/** The business columns of a `performance_windows` row (labels.v1 `value`, libs/performance business.ts). */
export interface BusinessOutcomePoint {
  /** Labeled rows whose label carried a value. */
  readonly valuedLabels: number;
  /** Σ value of true positives. */
  readonly valueCaught: number;
  /** Σ value of false negatives. */
  readonly valueMissed: number;
  /** False positives × the cost per false alarm (or Σ their value without one). */
  readonly falseAlarmCost: number;
  /** valueCaught − falseAlarmCost: the model's decisions against deciding nothing. */
  readonly net: number;
}

/** A retrain decision or a model version event, for the history timeline. */
export interface RetrainEvent {
  readonly time: EpochMs;
  /**
   * `decision` (retrain-trigger), `model` (trainer: trained, promoted, rejected) or `stage` (a stage
   * transition of model_transitions: kind is the new stage, upper case).
   */
  readonly source: 'decision' | 'model' | 'stage';
  /** e.g. `retrain`, `suppressed`, `TRAINED`, `PROMOTED`, `SHADOW`, `CANARY`, `PRODUCTION`, `ROLLED_BACK`. */
  readonly kind: string;
  readonly version: string;
  readonly detail: string;
  /**
   * Stage events: model_transitions.previous_version — on PRODUCTION the version replaced, on
   * ROLLED_BACK the version serving instead. Absent or null: not recorded.
   */
  readonly previous?: string | null;
}

/** Training-serving skew of one feature in one window (skew_windows, partitions summed). */
export interface SkewPoint {
  readonly feature: string;
  readonly version: string;
  readonly windowStart: EpochMs;
  readonly sampled: number;
  readonly compared: number;
  readonly mismatched: number;
  /** Comparisons of numeric values: the denominator of mean |served − stored|. */
  readonly numericCompared: number;
  /** Σ |served − stored| over those; null when not stored. */
  readonly absDiffSum: number | null;
  readonly missingInStore: number;
  readonly missingInPrediction: number;
  /** Rows written after the prediction: not comparable as of its time. */
  readonly newerRow: number;
  /** No row read while the prediction was older than the view's TTL: expired, not comparable (0 before 0690). */
  readonly expired: number;
}

/** One feature's skew over the range (windows, versions and partitions summed). */
export interface SkewFeature {
  readonly feature: string;
  readonly sampled: number;
  readonly compared: number;
  /** Mismatched / compared; null when nothing was compared. */
  readonly share: number | null;
  /** Σ |served − stored| / Σ numeric comparisons; null when none. */
  readonly meanAbsDiff: number | null;
  readonly missingInStore: number;
  readonly missingInPrediction: number;
  readonly newerRow: number;
  readonly expired: number;
}

/**
 * The skew of the range per feature, for a `skew` that holds the chart's windows only (the
 * warehouse reader aggregates in SQL).
 */
export interface SkewTotals {
  /** The features the page lists (at most MAX_REPORT_FEATURES), ranked as `skewFeatures` ranks them. */
  readonly features: readonly SkewFeature[];
  /** Features with skew rows in the range. */
  readonly total: number;
  /**
   * Set when windows were left out of `skew`: per feature and bucket of this width it holds the
   * windows with the lowest and the highest share mismatched, and the latest window.
   */
  readonly bucketMs?: number;
}

/** One data-quality expectation of one feature in one window (data_quality_windows, drift-monitor). */
export interface QualityPoint {
  readonly feature: string;
  /** type, null_rate, range, categories (shares) or cardinality (estimated distinct values). */
  readonly expectation: string;
  readonly version: string;
  readonly windowStart: EpochMs;
  /** Null when the stored value was NaN or ±Inf. */
  readonly observed: number | null;
  /** The largest observed value that passes. */
  readonly bound: number;
  readonly passed: boolean;
}

/** One data-quality check (feature · expectation) over the range. */
export interface QualityCheck {
  readonly feature: string;
  readonly expectation: string;
  /** Rows measured: windows × versions. */
  readonly windows: number;
  readonly failed: number;
  /** The largest finite observed value; null when none was. */
  readonly worst: number | null;
  /** The bound of its earliest window (the lowest version name first). */
  readonly bound: number;
}

/**
 * The data-quality checks of the range, for a `quality` that holds the chart's points only (the
 * warehouse reader aggregates in SQL).
 */
export interface QualityTotals {
  /** The checks the page lists (at most MAX_REPORT_FEATURES), ranked as `qualityChecks` ranks them. */
  readonly checks: readonly QualityCheck[];
  /** Checks in the range. */
  readonly total: number;
  /**
   * Set when windows were left out of `quality`: per check and bucket of this width it holds the
   * windows whose worst version (what the page charts) is the lowest and the highest, each with
   * every version's row, and the latest window's.
   */
  readonly bucketMs?: number;
}

/**
 * Counts over every drift row of the range, for a `drift` that holds only some of them: the
 * warehouse reader reads the MAX_REPORT_FEATURES most drifted features, windows aggregated.
 */
export interface DriftTotals {
  /** Distinct input features with a drift row in the range. */
  readonly features: number;
  /** Distinct drift windows in the range. */
  readonly windows: number;
  /**
   * Set when the reader aggregated windows and some were left out: per bucket of this width and
   * (feature, method, version) `drift` holds the windows with the lowest and the highest statistic.
   */
  readonly bucketMs?: number;
  /** Per version, its latest window with a PSI row: input features measured and drifted there. */
  readonly latest: readonly {
    readonly version: string;
    readonly windowStart: EpochMs;
    readonly features: number;
    readonly drifted: number;
  }[];
}

/** Timeline events in the range, of which `ReportData.retrain` may hold only the latest. */
export interface TimelineTotals {
  /** Every event: fired decisions, trained versions, stage transitions. */
  readonly events: number;
  /** Fired retrain decisions. */
  readonly decisions: number;
}

export interface ReportData {
  readonly model: string;
  readonly from: EpochMs;
  readonly to: EpochMs;
  readonly generatedAt: EpochMs;
  readonly drift: readonly DriftPoint[];
  /** Absent: `drift` holds every row, and the summary counts them. */
  readonly driftTotals?: DriftTotals;
  readonly distributions: readonly FeatureDistribution[];
  readonly performance: readonly PerformancePoint[];
  readonly retrain: readonly RetrainEvent[];
  /**
   * Counts over every timeline event of the range, for a `retrain` that holds only the latest
   * (the warehouse reader reads MAX_TIMELINE_EVENTS). Absent: `retrain` holds every event.
   */
  readonly timelineTotals?: TimelineTotals;
  /** Training-serving skew per window and feature (absent: no skew-monitor data). */
  readonly skew?: readonly SkewPoint[];
  /** Absent: `skew` holds every row, and the section sums them. */
  readonly skewTotals?: SkewTotals;
  /** Data-quality expectations per window and feature (absent: none declared or no data). */
  readonly quality?: readonly QualityPoint[];
  /** Absent: `quality` holds every row, and the section counts them. */
  readonly qualityTotals?: QualityTotals;
  /**
   * The version in production at `to`, from every recorded stage transition up to then (the
   * model-controller's reading, rollbacks included), for a model without any the trainer's last
   * PROMOTED in the range (the warehouse reader reads it in SQL, older than the latest timeline
   * events too), or as `productionVersion(data)` reads the range's timeline (`retrain`) — the
   * reader sets what it read the drift of first. Absent: the
   * page reads it from the timeline by the same function.
   */
  readonly productionVersion?: string;
  /** Notes shown at the top, e.g. tables that were missing when the report was made. */
  readonly notes?: readonly string[];
}
