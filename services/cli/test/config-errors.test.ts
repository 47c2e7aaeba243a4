import { fileURLToPath } from 'node:url';
import { ConfigError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { dlqCommand } from '../src/commands/dlq.js';
import { modelCardCommand } from '../src/commands/model-card.js';
import { referenceCommand } from '../src/commands/reference.js';
import { reportCommand } from '../src/commands/report.js';
import { bundledCli, cleanEnv, runBundled } from './bundled-cli.js';

const views = fileURLToPath(new URL('../../../docker/config/feature-views.yaml', import.meta.url));
const fixture = fileURLToPath(new URL('fixtures/table.csv', import.meta.url));
const cliMain = bundledCli('config-errors');

/** Runs the CLI (a bundle of the current sources); resolves to its exit code and stderr. */
const driftline = (args: readonly string[], env: Record<string, string>) => runBundled(cliMain(), args, env);

const stage = ['model', 'stage', '--model', 'm', '--version', 'v1', '--to', 'candidate', '--by', 'tester'];

describe('configuration errors through the entry point: one line, exit 78 (found by a review)', () => {
  it('a misspelt variable: `model stage` refuses it, naming the variable it meant (it wrote to a new embedded store and exited 0)', async () => {
    const run = await driftline(stage, { DRIFTLINE_CLICKHOUSE_ULR: 'http://127.0.0.1:9' });
    expect(run).toEqual({
      status: 78,
      stderr:
        'driftline: configuration error: DRIFTLINE_CLICKHOUSE_ULR: unknown variable (did you mean DRIFTLINE_CLICKHOUSE_URL?)\n',
    });
  });

  it('DRIFTLINE_CLICKHOUSE_URL without http(s): refused at parse, not an internal error (exit 1)', async () => {
    const run = await driftline(stage, { DRIFTLINE_CLICKHOUSE_URL: 'localhost:8123' });
    expect(run.status).toBe(78);
    expect(run.stderr).toMatch(
      /^driftline: configuration error: DRIFTLINE_CLICKHOUSE_URL: must be an http:\/\/ or https:\/\/ URL \(got "localhost:8123"\)\n$/,
    );
  });

  it('DRIFTLINE_REDIS_URL with a path that is no database index: `run` refuses it before starting anything', async () => {
    const run = await driftline(['run', 'feature-api'], {
      DRIFTLINE_REDIS_URL: 'redis://127.0.0.1:1/abc',
      DRIFTLINE_FEATURE_VIEWS: views,
      DRIFTLINE_HTTP_PORT: '0',
      DRIFTLINE_FEATURE_API_PORT: '0',
    });
    expect(run.status).toBe(78);
    expect(run.stderr).toMatch(
      /^driftline: configuration error: DRIFTLINE_REDIS_URL: its path must be a database index, an integer >= 0 .*\n$/,
    );
  });
});

describe('every command reading DRIFTLINE_* refuses an unknown one the same way', () => {
  it.each([
    ['report', () => reportCommand(['--model', 'm'])],
    ['model-card', () => modelCardCommand(['--model', 'm', '--version', 'v1'])],
    ['reference', () => referenceCommand(['--model', 'm', '--version', 'v1', '--file', fixture])],
    ['dlq', () => dlqCommand(['list', '--topic', 'predictions.v1'])],
  ])('%s', async (_name, command) => {
    const saved = { ...process.env };
    process.env = cleanEnv({ DRIFTLINE_CLICKHOUSE_ULR: 'http://127.0.0.1:9' });
    try {
      const error = await command().catch((e: unknown) => e);
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toBe(
        'DRIFTLINE_CLICKHOUSE_ULR: unknown variable (did you mean DRIFTLINE_CLICKHOUSE_URL?)',
      );
    } finally {
      process.env = saved;
    }
  });
});
