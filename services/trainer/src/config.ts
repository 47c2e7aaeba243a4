import { resolve } from 'node:path';
import { envField, MAX_TIMER_MS } from '@driftline/core';
import { z } from 'zod';
import type { LabelWaitPolicy } from './label-wait.js';
import type { PromotionMetric, PromotionRule } from './promotion.js';
import type { Device } from './worker.js';

// Both durations drive timers (the worker's kill, the session): bounded by what a timer keeps.
const duration = () => envField.duration(1, MAX_TIMER_MS);

export const trainerEnvShape = {
  DRIFTLINE_TRAINER_GROUP: envField.string().default('driftline-trainer'),
  /** Where model artifacts (and the training set they came from) are kept: <dir>/<model>/<version>/. */
  DRIFTLINE_TRAINER_ARTIFACT_DIR: envField.string().default('.driftline/models'),
  /** Python interpreter of the worker; by default the venv worker/setup-venv.sh creates (once). */
  DRIFTLINE_TRAINER_PYTHON: envField.string().optional(),
  /** auto: CUDA when nvidia-smi lists a GPU and xgboost has CUDA, else CPU. */
  DRIFTLINE_TRAINER_DEVICE: z.enum(['auto', 'cpu', 'cuda']).default('auto'),
  DRIFTLINE_TRAINER_PROMOTION_METRIC: z.enum(['roc_auc', 'log_loss', 'accuracy']).default('roc_auc'),
  /** The candidate must beat the serving model by this much on the held-out slice. */
  DRIFTLINE_TRAINER_PROMOTION_MARGIN: envField.number(0, 1).default(0.01),
  /** Newest share of the training window held out for evaluation. */
  DRIFTLINE_TRAINER_HOLDOUT_FRACTION: envField
    .number(0, 1)
    .refine((v) => v > 0 && v < 1, 'must be between 0 and 1, both excluded')
    .default(0.2),
  /** Fewer labeled rows than this in the window: the request is refused (dead-lettered with the reason). */
  DRIFTLINE_TRAINER_MIN_ROWS: envField.int(10).default(200),
  /**
   * Fewer than MIN_ROWS labeled rows: wait for labels until the window's end (data_to) plus this,
   * reading again every DRIFTLINE_TRAINER_LABEL_POLL; then refuse. 0 refuses at once. The wait
   * holds the partition (requests of other models on it queue behind), hence the 7 d bound.
   */
  DRIFTLINE_TRAINER_LABEL_WAIT: envField
    .duration(0)
    .pipe(z.number().max(7 * 86_400_000, 'must be at most 7d'))
    .default(3_600_000),
  DRIFTLINE_TRAINER_LABEL_POLL: envField
    .duration(100)
    .pipe(z.number().max(3_600_000, 'must be at most 1h'))
    .default(30_000),
  /**
   * Most rows one training reads: a larger window keeps its newest rows (read in pages of 50,000);
   * what was kept is recorded in model_versions (params.training_window).
   */
  DRIFTLINE_TRAINER_MAX_ROWS: envField.int(10, 50_000_000).default(500_000),
  DRIFTLINE_TRAINER_ROUNDS: envField.int(1, 100_000).default(200),
  DRIFTLINE_TRAINER_MAX_DEPTH: envField.int(1, 32).default(4),
  DRIFTLINE_TRAINER_TIMEOUT: duration().default(20 * 60_000),
  /**
   * Kafka session timeout of the trainer's group. The service heartbeats every 3 s while it trains
   * (service.ts), so this only has to cover a stalled process, not the longest training.
   */
  DRIFTLINE_TRAINER_SESSION_TIMEOUT: duration().default(60_000),
  /**
   * direct: a version that passes the offline gate is PROMOTED at once. staged: it is published as
   * SHADOW and recorded in model_transitions (candidate → shadow); the model-controller takes it
   * further on live evidence.
   */
  DRIFTLINE_TRAINER_ROLLOUT: z.enum(['direct', 'staged']).default('direct'),
};

export type TrainerEnv = z.infer<z.ZodObject<typeof trainerEnvShape>>;

export interface TrainerConfig {
  readonly group: string;
  readonly artifactDir: string;
  readonly python?: string;
  readonly device: Device;
  readonly promotion: PromotionRule;
  readonly holdoutFraction: number;
  readonly minRows: number;
  readonly labelWait: LabelWaitPolicy;
  readonly maxRows: number;
  readonly params: Readonly<Record<string, number>>;
  readonly timeoutMs: number;
  readonly sessionTimeoutMs: number;
  readonly rollout: 'direct' | 'staged';
}

export function toTrainerConfig(env: TrainerEnv): TrainerConfig {
  return {
    group: env.DRIFTLINE_TRAINER_GROUP,
    artifactDir: resolve(env.DRIFTLINE_TRAINER_ARTIFACT_DIR),
    ...(env.DRIFTLINE_TRAINER_PYTHON === undefined ? {} : { python: env.DRIFTLINE_TRAINER_PYTHON }),
    device: env.DRIFTLINE_TRAINER_DEVICE,
    promotion: {
      metric: env.DRIFTLINE_TRAINER_PROMOTION_METRIC as PromotionMetric,
      margin: env.DRIFTLINE_TRAINER_PROMOTION_MARGIN,
    },
    holdoutFraction: env.DRIFTLINE_TRAINER_HOLDOUT_FRACTION,
    minRows: env.DRIFTLINE_TRAINER_MIN_ROWS,
    labelWait: { waitMs: env.DRIFTLINE_TRAINER_LABEL_WAIT, pollMs: env.DRIFTLINE_TRAINER_LABEL_POLL },
    maxRows: env.DRIFTLINE_TRAINER_MAX_ROWS,
    params: { rounds: env.DRIFTLINE_TRAINER_ROUNDS, max_depth: env.DRIFTLINE_TRAINER_MAX_DEPTH, seed: 7 },
    timeoutMs: env.DRIFTLINE_TRAINER_TIMEOUT,
    sessionTimeoutMs: env.DRIFTLINE_TRAINER_SESSION_TIMEOUT,
    rollout: env.DRIFTLINE_TRAINER_ROLLOUT,
  };
}
