import { ConfigError, parseEnv } from '@driftline/core';
import { PREDICTION_FEATURE } from '@driftline/drift';
import { describe, expect, it } from 'vitest';
import { driftEnvShape, toDriftConfig } from '../src/config.js';
import { parseCsv, profilesFromCsv } from '../src/reference-build.js';

describe('reference profiles from CSV', () => {
  it('parses quoted cells, doubled quotes and CRLF', () => {
    expect(parseCsv('a,b\r\n"x, y","say ""hi"""\n1,\n')).toEqual([
      ['a', 'b'],
      ['x, y', 'say "hi"'],
      ['1', ''],
    ]);
  });

  it('types columns (numeric when every present cell is a number), renames the prediction, excludes ids', () => {
    const csv = ['id,x,color,prediction', '1,0.5,red,0.1', '2,,blue,0.9', '3,2.5,red,0.4'].join('\n');
    const profiles = profilesFromCsv(csv, { exclude: ['id'] });
    expect([...profiles.keys()].sort()).toEqual([PREDICTION_FEATURE, 'color', 'x']);
    expect(profiles.get('x')!.kind).toBe('numeric');
    expect(profiles.get('x')!.missing).toBe(1);
    expect(profiles.get('color')!.kind).toBe('categorical');
  });

  it('config errors name the variable', () => {
    expect(() => toDriftConfig(parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_WINDOW: '5 minutes' }))).toThrow(ConfigError);
    expect(() => toDriftConfig(parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_WINDOW: '5 minutes' }))).toThrow(
      /DRIFTLINE_DRIFT_WINDOW/,
    );
    expect(() => parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_METHOD: 'wasserstein' })).toThrow(/DRIFTLINE_DRIFT_METHOD/);
    expect(toDriftConfig(parseEnv(driftEnvShape, {})).windowMs).toBe(300_000);
  });
});
