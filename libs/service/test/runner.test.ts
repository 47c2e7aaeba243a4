import { ConfigError, envField, type Logger, silentLogger } from '@driftline/core';
import { counter } from '@driftline/observability';
import { describe, expect, it } from 'vitest';
import {
  defineService,
  knownEnvNames,
  parseRunnerEnv,
  rejectSharedPorts,
  type ServiceDefinition,
  selectServices,
  startRunner,
} from '../src/index.js';

describe('runner configuration', () => {
  it('fails fast, before connecting, naming a wrong variable', async () => {
    await expect(
      startRunner({
        services: [],
        env: { DRIFTLINE_KAFKA_BROKERS: '127.0.0.1:1', DRIFTLINE_SCHEMA_REGISTRY_URL: 'not a url' },
      }),
    ).rejects.toThrow(/^DRIFTLINE_SCHEMA_REGISTRY_URL: must be an http:\/\/ or https:\/\/ URL/);
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
    ).rejects.toThrow(/^DRIFTLINE_SCHEMA_REGISTRY_URL: must be an http:\/\/ or https:\/\/ URL/);
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
    // As every list variable: accepted before, `a,,b` ran both and `a,a` ran a once (found by a review).
    expect(() => selectServices(all, 'a,,b')).toThrow(/^DRIFTLINE_SERVICES: has an empty item/);
    expect(() => selectServices(all, 'a,')).toThrow(/^DRIFTLINE_SERVICES: has an empty item/);
    expect(() => selectServices(all, 'a, a')).toThrow(/^DRIFTLINE_SERVICES: lists "a" twice$/);
    expect(selectServices(all, ' b , a ')).toEqual(all);
    // From the command line, the argument is named, not a variable nobody set.
    expect(() => selectServices(all, 'c', 'the service list')).toThrow(/^the service list: unknown service c/);
  });
});

