import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const SCRIPT = resolve(import.meta.dirname, '../worker/setup-venv.sh');
const REPO = resolve(import.meta.dirname, '../../..');
const outside = mkdtempSync(join(tmpdir(), 'trainer-setup-venv-'));
afterAll(() => rmSync(outside, { recursive: true, force: true }));

/** The script's venv folder (`--print-venv`: nothing is created) under `env`, with no HOME unless given. */
async function venvDir(script: string, env: Record<string, string>) {
  const { HOME: _home, XDG_CACHE_HOME: _xdg, DRIFTLINE_TRAINER_VENV: _venv, ...rest } = process.env;
  return run('bash', [script, '--print-venv'], { env: { ...rest, ...env } }).then(
    ({ stdout }) => ({ code: 0, stdout: stdout.trim(), stderr: '' }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, stdout: '', stderr: err.stderr }),
  );
}

describe('worker/setup-venv.sh without HOME (found by a review: "HOME: unbound variable")', () => {
  it('finds the checkout and uses its .cache whether HOME is set or not', async () => {
    expect(await venvDir(SCRIPT, {})).toEqual({ code: 0, stdout: join(REPO, '.cache/pyenv-trainer'), stderr: '' });
    expect((await venvDir(SCRIPT, { DRIFTLINE_TRAINER_VENV: join(outside, 'v') })).stdout).toBe(join(outside, 'v'));
  });

  it('outside a checkout: XDG_CACHE_HOME, else HOME, else one line saying what to set (exit 2)', async () => {
    const copy = join(outside, 'setup-venv.sh');
    copyFileSync(SCRIPT, copy);
    // Folders under the test's own: a script that ignored --print-venv would create its venv there.
    const xdg = join(outside, 'xdg');
    const home = join(outside, 'home');
    expect((await venvDir(copy, { XDG_CACHE_HOME: xdg })).stdout).toBe(join(xdg, 'driftline/pyenv-trainer'));
    expect((await venvDir(copy, { HOME: home })).stdout).toBe(join(home, '.cache/driftline/pyenv-trainer'));
    const none = await venvDir(copy, {});
    expect(none.code).toBe(2);
    expect(none.stderr).toBe(
      'trainer worker: nowhere to create the venv: set DRIFTLINE_TRAINER_VENV (or HOME or XDG_CACHE_HOME)\n',
    );
  });
});
