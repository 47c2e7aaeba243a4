import { ConfigError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { selectServices, startRunner } from '../src/index.js';

describe('runner configuration', () => {
  it('fails fast, before connecting, naming a wrong variable', async () => {
    await expect(
      startRunner({
        services: [],
        env: { DRIFTLINE_KAFKA_BROKERS: '127.0.0.1:1', DRIFTLINE_SCHEMA_REGISTRY_URL: 'not a url' },
      }),
    ).rejects.toThrow(/^DRIFTLINE_SCHEMA_REGISTRY_URL: must be a URL/);
  });

  it('rejects a misspelt variable instead of using a default', async () => {
    await expect(
      startRunner({ services: [], env: { DRIFTLINE_KAFKA_BROKERS: 'a:1', DRIFTLINE_TOPIC_PREFX: 'x' } }),
    ).rejects.toThrow(/^DRIFTLINE_TOPIC_PREFX: unknown variable/);
  });

  it("lets the trainer bootstrap's documented overrides through (one env file serves both)", async () => {
    // The next check to fail is the registry URL: neither name is refused as unknown.
    await expect(
      startRunner({
        services: [],
        env: {
          DRIFTLINE_KAFKA_BROKERS: '127.0.0.1:1',
          DRIFTLINE_TRAINER_FLAVOUR: 'cpu',
          DRIFTLINE_TRAINER_VENV: '/opt/venv',
          DRIFTLINE_SCHEMA_REGISTRY_URL: 'not a url',
        },
      }),
    ).rejects.toThrow(/^DRIFTLINE_SCHEMA_REGISTRY_URL: must be a URL/);
  });

  it('a DRIFTLINE_HTTP_HOST that does not resolve is a ConfigError naming it (it was an internal error)', async () => {
    const failure = await startRunner({
      services: [],
      env: { DRIFTLINE_KAFKA_BROKERS: '127.0.0.1:1', DRIFTLINE_HTTP_HOST: 'nosuch.invalid', DRIFTLINE_HTTP_PORT: '0' },
    }).catch((error: unknown) => error);
    expect(failure).toBeInstanceOf(ConfigError);
    expect(failure).toMatchObject({ field: 'DRIFTLINE_HTTP_HOST' });
  });

  it('selects services by name and refuses unknown ones', () => {
    const all = [{ name: 'a' }, { name: 'b' }];
    expect(selectServices(all, undefined)).toEqual(all);
    expect(selectServices(all, 'all')).toEqual(all);
    expect(selectServices(all, 'b')).toEqual([{ name: 'b' }]);
    expect(() => selectServices(all, 'b,c')).toThrow(ConfigError);
    expect(() => selectServices(all, 'c')).toThrow(/^DRIFTLINE_SERVICES: unknown service c/);
    // A list of no names ran nothing for ever (found by a review).
    for (const names of [',', ' , ,'])
      expect(() => selectServices(all, names)).toThrow(/^DRIFTLINE_SERVICES: names no service \(known: a, b\)/);
  });
});
