import { parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { retrainTriggerEnvShape, toRetrainTriggerConfig } from '../src/config.js';

const config = (env: Record<string, string>) => toRetrainTriggerConfig(parseEnv(retrainTriggerEnvShape, env));

describe('retrain-trigger configuration', () => {
  it('refuses a padded or blank group or policy file, naming the variable: " g " is another group', () => {
    expect(config({ DRIFTLINE_RETRAIN_GROUP: 'retrain a' }).group).toBe('retrain a');
    for (const name of ['DRIFTLINE_RETRAIN_GROUP', 'DRIFTLINE_RETRAIN_POLICY_FILE']) {
      for (const bad of [' x', 'x ', '\tx', '   '])
        expect(() => config({ [name]: bad })).toThrow(new RegExp(`^${name}: must not`));
    }
  });
});
