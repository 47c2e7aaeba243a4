import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadConfig, parsePort, StackConfigError, statePaths } from '../src/config.js';
import { kafkaCachePaths, kafkaClasspath } from '../src/kafka.js';
import { endpointsForPorts, endpointsFromEnv, envLines } from '../src/stack.js';
import { readState, removeState, type StackState, writeState } from '../src/state.js';

const dirs: string[] = [];
function tmpDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'driftline-stack-state-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

const sample: StackState = {
  version: 1,
  stackId: 'abc123',
  createdAt: '2025-01-01T00:00:00.000Z',
  readyAt: '2025-01-01T00:00:10.000Z',
  startupMs: 10_000,
  endpoints: endpointsForPorts({ kafka: 19092, registry: 18081, redis: 16379 }),
  processes: [
    {
      name: 'kafka',
      pid: 4242,
      startTime: '123456',
      markers: ['-Ddriftline.stack=abc123', 'kafka.Kafka'],
      port: 19092,
      command: ['java', '-cp', 'libs/*', 'kafka.Kafka', 'server.properties'],
      cwd: '/tmp',
      logFile: '/tmp/kafka.log',
      startedAt: '2025-01-01T00:00:01.000Z',
    },
  ],
};

describe('state file', () => {
  it('round-trips', () => {
    const file = path.join(tmpDir(), 'nested', 'state.json');
    writeState(file, sample);
    expect(readState(file)).toEqual(sample);
    expect(fs.readdirSync(path.dirname(file))).toEqual(['state.json']); // no temp file left behind
    removeState(file);
    expect(readState(file)).toBeUndefined();
  });

  it('rejects files that are not stack state', () => {
    const file = path.join(tmpDir(), 'state.json');
    fs.writeFileSync(file, '{ not json');
    expect(() => readState(file)).toThrow(/not valid JSON/);
    fs.writeFileSync(file, JSON.stringify({ version: 2 }));
    expect(() => readState(file)).toThrow(/not a stack state file/);
  });

  it('refuses to write an invalid state', () => {
    const file = path.join(tmpDir(), 'state.json');
    const bad = { ...sample, processes: [{ ...sample.processes[0], pid: -1 }] } as StackState;
    expect(() => writeState(file, bad)).toThrow();
    expect(fs.existsSync(file)).toBe(false);
  });
});

describe('endpoints', () => {
  it('builds the ccompat registry URL and loopback addresses', () => {
    expect(endpointsForPorts({ kafka: 1, registry: 2, redis: 3 })).toEqual({
      kafkaBrokers: ['127.0.0.1:1'],
      schemaRegistryUrl: 'http://127.0.0.1:2/apis/ccompat/v7',
      redisUrl: 'redis://127.0.0.1:3',
    });
  });

  it('uses an external stack only when all three variables are set', () => {
    const env = {
      DRIFTLINE_KAFKA_BROKERS: 'k1:9092, k2:9092',
      DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://sr:8081/apis/ccompat/v7/',
      DRIFTLINE_REDIS_URL: 'redis://r:6379',
    };
    expect(endpointsFromEnv(env)).toEqual({
      kafkaBrokers: ['k1:9092', 'k2:9092'],
      schemaRegistryUrl: 'http://sr:8081/apis/ccompat/v7',
      redisUrl: 'redis://r:6379',
    });
    expect(endpointsFromEnv({ ...env, DRIFTLINE_REDIS_URL: '' })).toBeUndefined();
    expect(endpointsFromEnv({ DRIFTLINE_KAFKA_BROKERS: 'k:1' })).toBeUndefined();
    expect(endpointsFromEnv({})).toBeUndefined();
  });

  it('prints shell export lines', () => {
    expect(envLines(endpointsForPorts({ kafka: 1, registry: 2, redis: 3 }))).toEqual([
      'export DRIFTLINE_KAFKA_BROKERS=127.0.0.1:1',
      'export DRIFTLINE_SCHEMA_REGISTRY_URL=http://127.0.0.1:2/apis/ccompat/v7',
      'export DRIFTLINE_REDIS_URL=redis://127.0.0.1:3',
    ]);
  });
});

