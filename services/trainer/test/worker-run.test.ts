import { chmodSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { silentLogger } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { runWorker, type WorkerRun } from '../src/worker.js';

/** A stand-in interpreter: `body` runs with the worker's arguments ($5 is the output directory). */
function standIn(body: string): { python: string; dir: string } {
  const dir = mkdtempSync(join(tmpdir(), 'trainer-run-'));
  const python = join(dir, 'python');
  writeFileSync(python, `#!/bin/sh\n${body}\n`);
  chmodSync(python, 0o755);
  return { python, dir };
}

const run = (python: string, dir: string, over: Partial<WorkerRun> = {}): Promise<unknown> =>
  runWorker({
    python,
    data: join(dir, 'train.arrow'),
    outDir: dir,
    device: 'cpu',
    params: {},
    timeoutMs: 30_000,
    logger: silentLogger,
    ...over,
  }).then(
    () => undefined,
    (e: unknown) => e,
  );

/** Whether `pid` runs (a zombie left for a container's init to reap does not). */
const alive = (pid: number) => {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
};

async function pidFrom(file: string): Promise<number> {
  // Until the line is written whole (a loaded shell may stall between creating the file and writing it).
  const written = () => existsSync(file) && readFileSync(file, 'utf8').endsWith('\n');
  for (let i = 0; i < 200 && !written(); i++) await sleep(25);
  return Number.parseInt(readFileSync(file, 'utf8'), 10);
}

describe('runWorker: no worker outlives a stop, a rebalance or the timeout (found by a review)', () => {
  it('an abort kills the worker and what it started (its process group), retriable', async () => {
    // The worker starts a child of its own (as train.py starts nvidia-smi), then waits on it.
    const { python, dir } = standIn('sleep 60 & echo $! > "$5/child.pid"; wait');
    const stop = new AbortController();
    const failed = run(python, dir, { signal: stop.signal });
    const child = await pidFrom(join(dir, 'child.pid'));
    expect(alive(child)).toBe(true);
    const at = Date.now();
    stop.abort();
    expect(await failed).toMatchObject({
      name: 'WorkerEnvironmentError',
      failure: 'stopped', // counted toward nothing
      retriable: true,
      message: expect.stringContaining('stopping or rebalancing'),
    });
    expect(Date.now() - at).toBeLessThan(5_000);
    for (let i = 0; i < 200 && alive(child); i++) await sleep(25);
    expect(alive(child)).toBe(false);
  });

  it('the timeout kills the process group too, and says so', async () => {
    const { python, dir } = standIn('sleep 60 & echo $! > "$5/child.pid"; wait');
    // Past a loaded machine's start of the shell and its child (the pid is read before the kill).
    const failed = run(python, dir, { timeoutMs: 5_000 });
    const child = await pidFrom(join(dir, 'child.pid'));
    expect(await failed).toMatchObject({
      code: 'INTERNAL',
      retriable: true,
      message: expect.stringContaining('a kill after the 5000 ms timeout'),
    });
    for (let i = 0; i < 200 && alive(child); i++) await sleep(25);
    expect(alive(child)).toBe(false);
  });

  it('an abort before the start runs nothing', async () => {
    const { python, dir } = standIn('touch "$5/ran"');
    const stop = new AbortController();
    stop.abort();
    expect(await run(python, dir, { signal: stop.signal })).toMatchObject({
      name: 'WorkerEnvironmentError',
      failure: 'stopped',
    });
    expect(existsSync(join(dir, 'ran'))).toBe(false);
  });

  it('the worker is told to watch its stdin, which stays open while the trainer lives', async () => {
    const { python, dir } = standIn('echo "$@" > "$5/args"; timeout 1 cat; echo "$?" > "$5/read"');
    await run(python, dir);
    expect(readFileSync(join(dir, 'args'), 'utf8')).toContain('--watch-stdin');
    // cat was stopped by the timeout (124), never saw the end of its input: the pipe was open.
    expect(readFileSync(join(dir, 'read'), 'utf8').trim()).toBe('124');
  });
});

describe('runWorker classifies the failures of its environment (found by a review)', () => {
  it.each([
    ['a missing interpreter', '/nonexistent/bin/python', 'ENOENT'],
    ['an interpreter that is not executable', 'not-executable', 'EACCES'],
  ])('%s: retriable WorkerEnvironmentError naming the cause (was a raw poison error)', async (_case, python, code) => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-run-'));
    const path = python === 'not-executable' ? join(dir, 'python') : python;
    if (python === 'not-executable') writeFileSync(path, '#!/bin/sh\n');
    expect(await run(path, dir)).toMatchObject({
      name: 'WorkerEnvironmentError',
      failure: 'cannot-start',
      code: 'INTERNAL',
      retriable: true,
      message: expect.stringContaining(`(${code})`),
      reason: `the worker's interpreter ${path} cannot be started (${code})`,
    });
  });

  it('exit 75 (an OSError in train.py) is a WorkerEnvironmentError; exit 3 stays a validation failure', async () => {
    const os = standIn('echo "OS error: [Errno 28] No space left on device" >&2; exit 75');
    expect(await run(os.python, os.dir)).toMatchObject({
      name: 'WorkerEnvironmentError',
      failure: 'os-error',
      retriable: true,
      reason: 'the worker exited 75 on an OS error: OS error: [Errno 28] No space left on device',
    });
    const data = standIn('echo "labels must be 0 or 1" >&2; exit 3');
    expect(await run(data.python, data.dir)).toMatchObject({ code: 'VALIDATION_FAILED', retriable: false });
  });
});

