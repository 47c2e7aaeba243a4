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
});
