import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError } from '@driftline/core';
import { commonEnvShape, parseRunnerEnv } from '@driftline/service';
import { fuzzParameters, timedCall } from '@driftline/test-support/fuzz';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { allServices } from '../src/services.js';

/**
 * Property tests of the configuration as `driftline run` reads it: the runner's parse step
 * (unknown DRIFTLINE_* names, the common and resource variables, each started service's shape and
 * configure(), which reads the views and policy files) on a valid environment with random values
 * for random variables, variables removed, unknown names added and random file contents. Whatever
 * the environment: configured, or a one-line ConfigError naming a variable (or a field of a file),
 * within 100 ms; never a TypeError, never a stack trace for a user's mistake.
 */

const dir = mkdtempSync(join(tmpdir(), 'driftline-config-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const viewsFile = join(dir, 'views.json');
writeFileSync(
  viewsFile,
  JSON.stringify({ views: [{ name: 'profile', entity: 'user_id', features: { age: 'double', country: 'string' } }] }),
);
const policyFile = join(dir, 'policy.json');
writeFileSync(policyFile, JSON.stringify({ version: 1, models: { '*': { signals: { share_drifted: 0.5 } } } }));
/** A file whose content each run writes (views or policy text under fuzzing). */
const fuzzedFile = join(dir, 'fuzzed.yaml');

const valid: Record<string, string> = {
  DRIFTLINE_KAFKA_BROKERS: '127.0.0.1:9092',
  DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://127.0.0.1:8081/apis/ccompat/v7',
  DRIFTLINE_REDIS_URL: 'redis://127.0.0.1:6379',
  DRIFTLINE_FEATURE_VIEWS: viewsFile,
  DRIFTLINE_RETRAIN_POLICY_FILE: policyFile,
  DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'chdb'),
  DRIFTLINE_TRAINER_ARTIFACT_DIR: join(dir, 'artifacts'),
};
const variables = [
  ...new Set([...Object.keys(commonEnvShape), ...allServices.flatMap((s) => Object.keys(s.envShape))]),
].sort();
const fileVariables = ['DRIFTLINE_FEATURE_VIEWS', 'DRIFTLINE_RETRAIN_POLICY_FILE'];

/** Values an operator, a templating mistake or a copy-paste could put into a variable. */
const value = fc.oneof(
  fc.string({ maxLength: 16 }),
  fc.string({ unit: 'binary', maxLength: 8 }),
  fc.constantFrom('', ' ', '0', '1', '-1', '65536', '1e309', 'NaN', 'Infinity', '9007199254740993', '0x10', 'true'),
  fc.constantFrom('auto', 'psi', 'cpu', 'debug', '5m', '1.5h', '0.5', '2000-01-01', '1899-12-31', '2000-02-30'),
  fc.constantFrom('https://user:s3cret@h:1/x', 'redis://:s3cret@h:1', 'rediss://h', 'a,b,,c', 'accuracy<0.8,rmse>12'),
  fc.integer().map(String),
  fc.double().map(String),
  fc
    .tuple(
      fc.constantFrom(' ', '1', '1 ', 'a+', 'a.'),
      fc.integer({ min: 1, max: 5_000 }),
      fc.constantFrom('', 'x', '://'),
    )
    .map(([unit, n, tail]) => unit.repeat(n) + tail),
);
/** Contents of a views or policy file: YAML/JSON that is almost right, random text, deep nesting. */
const fileText = fc.oneof(
  fc.json({ maxDepth: 4 }),
  fc.string({ maxLength: 64 }),
  fc.constantFrom('', 'views: []', 'views: [{name: x}]', 'version: 2', 'models: {"*": {signals: {}}}', ': :', '- - -'),
  fc
    .record({
      views: fc.array(
        fc.record({ name: fc.string(), entity: fc.string(), features: fc.dictionary(fc.string(), fc.jsonValue()) }),
        { maxLength: 2 },
      ),
    })
    .map((doc) => JSON.stringify(doc)),
  fc.integer({ min: 1, max: 5_000 }).map((n) => `${'['.repeat(n)}${']'.repeat(n)}`),
  fc.integer({ min: 1, max: 500 }).map((n) => `${'- '.repeat(n)}x`),
  fc.integer({ min: 1, max: 300 }).map((n) => `a: &a [${'*a, '.repeat(n)}]`),
);
const path = fc.constantFrom(fuzzedFile, join(dir, 'missing.yaml'), dir, '', 'relative/nowhere.yaml');

type Change =
  | { readonly kind: 'set'; readonly name: string; readonly value: string }
  | { readonly kind: 'unset'; readonly name: string }
  | { readonly kind: 'unknown'; readonly name: string; readonly value: string }
  | { readonly kind: 'file'; readonly name: string; readonly path: string };

const change: fc.Arbitrary<Change> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({ kind: fc.constant('set' as const), name: fc.constantFrom(...variables), value }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('unset' as const), name: fc.constantFrom(...variables) }) },
  {
    weight: 1,
    arbitrary: fc.record({
      kind: fc.constant('unknown' as const),
      name: fc.string({ minLength: 1, maxLength: 12 }).map((s) => `DRIFTLINE_${s}`),
      value,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant('file' as const), name: fc.constantFrom(...fileVariables), path }),
  },
);

/** The services the valid environment above configures (a service added since needs its files here). */
const services = allServices.filter((s) => {
  try {
    parseRunnerEnv({ services: [s], knownServices: allServices, env: valid });
    return true;
  } catch {
    return false;
  }
});

describe('runner configuration under fuzzing (fast-check, seeded)', { timeout: 60_000 }, () => {
  it('the valid environment configures the services (the property below is not vacuous)', () => {
    expect(services.map((s) => s.name)).toEqual(
      expect.arrayContaining([
        'label-joiner',
        'feature-materializer',
        'feature-api',
        'retrain-trigger',
        'trainer',
        'drift-monitor',
      ]),
    );
  });

  it('random values, removed and unknown variables, random files: configured or a one-line ConfigError', () => {
    let configured = 0;
    fc.assert(
      fc.property(
        fc.subarray(
          services.map((s) => s.name),
          { minLength: 1 },
        ),
        fc.array(change, { minLength: 1, maxLength: 3 }),
        fileText,
        (names, changes, text) => {
          const started = services.filter((s) => names.includes(s.name));
          const env: Record<string, string> = { ...valid };
          for (const c of changes) {
            if (c.kind === 'unset') delete env[c.name];
            else if (c.kind === 'file') env[c.name] = c.path;
            else env[c.name] = c.value;
          }
          writeFileSync(fuzzedFile, text);
          const outcome = timedCall(() => parseRunnerEnv({ services: started, knownServices: allServices, env }));
          if (!outcome.threw) {
            configured++;
            return;
          }
          const error = outcome.error as ConfigError;
          expect(error).toBeInstanceOf(ConfigError);
          expect(error.field.length).toBeGreaterThan(0);
          expect(error.message).not.toContain('\n');
          // Never a credential: the secrets in the values above.
          expect(error.message).not.toContain('s3cret');
        },
      ),
      fuzzParameters(300),
    );
    expect(configured).toBeGreaterThan(0);
  });
});
