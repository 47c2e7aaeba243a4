import { describe, expect, it } from 'vitest';
import { toRegistryConfig } from '../src/config.js';

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
