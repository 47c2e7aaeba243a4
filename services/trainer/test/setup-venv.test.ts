import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, silentLogger } from '@driftline/core';
import { afterAll, describe, expect, it } from 'vitest';
import { ensureWorkerPython } from '../src/worker.js';

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

describe('an unusable base interpreter (PYTHON) is one line and exit 78, checked first (found by a review)', () => {
  // A fresh venv folder each time: the script's reuse path never runs, so it must look at PYTHON.
  const fresh = () => join(mkdtempSync(join(outside, 'fresh-')), 'venv');

  it('the script: a missing interpreter, and one without venv/ensurepip (Debian without python3-venv)', async () => {
    const missing = await runScript({ PYTHON: join(outside, 'no-such-python3'), DRIFTLINE_TRAINER_VENV: fresh() });
    expect(missing.code).toBe(78);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(
      /^trainer worker: PYTHON: no Python interpreter ".*no-such-python3": install python3 and python3-venv/,
    );
    // A stand-in interpreter whose imports fail, as `import ensurepip` does without python3-venv.
    const noVenv = join(outside, 'python-no-venv');
    writeFileSync(noVenv, '#!/bin/sh\nexit 1\n');
    chmodSync(noVenv, 0o755);
    const venv = fresh();
    const broken = await runScript({ PYTHON: noVenv, DRIFTLINE_TRAINER_VENV: venv });
    expect(broken.code).toBe(78);
    expect(broken.stderr).toMatch(/^trainer worker: PYTHON: ".*python-no-venv" cannot create a venv .*python3-venv/);
    expect(broken.stderr.trim().split('\n')).toHaveLength(1);
    expect(existsSync(`${venv}.lock`)).toBe(false); // nothing locked or created
  });

  it('ensureWorkerPython: a ConfigError naming PYTHON and what to install, in one line', async () => {
    const env = { ...process.env, PYTHON: join(outside, 'no-such-python3'), DRIFTLINE_TRAINER_VENV: fresh() };
    const error = await ensureWorkerPython(silentLogger, undefined, env).then(
      () => undefined,
      (err: unknown) => err,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('PYTHON');
    expect((error as ConfigError).message).toMatch(/^PYTHON: no Python interpreter .*install python3 and python3-venv/);
    expect((error as ConfigError).message).not.toMatch(/\n/);
  });
});

/** Runs the script itself (no --print-venv) under `env`. */
function runScript(env: Record<string, string>) {
  return run('bash', [SCRIPT], { env: { ...process.env, ...env } }).then(
    ({ stdout }) => ({ code: 0, stdout, stderr: '' }),
    (err: { code: number; stdout: string; stderr: string }) => ({
      code: err.code,
      stdout: err.stdout,
      stderr: err.stderr,
    }),
  );
}
