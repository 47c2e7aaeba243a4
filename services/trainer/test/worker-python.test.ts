import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { ensureWorkerPython } from '../src/worker.js';

describe('DRIFTLINE_TRAINER_PYTHON at start-up', () => {
  it('refuses a directory or a missing file in one line naming the variable; takes a file as it is', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-python-'));
    // A directory passed the exists check, then every training failed to spawn it.
    await expect(ensureWorkerPython(silentLogger, dir)).rejects.toThrow(
      new RegExp(`^DRIFTLINE_TRAINER_PYTHON: ${dir} is a directory`),
    );
    await expect(ensureWorkerPython(silentLogger, join(dir, 'none'))).rejects.toThrow(
      /^DRIFTLINE_TRAINER_PYTHON: .* does not exist$/,
    );
    const python = join(dir, 'python');
    writeFileSync(python, '#!/bin/sh\n');
    chmodSync(python, 0o755);
    expect(await ensureWorkerPython(silentLogger, python)).toBe(python);
  });

  it('refuses a path it cannot look up or execute in one line naming the variable, not an internal error (found by a review)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-python-'));
    const file = join(dir, 'file');
    writeFileSync(file, '#!/bin/sh\n');
    chmodSync(file, 0o644);
    // A path through a file: ENOTDIR for every user (a parent without search permission, EACCES, is
    // the same path for a user other than root).
    await expect(ensureWorkerPython(silentLogger, join(file, 'python'))).rejects.toMatchObject({
      name: 'ConfigError',
      message: expect.stringMatching(/^DRIFTLINE_TRAINER_PYTHON: \S+ cannot be read: ENOTDIR: [^\n]*$/),
    });
    // No execute bit: every training would fail to spawn it (EACCES), root's included.
    await expect(ensureWorkerPython(silentLogger, file)).rejects.toMatchObject({
      name: 'ConfigError',
      message: expect.stringMatching(/^DRIFTLINE_TRAINER_PYTHON: \S+ is not executable by this user: EACCES: [^\n]*$/),
    });
  });

  it('a check that did not come to a verdict (killed: memory pressure) is retriable, not a configuration error (found by a review)', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-python-'));
    const python = join(dir, 'python');
    writeFileSync(python, '#!/bin/sh\nif [ "$1" = "-c" ]; then kill -KILL $$; fi\n');
    chmodSync(python, 0o755);
    const failed = await ensureWorkerPython(silentLogger, python).catch((e: unknown) => e);
    expect(failed).toMatchObject({
      code: 'INTERNAL',
      retriable: true, // the runner's start-up retry (DRIFTLINE_STARTUP_TIMEOUT) tries again
      message: expect.stringContaining(`the import check of ${python} ended with signal SIGKILL before a verdict`),
    });
    expect(failed).not.toMatchObject({ code: 'CONFIG_INVALID' });
    expect((failed as Error).message).not.toContain('remove');
  });

  it('a clean import failure is a configuration error naming the variable and the module', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'trainer-python-'));
    const python = join(dir, 'python');
    // -S: no site-packages, so numpy cannot be imported.
    writeFileSync(python, '#!/bin/sh\nexec python3 -S "$@"\n');
    chmodSync(python, 0o755);
    await expect(ensureWorkerPython(silentLogger, python)).rejects.toMatchObject({
      code: 'CONFIG_INVALID',
      message: expect.stringMatching(
        /^DRIFTLINE_TRAINER_PYTHON: \S+ cannot import numpy \(ModuleNotFoundError: No module named 'numpy'\): /,
      ),
    });
  });
});