describe('config', () => {
  it('defaults to repo-relative .stack and .cache/stack', () => {
    const cfg = loadConfig({});
    expect(cfg.stateDir).toBe(path.join(cfg.repoRoot, '.stack'));
    expect(cfg.cacheDir).toBe(path.join(cfg.repoRoot, '.cache', 'stack'));
    expect(fs.existsSync(path.join(cfg.repoRoot, 'pnpm-workspace.yaml'))).toBe(true);
    expect(cfg.apicurioVersion).toBe('3.0.9');
    expect(cfg.kafkaVersion).toBe('4.3.1');
    expect(cfg.java).toBe('java');
    expect(cfg.javaExplicit).toBe(false);
    expect(cfg.ports).toEqual({ kafka: undefined, kafkaController: undefined, registry: undefined, redis: undefined });
  });

  it('reads overrides from the environment', () => {
    const cfg = loadConfig({
      DRIFTLINE_STACK_DIR: '/tmp/x-stack',
      DRIFTLINE_STACK_JAVA: '/opt/jdk21/bin/java',
      DRIFTLINE_STACK_APICURIO_VERSION: '3.3.0',
      DRIFTLINE_STACK_REDIS_PORT: '16379',
      DRIFTLINE_STACK_TIMEOUT_MS: '5000',
    });
    expect(cfg.stateDir).toBe('/tmp/x-stack');
    expect(cfg.java).toBe('/opt/jdk21/bin/java');
    expect(cfg.javaExplicit).toBe(true);
    expect(cfg.apicurioVersion).toBe('3.3.0');
    expect(cfg.ports.redis).toBe(16379);
    expect(cfg.timeoutMs).toBe(5000);
  });

  it('accepts `;` and `:` in the folder the state and cache dirs share: Kafka gets a relative classpath', () => {
    const shared = '/tmp/a;b:c';
    const cfg = loadConfig({
      DRIFTLINE_STACK_DIR: `${shared}/.stack`,
      DRIFTLINE_STACK_CACHE_DIR: `${shared}/.cache/stack`,
    });
    const classpath = kafkaClasspath(statePaths(cfg.stateDir).kafkaDir, kafkaCachePaths(cfg.cacheDir, '4.3.1').libsDir);
    expect(classpath).toBe('../../.cache/stack/kafka-4.3.1/libs/*');
  });

  it('refuses a cache dir whose own part holds a `:` (Java splits the classpath there), in one line naming it', () => {
    const error = (() => {
      try {
        loadConfig({ DRIFTLINE_STACK_DIR: '/tmp/state', DRIFTLINE_STACK_CACHE_DIR: '/tmp/cache:x/stack' });
      } catch (err) {
        return err;
      }
      return undefined;
    })();
    expect(error).toBeInstanceOf(StackConfigError);
    expect((error as StackConfigError).variable).toBe('DRIFTLINE_STACK_CACHE_DIR');
    expect((error as Error).message).toMatch(
      /^DRIFTLINE_STACK_CACHE_DIR: the cache dir \/tmp\/cache:x\/stack holds a ':'/,
    );
    expect((error as Error).message).not.toContain('\n');
  });

  it('rejects bad values with the variable name, as a StackConfigError (exit 78 in the CLI and the demo)', () => {
    expect(() => loadConfig({ DRIFTLINE_STACK_REDIS_PORT: 'abc' })).toThrow(StackConfigError);
    expect(() => loadConfig({ DRIFTLINE_STACK_TIMEOUT_MS: '-1' })).toThrow(StackConfigError);
    expect(() => parsePort('DRIFTLINE_STACK_KAFKA_PORT', 'abc')).toThrow(/DRIFTLINE_STACK_KAFKA_PORT/);
    expect(() => parsePort('DRIFTLINE_STACK_KAFKA_PORT', '70000')).toThrow(/between 1 and 65535/);
    expect(() => loadConfig({ DRIFTLINE_STACK_APICURIO_VERSION: 'latest' })).toThrow(
      /DRIFTLINE_STACK_APICURIO_VERSION/,
    );
  });
});
