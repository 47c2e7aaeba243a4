import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));

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

describe('driftline drift', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-cli-'));
  const ref = join(dir, 'ref.csv');
  const cur = join(dir, 'cur.csv');
  writeFileSync(ref, `x,c\n${Array.from({ length: 200 }, (_, i) => `${i % 20},${'abc'[i % 3]}`).join('\n')}\n`);
  writeFileSync(cur, `x,c\n${Array.from({ length: 200 }, (_, i) => `${(i % 20) + 10},${'abc'[i % 3]}`).join('\n')}\n`);

  it('prints one JSON object per column with --json', async () => {
    const { stdout, code } = await driftline('drift', '--reference', ref, '--current', cur, '--json', '--bins', '5');
    expect(code).toBe(0);
    const rows = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { column: string; drifted: boolean });
    expect(rows.map((r) => [r.column, r.drifted])).toEqual([
      ['x', true],
      ['c', false],
    ]);
  });

  it('names the bad option and exits 2 (usage)', async () => {
    const { stderr, code } = await driftline('drift', '--reference', ref, '--current', cur, '--binning', 'equal');
    expect(code).toBe(2);
    expect(stderr).toBe(
      'driftline: --binning: must be quantile or evidently (got "equal") — see driftline drift --help\n',
    );
  });
});
