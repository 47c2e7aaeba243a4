import { resolve } from 'node:path';
import { ConfigError, envField, MAX_TIMER_MS } from '@driftline/core';
import { DEFAULT_MODEL_LIMITS, SERVED_MODEL_LIMITS } from '@driftline/scoring';
import { z } from 'zod';
import { holdoutCount } from './dataset.js';
import type { LabelWaitPolicy } from './label-wait.js';
import type { PromotionMetric, PromotionRule } from './promotion.js';
import { defaultMaxCells } from './training-source.js';
import type { Device } from './worker.js';

// Both durations drive timers (the worker's kill, the session): bounded by what a timer keeps.
const duration = (min: number) => envField.duration(min, MAX_TIMER_MS);

/**
 * Floor of DRIFTLINE_TRAINER_TIMEOUT: the worker's start alone (Python, its imports) takes ~1.6 s,
 * so 1 s, the floor before, was accepted and timed out every run, each retried and given up (found
 * by a review). 10 s leaves the start and a small training room on a loaded machine.
 */
export const MIN_TRAINING_TIMEOUT_MS = 10_000;

export const trainerEnvShape = {
  DRIFTLINE_TRAINER_GROUP: envField.name().default('driftline-trainer'),
  /** Where model artifacts (and the training set they came from) are kept: <dir>/<model>/<version>/. */
  DRIFTLINE_TRAINER_ARTIFACT_DIR: envField.name().default('.driftline/models'),
  /** Python interpreter of the worker; by default the venv worker/setup-venv.sh creates (once). */
  DRIFTLINE_TRAINER_PYTHON: envField.name().optional(),
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
   * Rows of each class (0 and 1) needed in the training split and in the held-out slice, awaited
   * like MIN_ROWS: a one-class window trained a constant model (PROMOTED on accuracy or log loss) or
   * left ROC AUC undefined (REJECTED).
   */
  DRIFTLINE_TRAINER_MIN_CLASS_ROWS: envField.int(1).default(1),
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
  /**
   * Most feature values (rows × their features) one training holds while reading its window; past
   * it the request is refused (DLQ), naming this and MAX_ROWS. Default: what fills half the heap at
   * 80 bytes a value (training-source.ts), so a wide window is refused instead of killing the trainer.
   */
  DRIFTLINE_TRAINER_MAX_CELLS: envField.int(1_000, 10_000_000_000).optional(),
  DRIFTLINE_TRAINER_ROUNDS: envField.int(1, 100_000).default(200),
  DRIFTLINE_TRAINER_MAX_DEPTH: envField.int(1, 32).default(4),
  /**
   * Longest training run (the worker is killed past it), at least 10 s: the worker's Python start
   * alone takes ~1.6 s, so a smaller value (a bare `5` is 5 ms, `1s`) failed every run as a timeout.
   */
  DRIFTLINE_TRAINER_TIMEOUT: duration(MIN_TRAINING_TIMEOUT_MS).default(20 * 60_000),
  /**
   * Kafka session timeout of the trainer's group. The service heartbeats every 3 s while it trains
   * (service.ts), so this only has to cover a stalled process, not the longest training. At least
   * 6 s (Kafka's group.min.session.timeout.ms): 1 ms had been accepted, a membership lost at once.
   * At most 5 min, the materializer's bound, under any broker's group.max.session.timeout.ms: above
   * it the group join failed (INVALID_SESSION_TIMEOUT) and the trainer consumed nothing.
   */
  DRIFTLINE_TRAINER_SESSION_TIMEOUT: duration(6_000)
    .pipe(z.number().max(300_000, 'must be at most 5m'))
    .default(60_000),
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
  readonly minClassRows: number;
  readonly labelWait: LabelWaitPolicy;
  readonly maxRows: number;
  /** DRIFTLINE_TRAINER_MAX_CELLS, or its default from the heap limit. */
  readonly maxCells: number;
  readonly params: Readonly<Record<string, number>>;
  readonly timeoutMs: number;
  readonly sessionTimeoutMs: number;
  readonly rollout: 'direct' | 'staged';
}

