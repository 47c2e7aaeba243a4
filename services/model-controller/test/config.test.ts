import { parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { modelControllerEnvShape, toModelControllerConfig } from '../src/config.js';

const config = (env: Record<string, string>) => toModelControllerConfig(parseEnv(modelControllerEnvShape, env));

describe('model-controller configuration', () => {
  it('refuses a padded or blank policy file, naming the variable', () => {
    expect(config({}).policySource).toBe('default rollout policy');
    for (const bad of [' x', 'x ', '\tx', '   ']) {
      expect(() => config({ DRIFTLINE_PROMOTION_POLICY: bad })).toThrow(/^DRIFTLINE_PROMOTION_POLICY: must not/);
    }
  });
});
