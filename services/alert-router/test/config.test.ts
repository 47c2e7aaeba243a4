import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { alertRouterEnvShape, toAlertRouterConfig } from '../src/config.js';

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

  it('names the field of a bad routes file', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'receivers: { a: { url: "http://127.0.0.1:1/x" } }\nroutes: [{ receivers: [b] }]\n');
    expect(() => config({ DRIFTLINE_ALERT_ROUTES_FILE: file })).toThrow(
      `${file}.routes.0.receivers.0: unknown receiver "b"`,
    );
  });
});
