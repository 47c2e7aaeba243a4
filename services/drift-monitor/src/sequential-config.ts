import { ConfigError, envField } from '@driftline/core';
import {
  DEFAULT_SEQUENTIAL,
  hazardFor,
  SEQUENTIAL_BOUNDS,
  SEQUENTIAL_MAX_BINS,
  type SequentialConfig,
} from '@driftline/drift';
import { z } from 'zod';

const [wLo, wHi] = SEQUENTIAL_BOUNDS.window;
const [kLo, kHi] = SEQUENTIAL_BOUNDS.every;
const [eLo, eHi] = SEQUENTIAL_BOUNDS.ert;
const [bLo, bHi] = SEQUENTIAL_BOUNDS.bootstraps;

/** Environment of the online sequential detector (off unless DRIFTLINE_SEQUENTIAL=true). */
export const sequentialEnvShape = {
  /** Run the online sequential detector in stage one (default false). */
  DRIFTLINE_SEQUENTIAL: envField.bool().default(false),
  /** Expected run time between false alarms, in values of one feature on one partition. */
  DRIFTLINE_SEQUENTIAL_ERT: envField.int(eLo, eHi).default(DEFAULT_SEQUENTIAL.ert),
  /** Sliding window W: the newest values compared with the reference. */
  DRIFTLINE_SEQUENTIAL_WINDOW: envField.int(wLo, wHi).default(DEFAULT_SEQUENTIAL.window),
  /** The statistic is computed every this many values. */
  DRIFTLINE_SEQUENTIAL_EVERY: envField.int(kLo, kHi).default(DEFAULT_SEQUENTIAL.every),
  /** Reference-quantile bins of the statistic. */
  DRIFTLINE_SEQUENTIAL_BINS: envField.int(2, SEQUENTIAL_MAX_BINS).default(DEFAULT_SEQUENTIAL.bins),
  /** cvm (Cramér–von Mises, default) or ks. */
  DRIFTLINE_SEQUENTIAL_STATISTIC: z.enum(['cvm', 'ks']).default(DEFAULT_SEQUENTIAL.statistic),
  /** Simulated null streams per calibration (cost ∝ this). */
  DRIFTLINE_SEQUENTIAL_BOOTSTRAPS: envField.int(bLo, bHi).default(DEFAULT_SEQUENTIAL.bootstraps),
  /** (model, version) detector sets kept per owned partition. */
  DRIFTLINE_SEQUENTIAL_MAX_STREAMS: envField.int(1, 1_000_000).default(DEFAULT_SEQUENTIAL.maxStreams),
};

/** Fewest expected exceedances in the stationary fit below which the ERT cannot be calibrated. */
const MIN_STATIONARY_EXCEEDANCES = 20;

/** undefined when off. Cross-field errors name the variable to change. */
export function toSequentialConfig(env: z.infer<z.ZodObject<typeof sequentialEnvShape>>): SequentialConfig | undefined {
  if (!env.DRIFTLINE_SEQUENTIAL) return undefined;
  const config: SequentialConfig = {
    ...DEFAULT_SEQUENTIAL,
    statistic: env.DRIFTLINE_SEQUENTIAL_STATISTIC,
    window: env.DRIFTLINE_SEQUENTIAL_WINDOW,
    every: env.DRIFTLINE_SEQUENTIAL_EVERY,
    ert: env.DRIFTLINE_SEQUENTIAL_ERT,
    bins: env.DRIFTLINE_SEQUENTIAL_BINS,
    bootstraps: env.DRIFTLINE_SEQUENTIAL_BOOTSTRAPS,
    maxStreams: env.DRIFTLINE_SEQUENTIAL_MAX_STREAMS,
  };
  if (config.ert <= 2 * config.window)
    throw new ConfigError(
      'DRIFTLINE_SEQUENTIAL_ERT',
      `must exceed twice DRIFTLINE_SEQUENTIAL_WINDOW (${config.window})`,
    );
  if (config.every > config.window)
    throw new ConfigError(
      'DRIFTLINE_SEQUENTIAL_EVERY',
      `must not exceed DRIFTLINE_SEQUENTIAL_WINDOW (${config.window})`,
    );
  // The stationary threshold is fitted on min(ERT, 20·W) values per stream: too few streams and
  // too large an ERT leave too few exceedances to fit (precision ≈ 1/√exceedances).
  const m = Math.ceil(Math.min(config.ert, 20 * config.window) / config.every);
  const expected = config.bootstraps * (1 - (1 - hazardFor(config.ert, config.every)) ** m);
  if (expected < MIN_STATIONARY_EXCEEDANCES)
    throw new ConfigError(
      'DRIFTLINE_SEQUENTIAL_BOOTSTRAPS',
      `${config.bootstraps} streams leave ${expected.toFixed(1)} expected exceedances at ERT ${config.ert} ` +
        `(need ${MIN_STATIONARY_EXCEEDANCES}): raise it to ${Math.ceil((config.bootstraps * MIN_STATIONARY_EXCEEDANCES) / expected)} or lower the ERT`,
    );
  return config;
}
