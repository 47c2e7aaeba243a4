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
});
