import { ConfigError, envField, MAX_TIMER_MS, ownValue, readConfigFile } from '@driftline/core';
import {
  parseRolloutPolicy,
  parseRolloutPolicyText,
  type RolloutLimits,
  type RolloutPolicies,
} from '@driftline/policy';
import { MAX_PAIRS_PER_READ, RETENTION_DAYS } from '@driftline/warehouse';
import type { z } from 'zod';

export const modelControllerEnvShape = {
  /**
   * YAML or JSON rollout policy: `defaults` and per-model sections (`*` for the rest) of
   * `promotion`, `rollback` and `canary_share`, or `manual: true`. A model not listed gets `*`, or
   * the defaults when the file has no `*`. Without a file every model gets the defaults.
   */
  DRIFTLINE_PROMOTION_POLICY: envField.name().optional(),
  /** Wall-clock time between two ticks (decisions use event time only). */
  DRIFTLINE_MODEL_CONTROLLER_INTERVAL: envField.duration(100, MAX_TIMER_MS).default(10_000),
  /**
   * Most labelled pairs one comparison reads per tick; every policy's max_labels must fit in it,
   * and it fits in one read of the warehouse (MAX_PAIRS_PER_READ).
   */
  DRIFTLINE_MODEL_CONTROLLER_MAX_PAIRS: envField.int(1, MAX_PAIRS_PER_READ).default(100_000),
  /**
   * The controllers' consumer group on models.v1 (after DRIFTLINE_TOPIC_PREFIX): each model is
   * decided by the one member that holds its partition. Controllers with different groups each
   * decide every model.
   */
  DRIFTLINE_MODEL_CONTROLLER_GROUP: envField.name().default('model-controller'),
};

export type ModelControllerEnv = z.infer<z.ZodObject<typeof modelControllerEnvShape>>;

export interface ModelControllerConfig {
  readonly policies: RolloutPolicies;
  readonly policySource: string;
  readonly intervalMs: number;
  readonly maxPairs: number;
  /** Consumer group of the controllers, without the topic prefix. */
  readonly group: string;
}

/**
 * What the policy is checked against: the comparisons read `labeled_predictions`, whose rows are
 * kept RETENTION_DAYS from when written, so a `label_maturity` + `max_time` must fit well inside it.
 */
const ROLLOUT_LIMITS: RolloutLimits = { labelRetentionMs: RETENTION_DAYS.labeled_predictions * 86_400_000 };

/** Reads and validates the policy file; errors name the variable or the field inside the file. */
export function loadRolloutPolicy(file: string | undefined): RolloutPolicies {
  if (file === undefined) return parseRolloutPolicy(undefined, 'default rollout policy', ROLLOUT_LIMITS);
  const text = readConfigFile('DRIFTLINE_PROMOTION_POLICY', file);
  return parseRolloutPolicyText(text, file, ROLLOUT_LIMITS);
}

export function toModelControllerConfig(env: ModelControllerEnv): ModelControllerConfig {
  const source = env.DRIFTLINE_PROMOTION_POLICY ?? 'default rollout policy';
  const policies = loadRolloutPolicy(env.DRIFTLINE_PROMOTION_POLICY);
  const maxPairs = env.DRIFTLINE_MODEL_CONTROLLER_MAX_PAIRS;
  // A comparison reads its pairs again on every tick (the controller keeps no state), so one
  // read must be able to reach max_labels, or a comparison could never end on max_labels.
  for (const [model, p] of Object.entries(policies.models)) {
    if (p === null) continue; // manual: no comparison, no pairs read
    for (const kind of ['promotion', 'rollback'] as const) {
      if (p[kind].maxLabels > maxPairs) {
        throw new ConfigError(
          `${ownValue(policies.fields ?? {}, model) ?? `${source}.models.${model}`}.${kind}.max_labels`,
          `${p[kind].maxLabels} is above DRIFTLINE_MODEL_CONTROLLER_MAX_PAIRS (${maxPairs}); lower it or raise the bound`,
        );
      }
    }
  }
  return {
    policies,
    policySource: source,
    intervalMs: env.DRIFTLINE_MODEL_CONTROLLER_INTERVAL,
    maxPairs,
    group: env.DRIFTLINE_MODEL_CONTROLLER_GROUP,
  };
}
