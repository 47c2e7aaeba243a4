import { envField, readConfigFile } from '@driftline/core';
import { DEFAULT_POLICY_DOCUMENT, type Policy, parsePolicy, parsePolicyText } from '@driftline/policy';
import type { z } from 'zod';

export const retrainTriggerEnvShape = {
  /** YAML or JSON policy file; without it the built-in default policy applies to every model. */
  DRIFTLINE_RETRAIN_POLICY_FILE: envField.name().optional(),
  DRIFTLINE_RETRAIN_GROUP: envField.name().default('driftline-retrain-trigger'),
};

export type RetrainTriggerEnv = z.infer<z.ZodObject<typeof retrainTriggerEnvShape>>;

export interface RetrainTriggerConfig {
  readonly policy: Policy;
  readonly policySource: string;
  readonly group: string;
}

/** Reads and validates the policy file; errors name the variable or the field inside the file. */
export function loadPolicy(file: string | undefined): Policy {
  if (file === undefined) return parsePolicy(DEFAULT_POLICY_DOCUMENT, 'default policy');
  const text = readConfigFile('DRIFTLINE_RETRAIN_POLICY_FILE', file);
  return parsePolicyText(text, file);
}

export function toRetrainTriggerConfig(env: RetrainTriggerEnv): RetrainTriggerConfig {
  return {
    policy: loadPolicy(env.DRIFTLINE_RETRAIN_POLICY_FILE),
    policySource: env.DRIFTLINE_RETRAIN_POLICY_FILE ?? '(default)',
    group: env.DRIFTLINE_RETRAIN_GROUP,
  };
}
