import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { modelServer, modelServerEnvShape } from '../src/service.js';
import { VIEWS_YAML } from './fixtures.js';

const viewsFile = join(mkdtempSync(join(tmpdir(), 'model-server-config-')), 'views.yaml');
writeFileSync(viewsFile, VIEWS_YAML);
const configure = (env: Record<string, string>) =>
  modelServer.configure(
    parseEnv(modelServerEnvShape, {
      DRIFTLINE_FEATURE_VIEWS: viewsFile,
      DRIFTLINE_REDIS_URL: 'redis://127.0.0.1:6379',
      ...env,
    }) as never,
  );

describe('model-server configuration of the prediction log', () => {
  it('has documented defaults: 50,000 records held, a 1 s wait for room, a 50 ms flush', () => {
    expect(configure({}).logBounds).toMatchObject({ maxBuffered: 50_000, maxWaitMs: 1_000, flushIntervalMs: 50 });
  });

  it('parses the wait for room (0 refuses at once)', () => {
    expect(configure({ DRIFTLINE_MODEL_SERVER_LOG_WAIT: '250ms' }).logBounds.maxWaitMs).toBe(250);
    expect(configure({ DRIFTLINE_MODEL_SERVER_LOG_WAIT: '0ms' }).logBounds.maxWaitMs).toBe(0);
  });

  it('refuses a wait as long as the request timeout, naming the field', () => {
    expect(() =>
      configure({ DRIFTLINE_MODEL_SERVER_LOG_WAIT: '20s', DRIFTLINE_MODEL_SERVER_REQUEST_TIMEOUT: '20s' }),
    ).toThrow(ConfigError);
    expect(() =>
      configure({ DRIFTLINE_MODEL_SERVER_LOG_WAIT: '20s', DRIFTLINE_MODEL_SERVER_REQUEST_TIMEOUT: '20s' }),
    ).toThrow(/DRIFTLINE_MODEL_SERVER_LOG_WAIT.*shorter than DRIFTLINE_MODEL_SERVER_REQUEST_TIMEOUT/);
  });
});

describe('model-server configuration of the online store', () => {
  it('reads key layout v1 as a fallback unless DRIFTLINE_FEATURE_READ_V1 turns it off', () => {
    expect(configure({}).readV1).toBe(true);
    expect(configure({ DRIFTLINE_FEATURE_READ_V1: 'false' }).readV1).toBe(false);
    expect(() => configure({ DRIFTLINE_FEATURE_READ_V1: 'maybe' })).toThrow(/DRIFTLINE_FEATURE_READ_V1/);
  });
});

describe('model-server names and token (padding, commit 25e952a)', () => {
  it('refuses a token, host or artifact directory with white space at an end, naming the variable', () => {
    const token = 'y'.repeat(20);
    expect(configure({ DRIFTLINE_MODEL_SERVER_TOKEN: token }).token).toBe(token);
    for (const [name, value] of [
      ['DRIFTLINE_MODEL_SERVER_TOKEN', `${token} `],
      ['DRIFTLINE_MODEL_SERVER_TOKEN', ' '.repeat(20)],
      ['DRIFTLINE_MODEL_SERVER_HOST', ' 0.0.0.0'],
      ['DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR', 'models '],
    ] as const) {
      expect(() => configure({ [name]: value })).toThrow(new RegExp(`^${name}: `));
    }
    expect(() => configure({ DRIFTLINE_MODEL_SERVER_TOKEN: 'short' })).toThrow(/DRIFTLINE_MODEL_SERVER_TOKEN: .*16/);
  });
});

describe('model-server configuration of model loads', () => {
  it('takes the load deadline from DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT (default 120 s), at least 10 s, naming the field', () => {
    expect(configure({}).loadTimeoutMs).toBe(120_000);
    expect(configure({ DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT: '10m' }).loadTimeoutMs).toBe(600_000);
    expect(() => configure({ DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT: '5s' })).toThrow(
      /^DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT: must be at least 10000 ms/,
    );
    expect(() => configure({ DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT: 'soon' })).toThrow(
      /^DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT: must be a duration/,
    );
  });
});
