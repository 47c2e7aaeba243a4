import { MAX_TIMER_MS, parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { registryEnvShape, toRegistryConfig } from '../src/config.js';
import { DEFAULT_REGISTRY_TIMEOUT_MS } from '../src/registry.js';

describe('registry config (issue 11, defect 9)', () => {
  it('moves credentials out of the URL into basic auth: fetch refuses them and errors would print them', () => {
    const config = toRegistryConfig({
      DRIFTLINE_SCHEMA_REGISTRY_URL: 'https://svc%40acme:p%40ss@registry.internal/apis/ccompat/v7',
      DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: 1_000,
    });
    expect(config).toEqual({
      url: 'https://registry.internal/apis/ccompat/v7',
      username: 'svc@acme',
      password: 'p@ss',
      timeoutMs: 1_000,
    });
  });

  it('keeps explicit credentials over the URL and a plain URL as it is', () => {
    expect(
      toRegistryConfig({
        DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://a:b@r:8080/',
        DRIFTLINE_SCHEMA_REGISTRY_USERNAME: 'u',
        DRIFTLINE_SCHEMA_REGISTRY_PASSWORD: 'p',
        DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: 5,
      }),
    ).toEqual({ url: 'http://r:8080/', username: 'u', password: 'p', timeoutMs: 5 });
    expect(
      toRegistryConfig({ DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://r:8080/x', DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: 5 }),
    ).toEqual({ url: 'http://r:8080/x', timeoutMs: 5 });
  });

  it('credentials that are not valid percent-encoding are a config error naming the variable (found by a review)', () => {
    expect(() =>
      toRegistryConfig({
        DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://us%ZZ:pw@r:8080/',
        DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: 5,
      }),
    ).toThrow(
      expect.objectContaining({
        code: 'CONFIG_INVALID',
        message: 'DRIFTLINE_SCHEMA_REGISTRY_URL: its credentials are not valid percent-encoding',
      }),
    );
  });
});

describe('registry variables (found by a review)', () => {
  const parse = (env: Record<string, string>) =>
    parseEnv(registryEnvShape, { DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://r:8081/apis/ccompat/v7', ...env });

  it('refuses a URL without http(s): it passed and then every call failed, an endless outage', () => {
    for (const url of ['localhost:8081/apis/ccompat/v7', 'ftp://r:8081/x', 'r:8081'])
      expect(() => parse({ DRIFTLINE_SCHEMA_REGISTRY_URL: url })).toThrow(
        /^DRIFTLINE_SCHEMA_REGISTRY_URL: must be an http:\/\/ or https:\/\/ URL/,
      );
    expect(parse({}).DRIFTLINE_SCHEMA_REGISTRY_URL).toBe('http://r:8081/apis/ccompat/v7');
  });

  it('bounds the timeout by 100 ms and MAX_TIMER_MS: 25d fired after 1 ms', () => {
    expect(() => parse({ DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: '25d' })).toThrow(
      `DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: must be at most ${MAX_TIMER_MS} ms`,
    );
    expect(() => parse({ DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: '1' })).toThrow(/must be at least 100 ms/);
    expect(parse({ DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT: '24d' }).DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT).toBe(24 * 86_400_000);
    expect(parse({}).DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT).toBe(DEFAULT_REGISTRY_TIMEOUT_MS);
  });

  it('refuses a user name with white space at an end', () => {
    expect(() => parse({ DRIFTLINE_SCHEMA_REGISTRY_USERNAME: 'svc ' })).toThrow(
      /^DRIFTLINE_SCHEMA_REGISTRY_USERNAME: must not start or end with white space/,
    );
  });
});
