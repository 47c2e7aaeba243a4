import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { alertRouterEnvShape, checkAgainstStallTimeout, toAlertRouterConfig } from '../src/config.js';

const dir = mkdtempSync(join(tmpdir(), 'router-config-'));
const config = (env: Record<string, string>) => toAlertRouterConfig(parseEnv(alertRouterEnvShape, env));

describe('alert-router configuration', () => {
  it('has documented defaults; without a routes file the router is idle', () => {
    const c = config({});
    expect(c.routes).toBeUndefined();
    expect(c.group).toBe('driftline-alert-router');
    expect(c.start).toBe('latest'); // a new receiver group does not re-send the topic's history
    expect(config({ DRIFTLINE_ALERT_ROUTER_START: 'earliest' }).start).toBe('earliest');
    expect(c.timeoutMs).toBe(10_000);
    expect(c.retry).toEqual({ maxAttempts: 8, initialMs: 1_000, maxDelayMs: 30_000, budgetMs: 120_000, jitter: 0.5 });
  });

  it('reads the routes file', () => {
    const file = join(dir, 'routes.yaml');
    writeFileSync(file, 'receivers: { a: { url: "http://127.0.0.1:1/x" } }\ndefault: [a]\n');
    expect([...(config({ DRIFTLINE_ALERT_ROUTES_FILE: file }).routes?.receivers.keys() ?? [])]).toEqual(['a']);
  });

  it.each([
    [{ DRIFTLINE_ALERT_ROUTES_FILE: join(dir, 'missing.yaml') }, 'DRIFTLINE_ALERT_ROUTES_FILE: cannot read'],
    [{ DRIFTLINE_ALERT_ROUTER_TIMEOUT: '5m' }, 'DRIFTLINE_ALERT_ROUTER_TIMEOUT'],
    [{ DRIFTLINE_ALERT_ROUTER_TIMEOUT: '10ms' }, 'DRIFTLINE_ALERT_ROUTER_TIMEOUT'],
    [{ DRIFTLINE_ALERT_ROUTER_MAX_ATTEMPTS: '0' }, 'DRIFTLINE_ALERT_ROUTER_MAX_ATTEMPTS'],
    [{ DRIFTLINE_ALERT_ROUTER_RETRY_BUDGET: 'soon' }, 'DRIFTLINE_ALERT_ROUTER_RETRY_BUDGET'],
    [{ DRIFTLINE_ALERT_ROUTER_START: 'beginning' }, 'DRIFTLINE_ALERT_ROUTER_START: must be latest or earliest'],
  ])('refuses a bad value naming the variable (%#)', (env, message) => {
    expect(() => config(env)).toThrow(message);
  });

  it('refuses a first retry delay above the delay cap, naming the variable (found by a review)', () => {
    // Accepted before: 10 minutes slept whole between delivery checks, the partition marked stalled.
    const env = { DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL: '10m', DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY: '30s' };
    expect(() => config(env)).toThrow(
      new ConfigError(
        'DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL',
        '600000 ms is more than DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY (30000 ms), which caps every delay',
      ),
    );
    expect(config({ ...env, DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL: '30s' }).retry.initialMs).toBe(30_000);
  });

  it('refuses, at start-up, a delay and a request that together outlast DRIFTLINE_STALL_TIMEOUT (found by a review)', () => {
    // The defaults (30 s + 10 s) fit the default stall timeout, 5 minutes.
    expect(() => checkAgainstStallTimeout(config({}), 300_000)).not.toThrow();
    const slow = config({ DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY: '5m', DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL: '1m' });
    expect(() => checkAgainstStallTimeout(slow, 300_000)).toThrow(
      /^DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY: 300000 ms plus DRIFTLINE_ALERT_ROUTER_TIMEOUT \(10000 ms\) must be less than DRIFTLINE_STALL_TIMEOUT \(300000 ms\)/,
    );
    expect(() => checkAgainstStallTimeout(config({}), 40_000)).toThrow(ConfigError);
    expect(() => checkAgainstStallTimeout(config({}), 40_001)).not.toThrow();
  });

  it('names the field of a bad routes file', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'receivers: { a: { url: "http://127.0.0.1:1/x" } }\nroutes: [{ receivers: [b] }]\n');
    expect(() => config({ DRIFTLINE_ALERT_ROUTES_FILE: file })).toThrow(
      `${file}.routes.0.receivers.0: unknown receiver "b"`,
    );
  });
});

describe('alert-router names (padding, commit 25e952a)', () => {
  it('refuses a padded or blank group or routes file, naming the variable', () => {
    expect(config({ DRIFTLINE_ALERT_ROUTER_GROUP: 'routers' }).group).toBe('routers');
    for (const name of ['DRIFTLINE_ALERT_ROUTER_GROUP', 'DRIFTLINE_ALERT_ROUTES_FILE']) {
      for (const bad of [' x', 'x ', '\tx', '   '])
        expect(() => config({ [name]: bad })).toThrow(new RegExp(`^${name}: must not`));
    }
  });
});