describe('runWorker: packages that cannot be imported are the environment failing, not a run (found by a review)', () => {
  it('train.py on an interpreter without its packages (a venv being rebuilt) exits 75: a WorkerEnvironmentError, not a counted run', async () => {
    // -S: no site-packages, as in a venv recreated whose pip install is still running.
    const { python, dir } = standIn('exec python3 -S "$@"');
    expect(await run(python, dir)).toMatchObject({
      name: 'WorkerEnvironmentError',
      failure: 'cannot-import',
      retriable: true,
      message: expect.stringContaining(
        'trainer worker cannot import its packages (retried, not counted as an attempt): worker packages: cannot import numpy (ModuleNotFoundError',
      ),
      reason: expect.stringContaining(`the worker's interpreter ${python} cannot import its packages: `),
    });
  });

  it('exit 75 without that line stays an OS error', async () => {
    const { python, dir } = standIn('echo "OS error: [Errno 2] No such file" >&2; exit 75');
    expect(await run(python, dir)).toMatchObject({ name: 'WorkerEnvironmentError', failure: 'os-error' });
  });
});

describe('runWorker names the signal that ended the worker (found by a review)', () => {
  it('a SIGKILL the trainer did not send (the OOM killer) is named with the hint, and the request', async () => {
    const { python, dir } = standIn('echo "allocating" >&2; kill -KILL $$');
    expect(await run(python, dir, { subject: 'retrain req-9 of fraud' })).toMatchObject({
      code: 'INTERNAL',
      retriable: true,
      message:
        "trainer worker exited with signal SIGKILL, not sent by the trainer (the kernel's OOM killer, as a rule: check `dmesg` or the memory limit) (retrain req-9 of fraud): allocating",
    });
  });

  it('stderr is decoded across its chunks: a character split between two writes stays one character', async () => {
    // 特 (E7 89 B9) written in two parts, apart: two chunks on the pipe.
    const { python, dir } = standIn("printf '\\347\\211' >&2; sleep 0.3; printf '\\271 end' >&2; exit 1");
    expect(await run(python, dir)).toMatchObject({ message: expect.stringMatching(/: 特 end$/) });
  });

  it('any other signal is named too (the message had said "a signal" and nothing more)', async () => {
    const { python, dir } = standIn('kill -SEGV $$');
    expect(await run(python, dir)).toMatchObject({
      retriable: true,
      message: 'trainer worker exited with signal SIGSEGV: ',
    });
  });
});
