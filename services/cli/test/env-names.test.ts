import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError, DRIFTLINE_ENV_NAMES, FOREIGN_ENV_PREFIXES } from '@driftline/core';
import { commonEnvShape } from '@driftline/service';
import { clickhouseHostEnvShape } from '@driftline/warehouse/http-host';
import { describe, expect, it } from 'vitest';
import { checkEnvNames } from '../src/commands/env-names.js';
import { allServices } from '../src/services.js';

const root = fileURLToPath(new URL('../../..', import.meta.url));

/** DRIFTLINE_* names a file reads by `pattern` (its first group). */
function namesRead(file: string, pattern: RegExp): string[] {
  return [...readFileSync(file, 'utf8').matchAll(pattern)].map((m) => m[1]!);
}

/** Every TypeScript file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, f));
}

describe('the known DRIFTLINE_* names (a list written out, so no command loads service code to check names)', () => {
  it('are exactly the variables of every shape, of the commands and of the trainer bootstrap', () => {
    const fromShapes = [commonEnvShape, clickhouseHostEnvShape, ...allServices.map((s) => s.envShape)].flatMap(
      (shape) => Object.keys(shape),
    );
    // Read straight from the environment: the runner's service list (run) ...
    const fromCommands = sources(join(root, 'services', 'cli', 'src')).flatMap((file) =>
      namesRead(file, /process\.env\.(DRIFTLINE_[A-Z0-9_]+)/g),
    );
    // ... and the trainer bootstrap's overrides (one env file serves both).
    const fromBootstrap = namesRead(
      join(root, 'services', 'trainer', 'worker', 'setup-venv.sh'),
      /\$\{(DRIFTLINE_[A-Z0-9_]+)/g,
    );
    expect(fromCommands).toContain('DRIFTLINE_SERVICES');
    expect(fromBootstrap.length).toBeGreaterThan(0);
    const expected = new Set([...fromShapes, ...fromCommands, ...fromBootstrap]);
    expect([...DRIFTLINE_ENV_NAMES].sort()).toEqual([...expected].sort());
  });

  it('none is hidden behind another tool’s prefix (those are never checked)', () => {
    expect(DRIFTLINE_ENV_NAMES.filter((name) => FOREIGN_ENV_PREFIXES.some((p) => name.startsWith(p)))).toEqual([]);
  });
});

describe('checkEnvNames', () => {
  it('passes every service’s variables, the ClickHouse host’s and other tools’', () => {
    expect(() =>
      checkEnvNames({
        DRIFTLINE_TRAINER_ROUNDS: '10',
        DRIFTLINE_FEATURE_API_PORT: '8080',
        DRIFTLINE_CLICKHOUSE_HOST_PORT: '8124',
        DRIFTLINE_STACK_KEEP: '1',
        // The test run's own (test/support run-temp-dir): commands started by tests inherit them.
        DRIFTLINE_TEST_TMPDIR: '/tmp/driftline-test-x',
        DRIFTLINE_TEST_KEEP_TMP: '1',
        HOME: '/root',
      }),
    ).not.toThrow();
  });

  it('refuses a misspelt one, naming the closest', () => {
    expect(() => checkEnvNames({ DRIFTLINE_TRAINER_ROUDNS: '10' })).toThrow(ConfigError);
    expect(() => checkEnvNames({ DRIFTLINE_TRAINER_ROUDNS: '10' })).toThrow(
      'DRIFTLINE_TRAINER_ROUDNS: unknown variable (did you mean DRIFTLINE_TRAINER_ROUNDS?)',
    );
  });
});