/**
 * Bounds between fields, checked at start-up (one line naming the field): each field alone can be
 * in range while together they can never train, or train what the model-server refuses.
 */
function checkTrainerEnv(env: TrainerEnv): void {
  const minRows = env.DRIFTLINE_TRAINER_MIN_ROWS;
  const maxRows = env.DRIFTLINE_TRAINER_MAX_ROWS;
  if (minRows > maxRows) {
    throw new ConfigError(
      'DRIFTLINE_TRAINER_MIN_ROWS',
      `${minRows} is more than DRIFTLINE_TRAINER_MAX_ROWS (${maxRows}): no window could ever train`,
    );
  }
  const held = holdoutCount(maxRows, env.DRIFTLINE_TRAINER_HOLDOUT_FRACTION);
  const smaller = Math.min(held, maxRows - held);
  if (2 * env.DRIFTLINE_TRAINER_MIN_CLASS_ROWS > smaller) {
    throw new ConfigError(
      'DRIFTLINE_TRAINER_MIN_CLASS_ROWS',
      `${env.DRIFTLINE_TRAINER_MIN_CLASS_ROWS} of each class cannot fit the ${smaller} rows of the smaller side of a split of DRIFTLINE_TRAINER_MAX_ROWS (${maxRows}) rows`,
    );
  }
  // A full tree of depth d has 2^(d+1) − 1 nodes; the model-server refuses a model past its limits.
  const rounds = env.DRIFTLINE_TRAINER_ROUNDS;
  const depth = env.DRIFTLINE_TRAINER_MAX_DEPTH;
  if (2 ** (depth + 1) - 1 > DEFAULT_MODEL_LIMITS.maxNodesPerTree) {
    throw new ConfigError(
      'DRIFTLINE_TRAINER_MAX_DEPTH',
      `a tree of depth ${depth} can hold ${2 ** (depth + 1) - 1} nodes, more than the ${DEFAULT_MODEL_LIMITS.maxNodesPerTree} per tree the model-server loads`,
    );
  }
  const nodes = rounds * (2 ** (depth + 1) - 1);
  if (nodes > SERVED_MODEL_LIMITS.maxTotalNodes) {
    throw new ConfigError(
      'DRIFTLINE_TRAINER_ROUNDS',
      `${rounds} trees of depth up to DRIFTLINE_TRAINER_MAX_DEPTH ${depth} can hold ${nodes} nodes, more than the ${SERVED_MODEL_LIMITS.maxTotalNodes} the model-server loads (lower the rounds or the depth)`,
    );
  }
  if (rounds * depth > SERVED_MODEL_LIMITS.maxTotalDepth) {
    throw new ConfigError(
      'DRIFTLINE_TRAINER_ROUNDS',
      `${rounds} trees × depth ${depth} (DRIFTLINE_TRAINER_MAX_DEPTH) is more than the ${SERVED_MODEL_LIMITS.maxTotalDepth} summed depths the model-server loads`,
    );
  }
}

export function toTrainerConfig(env: TrainerEnv): TrainerConfig {
  checkTrainerEnv(env);
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
    minClassRows: env.DRIFTLINE_TRAINER_MIN_CLASS_ROWS,
    labelWait: { waitMs: env.DRIFTLINE_TRAINER_LABEL_WAIT, pollMs: env.DRIFTLINE_TRAINER_LABEL_POLL },
    maxRows: env.DRIFTLINE_TRAINER_MAX_ROWS,
    maxCells: env.DRIFTLINE_TRAINER_MAX_CELLS ?? defaultMaxCells(),
    params: { rounds: env.DRIFTLINE_TRAINER_ROUNDS, max_depth: env.DRIFTLINE_TRAINER_MAX_DEPTH, seed: 7 },
    timeoutMs: env.DRIFTLINE_TRAINER_TIMEOUT,
    sessionTimeoutMs: env.DRIFTLINE_TRAINER_SESSION_TIMEOUT,
    rollout: env.DRIFTLINE_TRAINER_ROLLOUT,
  };
}
