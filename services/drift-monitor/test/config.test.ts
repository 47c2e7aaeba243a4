import { ConfigError, parseEnv } from '@driftline/core';
import { PARTITION_STATE_BUDGET_BYTES } from '@driftline/drift';
import { describe, expect, it } from 'vitest';
import { driftEnvShape, toDriftConfig } from '../src/config.js';

describe('drift-monitor config', () => {
  it('config errors name the variable', () => {
    expect(() => toDriftConfig(parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_WINDOW: '5 minutes' }))).toThrow(ConfigError);
    expect(() => toDriftConfig(parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_WINDOW: '5 minutes' }))).toThrow(
      /DRIFTLINE_DRIFT_WINDOW/,
    );
    expect(() => parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_METHOD: 'wasserstein' })).toThrow(/DRIFTLINE_DRIFT_METHOD/);
    expect(toDriftConfig(parseEnv(driftEnvShape, {})).windowMs).toBe(300_000);
    expect(() => parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_WINDOW: '0s' })).toThrow(
      /DRIFTLINE_DRIFT_WINDOW: must be at least/,
    );
    // A window shorter than a second would open a window (and send partials) per few events.
    expect(() => parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_WINDOW: '5' })).toThrow(/DRIFTLINE_DRIFT_WINDOW/);
    expect(() => parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_WINDOW: '999ms' })).toThrow(/DRIFTLINE_DRIFT_WINDOW/);
    expect(toDriftConfig(parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_WINDOW: '1s' })).windowMs).toBe(1_000);
    expect(toDriftConfig(parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_ALLOWED_LATENESS: '1.5m' })).latenessMs).toBe(
      90_000,
    );
    expect(toDriftConfig(parseEnv(driftEnvShape, {})).maxAheadMs).toBe(60_000);
    expect(toDriftConfig(parseEnv(driftEnvShape, { DRIFTLINE_DRIFT_MAX_AHEAD: '1h' })).maxAheadMs).toBe(3_600_000);
  });

  it('the byte budget of a partition: 256 MiB by default, bytes as an integer, a one-line error otherwise', () => {
    const budget = (value?: string) =>
      toDriftConfig(
        parseEnv(driftEnvShape, value === undefined ? {} : { DRIFTLINE_DRIFT_PARTITION_STATE_BYTES: value }),
      ).partitionStateBytes;
    expect(budget()).toBe(PARTITION_STATE_BUDGET_BYTES);
    expect(budget('536870912')).toBe(536_870_912);
    expect(() => budget('256MiB')).toThrow('DRIFTLINE_DRIFT_PARTITION_STATE_BYTES: must be an integer (got "256MiB")');
    expect(() => budget('1000')).toThrow(/^DRIFTLINE_DRIFT_PARTITION_STATE_BYTES: [^\n]*1048576[^\n]*$/);
  });
});
