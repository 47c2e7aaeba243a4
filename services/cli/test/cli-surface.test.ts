// The CLI's user surface, through its entry (a bundle of the current sources, as `make build`
// ships it): any table, errors as one line with a documented exit code, --help with every option,
// --html, progress on stderr only.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { gzipSync } from 'node:zlib';
import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { dlqOptions, dlqUsage } from '../src/commands/dlq.js';
import { driftOptions, driftUsage } from '../src/commands/drift.js';
import { modelCardOptions, modelCardUsage } from '../src/commands/model-card.js';
import { referenceOptions, referenceUsage } from '../src/commands/reference.js';
import { reportOptions, reportUsage } from '../src/commands/report.js';
import { describeError } from '../src/describe-error.js';
import { bundledCli } from './bundled-cli.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const fixtures = fileURLToPath(new URL('./fixtures', import.meta.url));
const cliMain = bundledCli('cli-surface');

async function driftline(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [cliMain(), ...args], { cwd: root });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

const jsonRows = (stdout: string) =>
  stdout
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { column: string; kind: string; drifted: boolean; reference_size: number });

// The tests of a describe that start the CLI run side by side (each file a test writes has a name
// of its own); the describes one after another, so that at most a handful of processes run at once.
const dir = mkdtempSync(join(tmpdir(), 'driftline-surface-'));
const file = (name: string, text: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};

describe('--help shows every option', () => {
  it.each([
    ['drift', driftOptions, driftUsage],
    ['reference', referenceOptions, referenceUsage],
    ['report', reportOptions, reportUsage],
    ['model-card', modelCardOptions, modelCardUsage],
    ['dlq', dlqOptions, dlqUsage],
  ] as const)('%s', (_name, options, usage) => {
    for (const option of Object.keys(options)) expect(usage).toContain(`--${option}`);
  });
});

describe('exit codes are documented as they are given (found by a review)', () => {
  it.concurrent('3 covers a model or version the warehouse does not hold: --help, model-card --help, the README', async () => {
    // `model-card --version nope` exits 3, which --help described as "a file that cannot be read or parsed".
    const notFound = describeError(new DriftlineError('NOT_FOUND', 'nothing recorded for model m version nope'), 'x');
    expect(notFound.code).toBe(3);
    const { stdout } = await driftline('--help');
    expect(stdout.replaceAll(/\s+/g, ' ')).toContain(
      '3 input data (a file that cannot be read or parsed, or a model, version or topic the backend does not hold)',
    );
    expect(modelCardUsage).toContain('exits 3');
    const readme = readFileSync(join(root, 'services/cli/README.md'), 'utf8');
    const row = readme.split('\n').find((l) => l.startsWith('| 3 '));
    expect(row).toContain('a model or version the warehouse does not hold');
  });
});

describe('a command without its subcommand: one error line on stderr, exit 2 (found by a review)', () => {
  it.concurrent.each([
    [['clickhouse'], 'driftline: a subcommand is needed: serve or migrate — see driftline clickhouse --help\n'],
    [
      ['clickhouse', 'stop'],
      'driftline: unknown subcommand "stop": serve or migrate — see driftline clickhouse --help\n',
    ],
    [
      ['clickhouse', 'migrate', '--force'],
      'driftline: migrate takes only --status (got "--force") — see driftline clickhouse --help\n',
    ],
    [['dlq'], 'driftline: a subcommand is needed: list or replay — see driftline dlq --help\n'],
    [
      ['model'],
      'driftline: a subcommand is needed: stage (driftline model stage --model M --version V --to STAGE) — see driftline model --help\n',
    ],
  ])('driftline %j', async (args, line) => {
    // `clickhouse` alone printed its whole usage on stdout.
    expect(await driftline(...args)).toEqual({ stdout: '', stderr: line, code: 2 });
  });

  it.concurrent('clickhouse --help, clickhouse serve --help and clickhouse migrate --help print the usage, exit 0', async () => {
    for (const args of [
      ['clickhouse', '--help'],
      ['clickhouse', 'serve', '--help'],
      ['clickhouse', 'migrate', '--help'],
    ]) {
      const { stdout, code } = await driftline(...args);
      expect([code, stdout.split('\n')[0]]).toEqual([0, 'usage: driftline clickhouse serve']);
    }
  });
});

