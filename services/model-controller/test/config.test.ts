import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  it("refuses a label_maturity whose comparisons outlive labeled_predictions' 180-day retention, naming the field", () => {
    const dir = mkdtempSync(join(tmpdir(), 'driftline-mc-config-'));
    const file = (name: string, text: string) => {
      const path = join(dir, name);
      writeFileSync(path, text);
      return path;
    };
    // 365d was accepted: its early labels were deleted before their predictions matured, and a
    // worse candidate was promoted on the slow class alone (a review: 20 of 20).
    const year = file('year.yaml', 'defaults:\n  label_maturity: 365d\n');
    expect(() => config({ DRIFTLINE_PROMOTION_POLICY: year })).toThrow(
      new RegExp(
        `^${year.replaceAll('.', '\\.')}\\.defaults\\.label_maturity: 365d \\+ promotion max_time 7d must be at most 150d: labelled rows are kept 180d from when written`,
      ),
    );
    const fraud = file('fraud.yaml', 'models:\n  fraud:\n    label_maturity: 140d\n    rollback: { max_time: 14d }\n');
    expect(() => config({ DRIFTLINE_PROMOTION_POLICY: fraud })).toThrow(
      /\.models\.fraud\.label_maturity: 140d \+ rollback max_time 14d must be at most 150d/,
    );
    const fits = file('fits.yaml', 'models:\n  fraud:\n    label_maturity: 120d\n');
    expect(config({ DRIFTLINE_PROMOTION_POLICY: fits }).policies.models.fraud?.labelMaturityMs).toBe(120 * 86_400_000);
  });
});
