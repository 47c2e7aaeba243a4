import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { featureApi, featureApiEnvShape } from '../src/service.js';

const viewsFile = join(mkdtempSync(join(tmpdir(), 'feature-api-config-')), 'views.json');
writeFileSync(viewsFile, JSON.stringify({ views: [{ name: 'v', entity: 'id', features: { x: 'double' } }] }));
const base = { DRIFTLINE_FEATURE_VIEWS: viewsFile, DRIFTLINE_REDIS_URL: 'redis://:hunter2@redis:6379' };
const configure = (env: Record<string, string>) =>
  featureApi.configure(parseEnv(featureApiEnvShape, { ...base, ...env }) as never);

describe('feature-api configuration (issue 11, defect 5)', () => {
  it('has documented defaults for every bound and no token', () => {
    const config = configure({});
    expect(config.limits).toEqual({ maxBatchEntities: 1_000, maxBodyBytes: 1_048_576, maxFeatures: 256 });
    expect(config.timeouts).toEqual({
      headersTimeoutMs: 10_000,
      requestTimeoutMs: 30_000,
      keepAliveTimeoutMs: 65_000,
      writeTimeoutMs: 30_000,
    });
    expect(config.token).toBeUndefined();
    expect(config.maxConnections).toBe(512);
  });

  it('takes a connection cap, validated (it had none: a flood of idle connections used up the fds)', () => {
    expect(configure({ DRIFTLINE_FEATURE_API_MAX_CONNECTIONS: '64' }).maxConnections).toBe(64);
    expect(() => configure({ DRIFTLINE_FEATURE_API_MAX_CONNECTIONS: '0' })).toThrow(
      /DRIFTLINE_FEATURE_API_MAX_CONNECTIONS/,
    );
    expect(() => configure({ DRIFTLINE_FEATURE_API_MAX_CONNECTIONS: 'many' })).toThrow(
      /DRIFTLINE_FEATURE_API_MAX_CONNECTIONS/,
    );
  });

  it('parses every bound and the token', () => {
    const config = configure({
      DRIFTLINE_FEATURE_API_MAX_BATCH: '50',
      DRIFTLINE_FEATURE_API_MAX_BODY_BYTES: '65536',
      DRIFTLINE_FEATURE_API_MAX_FEATURES: '8',
      DRIFTLINE_FEATURE_API_HEADERS_TIMEOUT: '2s',
      DRIFTLINE_FEATURE_API_REQUEST_TIMEOUT: '5s',
      DRIFTLINE_FEATURE_API_KEEP_ALIVE_TIMEOUT: '1s',
      DRIFTLINE_FEATURE_API_WRITE_TIMEOUT: '3s',
      DRIFTLINE_FEATURE_API_TOKEN: 'x'.repeat(32),
    });
    expect(config.limits).toEqual({ maxBatchEntities: 50, maxBodyBytes: 65_536, maxFeatures: 8 });
    expect(config.timeouts).toEqual({
      headersTimeoutMs: 2_000,
      requestTimeoutMs: 5_000,
      keepAliveTimeoutMs: 1_000,
      writeTimeoutMs: 3_000,
    });
    expect(config.token).toBe('x'.repeat(32));
  });

  it('names the field of a bad bound, and never echoes the token', () => {
    expect(() => configure({ DRIFTLINE_FEATURE_API_HEADERS_TIMEOUT: '40s' })).toThrow(
      new ConfigError(
        'DRIFTLINE_FEATURE_API_HEADERS_TIMEOUT',
        'must not exceed DRIFTLINE_FEATURE_API_REQUEST_TIMEOUT (30000 ms)',
      ),
    );
    expect(() => configure({ DRIFTLINE_FEATURE_API_MAX_FEATURES: '0' })).toThrow(/DRIFTLINE_FEATURE_API_MAX_FEATURES/);
    // No more than the store reads in one batch (10,000): beyond it the store's own limit answered.
    expect(configure({ DRIFTLINE_FEATURE_API_MAX_BATCH: '10000' }).limits.maxBatchEntities).toBe(10_000);
    expect(() => configure({ DRIFTLINE_FEATURE_API_MAX_BATCH: '10001' })).toThrow(/DRIFTLINE_FEATURE_API_MAX_BATCH/);
    try {
      configure({ DRIFTLINE_FEATURE_API_TOKEN: 'short-secret' });
      expect.unreachable();
    } catch (error) {
      expect((error as ConfigError).field).toBe('DRIFTLINE_FEATURE_API_TOKEN');
      expect((error as Error).message).not.toContain('short-secret');
    }
  });
});

describe('feature-api names and token (padding, commit 25e952a)', () => {
  it('refuses a token or host with white space at an end, naming the variable: Node strips it from the header', () => {
    const token = 'x'.repeat(20);
    expect(configure({ DRIFTLINE_FEATURE_API_TOKEN: token }).token).toBe(token);
    for (const padded of [`${token} `, ` ${token}`, ' '.repeat(20)]) {
      expect(() => configure({ DRIFTLINE_FEATURE_API_TOKEN: padded })).toThrow(/^DRIFTLINE_FEATURE_API_TOKEN: /);
    }
    // Its own length rule still holds.
    expect(() => configure({ DRIFTLINE_FEATURE_API_TOKEN: 'short' })).toThrow(/DRIFTLINE_FEATURE_API_TOKEN: .*16/);
    expect(() => configure({ DRIFTLINE_FEATURE_API_HOST: '127.0.0.1 ' })).toThrow(/^DRIFTLINE_FEATURE_API_HOST: /);
  });
});