describe('driftline drift on any table', () => {
  it.concurrent('reads gzip (by magic bytes, whatever the name), Parquet and Arrow the same way', {
    timeout: 30_000,
  }, async () => {
    const csv = readFileSync(join(fixtures, 'table.csv'));
    const gz = file('table.csv.gz', gzipSync(csv));
    const gzNoExt = file('table-gzip-bytes.csv', gzipSync(csv));
    const parquet = join(fixtures, 'table-zstd.parquet');
    const arrow = join(fixtures, 'table.arrow');
    const results = await Promise.all(
      [
        [gz, parquet],
        [gzNoExt, arrow],
      ].map(([a, b]) => driftline('drift', '--reference', a!, '--current', b!, '--json', '--categorical', 'small')),
    );
    for (const { stdout, stderr, code } of results) {
      // Six rows: PSI does not decide (--min-rows), and one note line says so.
      expect(stderr).toMatch(/^note: 6 columns have fewer than 100 present values on a side [^\n]*\n$/);
      expect(code).toBe(0);
      const rows = jsonRows(stdout);
      expect(rows.map((r) => [r.column, r.kind, r.reference_size])).toEqual([
        ['x', 'numeric', 5],
        ['n', 'numeric', 5],
        ['small', 'categorical', 6],
        ['color', 'categorical', 5],
        ['flag', 'categorical', 5],
        ['code', 'categorical', 6],
      ]);
      // The same table on both sides: nothing drifted.
      expect(rows.every((r) => !r.drifted)).toBe(true);
    }
  });

  it.concurrent('one-column files with --delimiter, --columns and --ignore, and an HTML report', async () => {
    const ref = file(
      'ref.tsv',
      `a\tb\tid\n${Array.from({ length: 300 }, (_, i) => `${i % 10}\tx${i % 3}\t${i}`).join('\n')}\n`,
    );
    const cur = file(
      'cur.tsv',
      `a\tb\tid\n${Array.from({ length: 300 }, (_, i) => `${(i % 10) + 5}\tx${i % 3}\t${i}`).join('\n')}\n`,
    );
    const html = join(dir, 'drift.html');
    const { stdout, stderr, code } = await driftline(
      'drift',
      '--reference',
      ref,
      '--current',
      cur,
      '--delimiter',
      'tab',
      '--ignore',
      'id',
      '--html',
      html,
      '--json',
    );
    expect([code, stderr]).toEqual([0, '']);
    expect(jsonRows(stdout).map((r) => [r.column, r.drifted])).toEqual([
      ['a', true],
      ['b', false],
    ]);
    const page = readFileSync(html, 'utf8');
    expect(page).toMatch(/^<!doctype html>/);
    expect(page).toContain(`content="default-src 'none'`);
    expect(page).not.toMatch(/<script|\ssrc=|\shref=|url\(/);
    expect(page.match(/<figure class="chart"/g)).toHaveLength(2);
    expect(page).toContain('<b>1 / 2</b>');
  });

  it.concurrent('--progress writes phases to stderr, never to stdout', async () => {
    const one = file('one.csv', 'x\n1\n2\n3\n');
    const { stdout, stderr, code } = await driftline(
      'drift',
      '--reference',
      one,
      '--current',
      one,
      '--json',
      '--progress',
    );
    expect(code).toBe(0);
    expect(jsonRows(stdout)).toHaveLength(1);
    expect(stderr).toMatch(/^driftline: reading .*one\.csv… \(\d+\.\d s\)\n/);
    expect(stderr).toMatch(/driftline: done \(\d+\.\d s\)\n$/);
  });
});

describe('errors: one line on stderr, a documented exit code, a stack trace only with --debug', () => {
  const ok = file('ok.csv', 'a,b\n1,2\n3,4\n');

  it.concurrent.each([
    [
      'a missing file',
      ['--reference', join(dir, 'nope.csv'), '--current', ok],
      3,
      `${join(dir, 'nope.csv')}: no such file — check the path`,
    ],
    [
      'a ragged row',
      ['--reference', file('ragged.csv', 'a,b\n1,2\n3\n'), '--current', ok],
      3,
      /ragged\.csv: line 3 has 1 field, the header has 2 — /,
    ],
    [
      'a duplicate header',
      ['--reference', file('dup.csv', 'a,a\n1,2\n'), '--current', ok],
      3,
      /dup\.csv: line 1: duplicate column name "a" \(columns 1 and 2\) — rename one of them/,
    ],
    [
      'a column missing from one side',
      ['--reference', file('abc.csv', 'a,b,c\n1,2,3\n'), '--current', ok],
      3,
      `${ok}: no column "c" (it is in ${join(dir, 'abc.csv')}) — add it, or leave it out with --ignore c`,
    ],
    [
      'a forced-numeric column with text',
      ['--reference', file('txt.csv', 'a,b\n1,2\n3,x\n'), '--current', ok, '--numeric', 'b'],
      3,
      /txt\.csv: line 3: column "b" is forced numeric but holds "x" — /,
    ],
    [
      'a table without rows',
      ['--reference', file('empty.csv', 'a,b\n'), '--current', ok],
      3,
      /empty\.csv: no data rows — /,
    ],
    [
      'a file that is not Parquet',
      ['--reference', file('bad.parquet', 'PAR1 not really'), '--current', ok],
      3,
      /bad\.parquet: not a readable Parquet file/,
    ],
    [
      'a Parquet footer saying more rows than its row groups hold (it was an out-of-memory abort)',
      ['--reference', join(fixtures, 'lying-footer.parquet'), '--current', ok],
      3,
      /lying-footer\.parquet: its footer says 2000000000 rows but its row groups hold 7 — /,
    ],
    [
      'a Parquet page of 150,000,000 values, from its header (it was "not a readable Parquet file" after 23 s)',
      ['--reference', join(fixtures, 'one-page-150m.parquet'), '--current', ok],
      3,
      /one-page-150m\.parquet: column "x" has a page of 150,000,000 values \(row group 1\), more than the 33,554,432 a page may hold — write the file with smaller pages/,
    ],
    [
      'an Arrow file of 394 bytes saying 260,000,000 rows (it was an out-of-memory abort)',
      ['--reference', join(fixtures, 'nulls-260m.arrow'), '--current', ok],
      3,
      /nulls-260m\.arrow: 260,000,000 rows × 1 columns is more than 250,000,000 cells — /,
    ],
    [
      'a missing option',
      ['--reference', ok],
      2,
      '--current: is required (the current table) — see driftline drift --help',
    ],
    [
      'an unknown option',
      ['--reference', ok, '--current', ok, '--bogus'],
      2,
      "Unknown option '--bogus' — see driftline drift --help",
    ],
    [
      'a bad delimiter',
      ['--reference', ok, '--current', ok, '--delimiter', ';;'],
      2,
      /^--delimiter: must be one ASCII character/,
    ],
    [
      'a bad number',
      ['--reference', ok, '--current', ok, '--alpha', '2'],
      2,
      '--alpha: must be between 0 and 1 (got 2) — see driftline drift --help',
    ],
  ] as const)('%s', async (_what, args, exit, message) => {
    const { stdout, stderr, code } = await driftline('drift', ...args);
    expect(code).toBe(exit);
    expect(stdout).toBe('');
    expect(stderr.split('\n')).toHaveLength(2); // one line and its newline
    const line = stderr.replace(/^driftline: /, '').trimEnd();
    if (typeof message === 'string') expect(line).toBe(message);
    else expect(line).toMatch(message);
  });

  it.concurrent('--debug adds the stack trace', async () => {
    const { stderr, code } = await driftline('drift', '--reference', join(dir, 'nope.csv'), '--current', ok, '--debug');
    expect(code).toBe(3);
    expect(stderr).toMatch(/^driftline: .*nope\.csv: no such file — check the path\nDriftlineError: .*\n +at /);
  });

  it.concurrent('reference: a bad table is exit 3 before any warehouse is opened; --data is --file', async () => {
    const ragged = file('train.csv', 'x,y\n1\n');
    const { stderr, code } = await driftline('reference', '--model', 'm', '--version', 'v1', '--data', ragged);
    expect(code).toBe(3);
    expect(stderr).toMatch(/train\.csv: line 2 has 1 field, the header has 2 — /);
    const missing = await driftline('reference', '--model', 'm', '--version', 'v1');
    expect([missing.code, missing.stderr]).toEqual([
      2,
      'driftline: --file: is required (the training table) — see driftline reference --help\n',
    ]);
  }, 30_000);
});
