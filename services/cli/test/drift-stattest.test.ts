// `driftline drift --stattest evidently` end to end on a pair of the Evidently fixtures: the CLI
// prints Evidently's test, score and verdict per column, and the dataset verdict.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it, vi } from 'vitest';
import { driftCommand } from '../src/commands/drift.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const fixtures = 'libs/batch-drift/test/fixtures/evidently';
const expected = JSON.parse(readFileSync(`${root}/${fixtures}/expected.json`, 'utf8')) as {
  cases: Record<string, { dataset_drift: boolean; columns: Record<string, { stattest: string; drifted: boolean }> }>;
};

async function driftline(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', 'services/cli/src/main.ts', ...args],
      { cwd: root },
    );
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

const files = ['--reference', `${root}/${fixtures}/small-ref.csv`, '--current', `${root}/${fixtures}/small-cur.csv`];

/** The command in this process (a child with tsx takes seconds to start on a busy machine): its stdout. */
async function drift(...args: string[]): Promise<{ stdout: string; code: number }> {
  let stdout = '';
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    stdout += String(chunk);
    return true;
  });
  try {
    const code = await driftCommand(args);
    return { stdout, code };
  } finally {
    spy.mockRestore();
  }
}

describe('driftline drift --stattest', () => {
  it('evidently: JSON rows carry Evidently test, score, threshold and verdict', async () => {
    const { stdout, code } = await drift(...files, '--stattest', 'evidently', '--json');
    expect(code).toBe(0);
    const rows = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { column: string; stattest: string; drifted: boolean; drift_score: number });
    const want = expected.cases.small!.columns;
    expect(Object.fromEntries(rows.map((r) => [r.column, [r.stattest, r.drifted]]))).toEqual(
      Object.fromEntries(Object.entries(want).map(([c, w]) => [c, [w.stattest, w.drifted]])),
    );
  });

  it('evidently: the table shows each test and the dataset verdict', async () => {
    const { stdout, code } = await drift(...files, '--stattest', 'evidently');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^grade +categorical .* yes \(chisquare 0\.0091\) *$/m);
    expect(stdout).toContain(
      `dataset drift (Evidently: drifted share ≥ 0.5): ${expected.cases.small!.dataset_drift ? 'yes' : 'no'}`,
    );
  });

  // The one test through the binary's entry (main.ts turns the error into one line and exit code 2).
  it('an unknown value is one line naming the option, exit code 2', { timeout: 60_000 }, async () => {
    const { stderr, code } = await driftline('drift', ...files, '--stattest', 'scipy');
    expect(code).toBe(2);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(stderr).toContain('--stattest: must be driftline or evidently (got "scipy")');
  });
});