describe('unknown variables and shared ports (found by a review)', () => {
  const parse = (env: Record<string, string>, services: Parameters<typeof parseRunnerEnv>[0]['services'] = []) =>
    parseRunnerEnv({ services, env: { DRIFTLINE_KAFKA_BROKERS: '127.0.0.1:1', ...env } });

  it('a misspelt variable names the closest known one, in one short line', () => {
    expect(() => parse({ DRIFTLINE_CLICKHOUSE_ULR: 'http://h:8123' })).toThrow(
      /^DRIFTLINE_CLICKHOUSE_ULR: unknown variable \(did you mean DRIFTLINE_CLICKHOUSE_URL\?\)$/,
    );
    expect(knownEnvNames([{ DRIFTLINE_X_PORT: 1 }]).has('DRIFTLINE_X_PORT')).toBe(true);
  });

  it('two listeners of the process on one port: refused at parse, naming both variables', () => {
    const api = defineService({
      name: 'api',
      description: 'a listener',
      needs: [],
      envShape: { DRIFTLINE_API_PORT: envField.int(0, 65_535).default(8080) },
      configure: (env) => env,
      start: async () => ({ ready: () => true, stop: async () => {} }),
    }) as unknown as ServiceDefinition<never, unknown>;
    expect(() => parse({ DRIFTLINE_API_PORT: '9464' }, [api])).toThrow(
      /^DRIFTLINE_API_PORT: is 9464, as is DRIFTLINE_HTTP_PORT: two listeners of this process cannot share a port/,
    );
    expect(() => parse({ DRIFTLINE_API_PORT: '7000', DRIFTLINE_HTTP_PORT: '7000' }, [api])).toThrow(ConfigError);
    // 0 picks a free port for each: no collision.
    expect(() => parse({ DRIFTLINE_API_PORT: '0', DRIFTLINE_HTTP_PORT: '0' }, [api])).not.toThrow();
    expect(() => parse({}, [api])).not.toThrow();
  });

  it('one port on hosts that cannot collide is legal (127.0.0.1 and 127.0.0.2); on ones that can, refused', () => {
    const base = { DRIFTLINE_HTTP_PORT: 7000, DRIFTLINE_HTTP_HOST: '127.0.0.1' };
    const api = (host: string) => ({ DRIFTLINE_FEATURE_API_PORT: 7000, DRIFTLINE_FEATURE_API_HOST: host });
    expect(() => rejectSharedPorts([base, api('127.0.0.2')])).not.toThrow();
    expect(() => rejectSharedPorts([{ ...base, DRIFTLINE_HTTP_HOST: '::1' }, api('127.0.0.1')])).not.toThrow();
    // Equal (as written or as one IPv6 address), or either binding every address.
    for (const [httpHost, apiHost] of [
      ['127.0.0.1', '127.0.0.1'],
      ['::1', '0:0:0:0:0:0:0:1'],
      ['Host.Local', 'host.local'],
      ['0.0.0.0', '127.0.0.2'],
      ['127.0.0.2', '::'],
      ['', '127.0.0.2'],
      ['127.0.0.1', '::0'],
      // One address in other spellings (found by a review: each passed, then failed at bind).
      ['127.0.0.1', '::ffff:127.0.0.1'],
      ['127.0.0.1', '127.1'],
      ['127.0.0.1', '0'],
    ] as const)
      expect(() => rejectSharedPorts([{ ...base, DRIFTLINE_HTTP_HOST: httpHost }, api(apiHost)])).toThrow(
        /^DRIFTLINE_FEATURE_API_PORT: is 7000, as is DRIFTLINE_HTTP_PORT: two listeners of this process cannot share a port/,
      );
    // A zone id (a link-local address of one interface) is compared as written, never an internal error.
    expect(() =>
      rejectSharedPorts([{ ...base, DRIFTLINE_HTTP_HOST: 'fe80::1%eth0' }, api('fe80::1%eth1')]),
    ).not.toThrow();
    expect(() => rejectSharedPorts([{ ...base, DRIFTLINE_HTTP_HOST: 'fe80::1%eth0' }, api('FE80::1%eth0')])).toThrow(
      /^DRIFTLINE_FEATURE_API_PORT: /,
    );
    // A listener without a host variable binds every address.
    expect(() => rejectSharedPorts([base, { DRIFTLINE_X_PORT: 7000 }])).toThrow(/^DRIFTLINE_X_PORT: /);
  });

  it('the IPv4 wildcard leaves IPv6 addresses free: 0.0.0.0 (or 0) and ::1 share a port, as Linux binds both', () => {
    // Refused as a shared port (found by a review: both bind). `::` takes IPv4 too (dual-stack).
    const http = (host: string) => ({ DRIFTLINE_HTTP_PORT: 7000, DRIFTLINE_HTTP_HOST: host });
    const api = (host: string) => ({ DRIFTLINE_FEATURE_API_PORT: 7000, DRIFTLINE_FEATURE_API_HOST: host });
    for (const [httpHost, apiHost] of [
      ['0.0.0.0', '::1'],
      ['::1', '0.0.0.0'],
      ['0', '::1'],
      ['0.0.0.0', 'fe80::1%eth0'],
      ['0.0.0.0', '2001:db8::1'],
    ] as const)
      expect(() => rejectSharedPorts([http(httpHost), api(apiHost)])).not.toThrow();
    for (const [httpHost, apiHost] of [
      ['0.0.0.0', '::'],
      ['0', '0.0.0.0'],
      ['0.0.0.0', '::ffff:127.0.0.1'],
      ['0.0.0.0', 'localhost'], // a name may resolve to an IPv4 address
      ['', '::1'],
    ] as const)
      expect(() => rejectSharedPorts([http(httpHost), api(apiHost)])).toThrow(
        /^DRIFTLINE_FEATURE_API_PORT: is 7000, as is DRIFTLINE_HTTP_PORT: /,
      );
    expect(() => rejectSharedPorts([{ DRIFTLINE_HTTP_PORT: 7000 }, api('::1')])).toThrow(
      /^DRIFTLINE_FEATURE_API_PORT: /,
    );
  });

  it('a host variable with a port, a scheme or a path is refused as such, naming it (not as a shared port)', () => {
    // `127.0.0.1:7000` was "two listeners share a port" (the comparison dropped :7000), or failed at bind.
    const api = { DRIFTLINE_FEATURE_API_PORT: 7000, DRIFTLINE_FEATURE_API_HOST: '127.0.0.1' };
    for (const [host, what] of [
      ['127.0.0.1:7000', /without a port/],
      ['[::1]:7000', /without brackets/],
      ['[::1]', /without brackets/],
      ['localhost:80', /without a port/],
      ['http://127.0.0.1', /not a URL/],
      ['127.0.0.1/metrics', /without a path/],
    ] as const) {
      const error = (() => {
        try {
          rejectSharedPorts([{ DRIFTLINE_HTTP_PORT: 7000, DRIFTLINE_HTTP_HOST: host }, api]);
        } catch (e) {
          return e;
        }
        return undefined;
      })();
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).field).toBe('DRIFTLINE_HTTP_HOST');
      expect((error as ConfigError).message).toMatch(what);
    }
    // On its own port (or 0) too: Node looked the whole text up as a name at bind.
    expect(() => rejectSharedPorts([{ DRIFTLINE_HTTP_PORT: 0, DRIFTLINE_HTTP_HOST: '127.0.0.1:9464' }])).toThrow(
      /^DRIFTLINE_HTTP_HOST: must be a host name or an IP address, without a port/,
    );
    for (const host of ['::1', 'fe80::1%eth0', '127.0.0.1', 'host.local', '0.0.0.0', '::'])
      expect(() => rejectSharedPorts([{ DRIFTLINE_HTTP_PORT: 7000, DRIFTLINE_HTTP_HOST: host }])).not.toThrow();
  });

  it('through the runner: the documented hosts on one port start (found by a review)', () => {
    const feature = defineService({
      name: 'api',
      description: 'a listener with a host',
      needs: [],
      envShape: {
        DRIFTLINE_FEATURE_API_PORT: envField.int(0, 65_535).default(8080),
        DRIFTLINE_FEATURE_API_HOST: envField.name().default('127.0.0.1'),
      },
      configure: (env) => env,
      start: async () => ({ ready: () => true, stop: async () => {} }),
    }) as unknown as ServiceDefinition<never, unknown>;
    const env = { DRIFTLINE_HTTP_PORT: '7000', DRIFTLINE_FEATURE_API_PORT: '7000' };
    expect(() =>
      parse({ ...env, DRIFTLINE_HTTP_HOST: '127.0.0.1', DRIFTLINE_FEATURE_API_HOST: '127.0.0.2' }, [feature]),
    ).not.toThrow();
    expect(() => parse(env, [feature])).toThrow(/^DRIFTLINE_FEATURE_API_PORT: is 7000, as is DRIFTLINE_HTTP_PORT/);
  });

  it('rejectSharedPorts ignores what is not a port variable', () => {
    expect(() => rejectSharedPorts([{ DRIFTLINE_A_PORT: 1, DRIFTLINE_B_COUNT: 1 }])).not.toThrow();
  });
});

describe('the runner’s metrics registry', () => {
  it('warns of a metric’s series cap through the runner’s logger, as every other line', async () => {
    const warnings: string[] = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (_obj, msg) => void warnings.push(msg ?? ''),
      child: () => logger,
    };
    const runner = await startRunner({ services: [], env: { DRIFTLINE_HTTP_PORT: '0' }, logger });
    try {
      const capped = counter(runner.context.registry, 'runner_test_capped_total', 'test', ['model'], {
        bounded: ['model'],
        maxSeries: 1,
      });
      capped.inc({ model: 'a' });
      capped.inc({ model: 'b' }); // past the cap
      expect(warnings.filter((m) => m.includes('series cap'))).toHaveLength(1);
    } finally {
      await runner.stop();
    }
  });
});
