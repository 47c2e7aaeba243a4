import type { DriftAlert } from '@driftline/schemas';
import type { PerformanceRule, SignalConfig } from './config.js';

/** Metrics of the serving version at its evaluation (the "last model's" values), by metric name. */
export type Baseline = Readonly<Record<string, number>>;

function parseEvidence(text: string): Record<string, unknown> {
  try {
    const value: unknown = JSON.parse(text);
    return value !== null && typeof value === 'object' && !Array.isArray(value)
      ? (value as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

/** Features a FEATURE_DRIFT alert names as drifted: `feature` and the `drifted[].feature` of its evidence. */
export function driftedFeatures(alert: DriftAlert): string[] {
  const out = new Set<string>();
  if (alert.feature != null) out.add(alert.feature);
  const drifted = parseEvidence(alert.evidence).drifted;
  if (Array.isArray(drifted)) {
    for (const d of drifted) {
      const f = (d as { feature?: unknown } | null)?.feature;
      if (typeof f === 'string') out.add(f);
    }
  }
  return [...out].sort();
}

function isOverallSlice(alert: DriftAlert): boolean {
  const ev = parseEvidence(alert.evidence);
  const seg = ev.segment_feature;
  return alert.feature == null && (seg === undefined || seg === '');
}

function ruleLabel(r: PerformanceRule): string {
  if (r.below !== undefined) return `${r.metric}<${r.below}`;
  if (r.above !== undefined) return `${r.metric}>${r.above}`;
  if (r.below_baseline_by !== undefined) return `${r.metric}<baseline-${r.below_baseline_by}`;
  return `${r.metric}>baseline+${r.above_baseline_by}`;
}

function ruleHolds(r: PerformanceRule, value: number, baseline: Baseline | undefined): boolean {
  if (r.below !== undefined) return value < r.below;
  if (r.above !== undefined) return value > r.above;
  const base = baseline?.[r.metric];
  if (base === undefined || !Number.isFinite(base)) return false; // no baseline: this rule cannot judge
  if (r.below_baseline_by !== undefined) return value < base - r.below_baseline_by;
  if (r.above_baseline_by !== undefined) return value > base + r.above_baseline_by;
  return false;
}

/**
 * The configured signals one alert carries, as stable labels (sorted): `share_drifted>=0.3`,
 * `key_feature:amount`, `prediction_drift`, `performance:roc_auc<0.7`, … Empty when none counts.
 */
export function signalsOf(config: SignalConfig, alert: DriftAlert, baseline?: Baseline): string[] {
  const out: string[] = [];
  switch (alert.kind) {
    case 'FEATURE_DRIFT': {
      if (
        config.shareDrifted !== undefined &&
        alert.share_drifted != null &&
        alert.share_drifted >= config.shareDrifted
      ) {
        out.push(`share_drifted>=${config.shareDrifted}`);
      }
      if (config.keyFeatures.length > 0) {
        const drifted = new Set(driftedFeatures(alert));
        for (const f of config.keyFeatures) if (drifted.has(f)) out.push(`key_feature:${f}`);
      }
      break;
    }
    case 'PREDICTION_DRIFT':
      if (config.predictionDrift) out.push('prediction_drift');
      break;
    case 'PERFORMANCE': {
      if (!config.includeSegments && !isOverallSlice(alert)) break;
      if (!Number.isFinite(alert.statistic)) break;
      for (const r of config.performance) {
        if (r.metric === alert.method && ruleHolds(r, alert.statistic, baseline))
          out.push(`performance:${ruleLabel(r)}`);
      }
      break;
    }
  }
  return out.sort();
}
