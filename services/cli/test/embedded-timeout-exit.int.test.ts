// A command on the embedded engine whose query passed DRIFTLINE_CLICKHOUSE_TIMEOUT: chdb cannot stop
// the query, and `process.exit` waits in the engine's exit hook until it ends. `report` ended itself
// after its error line (SIGKILL, status 137); `model-card`, `reference`, `model stage` and
// `clickhouse migrate` printed the same error and then waited for the engine — minutes on a large
// warehouse (found by a review). Here every table of the warehouse is a view that sleeps for
// SLOW_S before it answers, so the first query each command sends to a table times out.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { closeEmbeddedEngine, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledCli } from './bundled-cli.js';

const work = mkdtempSync(join(tmpdir(), 'driftline-timeout-exit-'));
const path = join(work, 'chdb');
const database = 'slow';
const cli = bundledCli('timeout-exit');
/** How long a query of any table takes: the exit the defect waited for. */
const SLOW_S = 600;
/**
 * The bound from the error line to the end of the process: the engine's query runs on for minutes,
 * a process that ends itself ends in well under a second (a loaded machine: seconds).
 */
const AFTER_ERROR_MS = 45_000;
const training = join(work, 'training.csv');

let child: ChildProcess | undefined;

beforeAll(async () => {
  const ch = await createClickHouse({ mode: 'embedded', path, database });
  await migrate(ch, migrations);
  // Every table moves to `stored`, and a view of the same name reads it after sleeping SLOW_S (a
  // scalar subquery, evaluated once per query; a second per one-row block, under the engine's
  // per-block limit lifted for the view alone). Sleeping, not computing: the machine stays idle.
  await ch.command('CREATE DATABASE stored');
  const tables = await ch.select<{ name: string }>(
    `SELECT name FROM system.tables WHERE database = {db:String} AND engine != 'View'`,
    { db: database },
  );
  expect(tables.map((t) => t.name)).toContain('schema_migrations');
  for (const { name } of tables) {
    await ch.command(`RENAME TABLE ${database}.${name} TO stored.${name}`);
    await ch.command(
      `CREATE VIEW ${database}.${name} AS SELECT * FROM stored.${name}
       WHERE (SELECT count() FROM numbers(${SLOW_S}) WHERE sleepEachRow(1) = 0) >= 0
       SETTINGS max_block_size = 1, function_sleep_max_microseconds_per_block = 0`,
    );
  }
  await closeEmbeddedEngine();
  writeFileSync(training, 'amount,prediction\n1,0.1\n2,0.9\n3,0.4\n4,0.6\n');
}, 180_000);

afterAll(() => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

interface Ended {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  /** The test stopped it: it had not ended AFTER_ERROR_MS after its error line. */
  readonly stoppedByTest: boolean;
}

/** Runs `driftline ...args` on the slow warehouse until it ends, or stops it AFTER_ERROR_MS after its error line. */
function driftline(args: readonly string[]): Promise<Ended> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DRIFTLINE_CLICKHOUSE_')));
  const started = spawn(process.execPath, [cli(), ...args], {
    cwd: work,
    env: {
      ...base,
      DRIFTLINE_CLICKHOUSE_PATH: path,
      DRIFTLINE_CLICKHOUSE_DATABASE: database,
      DRIFTLINE_CLICKHOUSE_TIMEOUT: '5s',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  child = started;
  return new Promise((resolve) => {
    let stderr = '';
    let stoppedByTest = false;
    const stop = () => {
      stoppedByTest = true;
      started.kill('SIGKILL');
    };
    // No error line at all within twice the bound: stopped too (the assertions say what it printed).
    let timer = setTimeout(stop, 2 * AFTER_ERROR_MS);
    started.stderr?.on('data', (d: Buffer) => {
      const first = !/^driftline: /m.test(stderr);
      stderr += d.toString();
      if (first && /^driftline: .*\n/m.test(stderr)) {
        clearTimeout(timer);
        timer = setTimeout(stop, AFTER_ERROR_MS);
      }
    });
    started.once('exit', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stderr, stoppedByTest });
    });
  });
}

describe('a command whose embedded query passed DRIFTLINE_CLICKHOUSE_TIMEOUT ends after its error line (found by a review)', () => {
  // One at a time: the engine directory opens in one process only.
  it.each([
    ['model-card', ['model-card', '--model', 'fraud', '--version', 'v1']],
    ['reference', ['reference', '--model', 'fraud', '--version', 'v1', '--file', training]],
    ['model stage', ['model', 'stage', '--model', 'fraud', '--version', 'v1', '--to', 'shadow']],
    ['clickhouse migrate', ['clickhouse', 'migrate']],
    ['report', ['report', '--model', 'fraud', '--out', join(work, 'report.html')]],
  ])(
    '%s: one error line naming the timeout, then SIGKILL (status 137), not minutes waiting for the engine',
    async (_name, args) => {
      const ended = await driftline(args);
      expect({ code: ended.code, signal: ended.signal, stoppedByTest: ended.stoppedByTest }).toEqual({
        code: null,
        signal: 'SIGKILL',
        stoppedByTest: false,
      });
      expect(ended.stderr).toMatch(/^driftline: [^\n]*timed out after 5000 ms[^\n]*\n$/);
    },
    3 * AFTER_ERROR_MS,
  );
});
