import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { driftEnvShape, toDriftConfig } from '../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'drift-quality-config-'));
const file = (name: string, text: string) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const config = (views?: string) =>
  toDriftConfig(parseEnv(driftEnvShape, views === undefined ? {} : { DRIFTLINE_FEATURE_VIEWS: views }));

describe('drift-monitor data-quality config', () => {
  it('takes the expectations of the feature view file, none without one', () => {
    expect(config().expectations.features).toEqual([]);
    const path = file(
      'ok.yaml',
      'views:\n  - { name: v, entity: e, features: { x: { type: double, expect: { max_null_rate: 0.1 } } } }\n',
    );
    expect(config(path).expectations.features).toEqual([
      { feature: 'x', type: 'double', maxTypeMismatch: 0, maxNullRate: 0.1 },
    ]);
  });

  it('fails at start-up naming the field and the file', () => {
    const path = file(
      'bad.yaml',
      'views:\n  - { name: v, entity: e, features: { x: { type: double, expect: { max_null_rate: -1 } } } }\n',
    );
    expect(() => config(path)).toThrow(
      `views[0].features.x.expect.max_null_rate: must be a share from 0 to 1 (in ${path}, from DRIFTLINE_FEATURE_VIEWS)`,
    );
  });
});
