import { ConfigError, parseEnv } from '@driftline/core';
import { MAX_BORROWED_VERSIONS_PER_MODEL, MAX_RECENT_IDS } from '@driftline/drift';
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

  it('versions per model and window on a borrowed reference: 16 by default, an integer from 1 to the pair cap; the byte budget is gone (it refused real traffic)', () => {
    const borrowed = (value?: string) =>
      toDriftConfig(
        parseEnv(driftEnvShape, value === undefined ? {} : { DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS: value }),
      ).maxBorrowedVersions;
    expect(borrowed()).toBe(MAX_BORROWED_VERSIONS_PER_MODEL);
    expect(MAX_BORROWED_VERSIONS_PER_MODEL).toBe(16);
    expect(borrowed('4')).toBe(4);
    expect(() => borrowed('many')).toThrow('DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS: must be an integer (got "many")');
    expect(() => borrowed('0')).toThrow(/^DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS: [^\n]*1[^\n]*$/);
    expect(() => borrowed('1001')).toThrow(/^DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS: [^\n]*1000[^\n]*$/);
    // Unknown now, so the service refuses it at start (a leftover setting is named, not ignored).
    expect(Object.keys(driftEnvShape)).not.toContain('DRIFTLINE_DRIFT_PARTITION_STATE_BYTES');
  });

  it('prediction ids remembered per source partition: 100,000 by default, 0 (off) to MAX_RECENT_IDS, errors in one line naming the variable', () => {
    const recentIds = (value?: string) =>
      toDriftConfig(parseEnv(driftEnvShape, value === undefined ? {} : { DRIFTLINE_DRIFT_RECENT_IDS: value }))
        .recentIds;
    expect(recentIds()).toBe(100_000);
    expect(recentIds('0')).toBe(0);
    expect(recentIds('2500')).toBe(2500);
    expect(() => recentIds('100,000')).toThrow(/^DRIFTLINE_DRIFT_RECENT_IDS: must be an integer[^\n]*$/);
    expect(() => recentIds('-1')).toThrow(/^DRIFTLINE_DRIFT_RECENT_IDS: [^\n]*0[^\n]*$/);
    expect(() => recentIds(String(MAX_RECENT_IDS + 1))).toThrow(/^DRIFTLINE_DRIFT_RECENT_IDS: [^\n]*10000000[^\n]*$/);
  });

  it('the built-in missing-share check: on by default, a boolean, a bad value named in one line', () => {
    const missingAlert = (value?: string) =>
      toDriftConfig(parseEnv(driftEnvShape, value === undefined ? {} : { DRIFTLINE_DRIFT_MISSING_ALERT: value }))
        .missingAlert;
    expect(missingAlert()).toBe(true);
    expect(missingAlert('false')).toBe(false);
    expect(missingAlert('0')).toBe(false);
    expect(missingAlert('true')).toBe(true);
    expect(() => missingAlert('off')).toThrow(/^DRIFTLINE_DRIFT_MISSING_ALERT: [^\n]*true or false[^\n]*$/);
  });

  it('its level: 1e-5 by default, a share strictly between 0 and 1, a bad value named in one line', () => {
    const alpha = (value?: string) =>
      toDriftConfig(parseEnv(driftEnvShape, value === undefined ? {} : { DRIFTLINE_DRIFT_MISSING_ALERT_ALPHA: value }))
        .missingAlertAlpha;
    expect(alpha()).toBe(1e-5);
    expect(alpha('1e-4')).toBe(1e-4);
    expect(alpha('0.001')).toBe(0.001);
    for (const bad of ['0', '1', '1.5', '-0.1', 'strict'])
      expect(() => alpha(bad), bad).toThrow(/^DRIFTLINE_DRIFT_MISSING_ALERT_ALPHA: [^\n]*$/);
  });

  it('thresholds are decimal numbers as every setting reads them: 1e-3 is one (it was refused as "must be a number")', () => {
    const config = (env: Record<string, string>) => toDriftConfig(parseEnv(driftEnvShape, env));
    const t = config({
      DRIFTLINE_DRIFT_KS_ALPHA: '1e-3',
      DRIFTLINE_DRIFT_CHI2_ALPHA: '5E-4',
      DRIFTLINE_DRIFT_PSI_THRESHOLD: '2.5e-1',
      DRIFTLINE_DRIFT_JS_THRESHOLD: '.1',
    }).thresholds;
    expect([t.ksAlpha, t.chi2Alpha, t.psi, t.jensenShannon]).toEqual([1e-3, 5e-4, 0.25, 0.1]);
    for (const [name, bad] of [
      ['DRIFTLINE_DRIFT_KS_ALPHA', '1.5'],
      ['DRIFTLINE_DRIFT_KS_ALPHA', '-1e-3'],
      ['DRIFTLINE_DRIFT_KS_ALPHA', 'low'],
      ['DRIFTLINE_DRIFT_PSI_THRESHOLD', '0'],
      ['DRIFTLINE_DRIFT_PSI_THRESHOLD', ''],
      ['DRIFTLINE_DRIFT_ALERT_SHARE', '2'],
    ] as const)
      expect(() => config({ [name]: bad }), `${name}=${bad}`).toThrow(new RegExp(`^${name}: [^\\n]*$`));
  });
});
