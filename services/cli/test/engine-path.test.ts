// DRIFTLINE_CLICKHOUSE_PATH that cannot be the embedded engine's directory, through the entry point
// (a bundle of the current sources, its own process): one configuration line naming the variable
// and what is wrong, exit 78, and a read command creates nothing (found by a review: "internal error:
// ENOTDIR … report it"; `report` made the whole tree of a mistyped path; a `store/` replaced by a file
// gave an empty page and exit 0; under /proc the command never ended).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { bundledCli } from './bundled-cli.js';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const fixture = fileURLToPath(new URL('fixtures/table.csv', import.meta.url));
const cliMain = bundledCli('engine-path');
const work = mkdtempSync(join(tmpdir(), 'driftline-engine-path-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the CLI with only `env` of driftline's variables; killed after `timeoutMs` (status null). */
function driftline(args: readonly string[], env: Record<string, string>, timeoutMs = 60_000): Promise<Run> {
  const base = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('DRIFTLINE_')));
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [cliMain(), ...args], { cwd, env: { ...base, ...env } });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      stdout += chunk;
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

let n = 0;
const fresh = () => {
  const dir = join(work, `case-${++n}`);
  mkdirSync(dir);
  return dir;
};

const report = (out: string) => ['report', '--model', 'm', '--out', out];
const modelCard = ['model-card', '--model', 'm', '--version', 'v1'];
const configLine = (message: string) => `driftline: configuration error: DRIFTLINE_CLICKHOUSE_PATH: ${message}\n`;

describe('DRIFTLINE_CLICKHOUSE_PATH that cannot be a directory: exit 78, one line', () => {
  it('under a regular file, for the read commands and the writers (it was "internal error: ENOTDIR … report it", exit 1)', async () => {
    const dir = fresh();
    const file = join(dir, 'afile');
    writeFileSync(file, '');
    const path = join(file, 'chdb');
    const expected = {
      status: 78,
      stderr: configLine(`${path} cannot be a directory: ${file} is a regular file, not a directory`),
    };
    for (const args of [
      report(join(dir, 'r.html')),
      modelCard,
      ['reference', '--model', 'm', '--version', 'v1', '--file', fixture],
      ['clickhouse', 'serve'],
    ]) {
      const run = await driftline(args, { DRIFTLINE_CLICKHOUSE_PATH: path, DRIFTLINE_CLICKHOUSE_HOST_PORT: '0' });
      expect({ args, status: run.status, stderr: run.stderr }).toEqual({ args, ...expected });
    }
    expect(readdirSync(dir)).toEqual(['afile']);
  });

  it('the path itself a regular file (it was "internal error: EEXIST … report it")', async () => {
    const file = join(fresh(), 'afile');
    writeFileSync(file, '');
    const run = await driftline(modelCard, { DRIFTLINE_CLICKHOUSE_PATH: file });
    expect(run).toMatchObject({ status: 78, stderr: configLine(`${file} is a regular file, not a directory`) });
  });

  it('a newline in the path is refused before anything is made (the engine made a second warehouse there)', async () => {
    const dir = fresh();
    const run = await driftline(['reference', '--model', 'm', '--version', 'v1', '--file', fixture], {
      DRIFTLINE_CLICKHOUSE_PATH: `${dir}/a\nb`,
    });
    expect(run).toMatchObject({
      status: 78,
      stderr: `driftline: configuration error: DRIFTLINE_CLICKHOUSE_PATH: must not contain control characters (a newline, a tab: a paste?) (got ${JSON.stringify(`${dir}/a\nb`)})\n`,
    });
    expect(readdirSync(dir)).toEqual([]);
  });

  it.skipIf(!existsSync('/proc/self'))(
    "under /proc: a reader finds no warehouse, a writer cannot create it — at once (Node's recursive mkdir looped for ever on ENOENT)",
    async () => {
      const path = '/proc/driftline-no-such-dir/chdb';
      const read = await driftline(modelCard, { DRIFTLINE_CLICKHOUSE_PATH: path }, 20_000);
      expect(read).toMatchObject({
        status: 78,
        stderr: configLine(
          `no warehouse at ${path}: the directory does not exist (a typo, or nothing has written there yet); nothing was created`,
        ),
      });
      const serve = await driftline(
        ['clickhouse', 'serve'],
        { DRIFTLINE_CLICKHOUSE_PATH: path, DRIFTLINE_CLICKHOUSE_HOST_PORT: '0' },
        20_000,
      );
      expect(serve).toMatchObject({
        status: 78,
        stderr: configLine(
          `${path} cannot be created as the engine's data directory: ENOENT: no such file or directory, mkdir '/proc/driftline-no-such-dir'`,
        ),
      });
    },
  );
});

describe('report and model-card create nothing', () => {
  it('a directory that does not exist: "no warehouse at …", exit 78, no directory made (report made the whole tree)', async () => {
    const dir = fresh();
    const path = join(dir, 'typo', 'chdb');
    for (const args of [report(join(dir, 'r.html')), modelCard]) {
      const run = await driftline(args, { DRIFTLINE_CLICKHOUSE_PATH: path });
      expect({ args, status: run.status, stderr: run.stderr }).toEqual({
        args,
        status: 78,
        stderr: configLine(
          `no warehouse at ${path}: the directory does not exist (a typo, or nothing has written there yet); nothing was created`,
        ),
      });
    }
    expect(readdirSync(dir)).toEqual([]);
  });

  it('an empty directory is left empty', async () => {
    const dir = fresh();
    const run = await driftline(report(join(work, 'empty.html')), { DRIFTLINE_CLICKHOUSE_PATH: dir });
    expect(run).toMatchObject({
      status: 78,
      stderr: configLine(
        `no warehouse at ${dir}: the directory holds no embedded ClickHouse data (no metadata/ in it); nothing was created`,
      ),
    });
    expect(readdirSync(dir)).toEqual([]);
    expect(existsSync(join(work, 'empty.html'))).toBe(false);
  });
});

describe('a warehouse whose store/ is a plain file', () => {
  it('report and model-card: one line naming the path and the damage, exit 78, no page (it was an empty page, exit 0)', async () => {
    const dir = fresh();
    const path = join(dir, 'chdb');
    // A real warehouse with a reference in it, written by the CLI.
    const made = await driftline(['reference', '--model', 'm', '--version', 'v1', '--file', fixture], {
      DRIFTLINE_CLICKHOUSE_PATH: path,
    });
    expect(made.status, made.stderr).toBe(0);
    rmSync(join(path, 'store'), { recursive: true });
    writeFileSync(join(path, 'store'), '');
    const damaged = configLine(
      `${path} is damaged: store is a regular file, not a directory, so the engine cannot read its tables — restore the directory from a backup, or point DRIFTLINE_CLICKHOUSE_PATH at another`,
    );
    const out = join(dir, 'r.html');
    for (const args of [report(out), modelCard]) {
      const run = await driftline(args, { DRIFTLINE_CLICKHOUSE_PATH: path });
      expect({ args, status: run.status, stdout: run.stdout, stderr: run.stderr }).toEqual({
        args,
        status: 78,
        stdout: '',
        stderr: damaged,
      });
    }
    expect(existsSync(out)).toBe(false);
  });
});
