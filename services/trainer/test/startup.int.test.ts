// `driftline run trainer` with an artifact directory or an interpreter it cannot use (or one that
// cannot import the worker's packages): one line naming the variable, exit 78 (a configuration
// error), before any request is taken. Found by a review: an unwritable directory started, then
// dead-lettered every request (EACCES, unclassified); an interpreter path it could not look up
// ended it as "internal error … report it".
import { chmodSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serviceEnv, spawnDriftlineRun, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';

const stack = inject('stack');
const scratch = mkdtempSync(join(tmpdir(), 'trainer-startup-'));
const file = join(scratch, 'file');
writeFileSync(file, '#!/bin/sh\n');
chmodSync(file, 0o644);
const asRoot = process.getuid?.() === 0;

function runTrainer(vars: Record<string, string>) {
  const child = spawnDriftlineRun(
    'trainer',
    serviceEnv(stack, {
      DRIFTLINE_TOPIC_PREFIX: `${uniqueName('trainer-startup')}.`,
      DRIFTLINE_HTTP_PORT: '0',
      DRIFTLINE_CLICKHOUSE_PATH: mkdtempSync(join(scratch, 'ch-')),
      ...vars,
    }),
  );
  cleanup.push(() => child.kill());
  return child;
}
const cleanup: Array<() => void> = [];
afterEach(() => {
  for (const fn of cleanup.splice(0)) fn();
});

describe('trainer start-up refuses what it cannot use, naming the variable (exit 78)', () => {
  it('an artifact directory under a regular file (ENOTDIR, denied to root too)', async () => {
    const child = runTrainer({ DRIFTLINE_TRAINER_ARTIFACT_DIR: join(file, 'models') });
    expect(await child.exited).toBe(78);
    expect(child.linesNaming('DRIFTLINE_TRAINER_ARTIFACT_DIR')).toEqual([
      expect.stringMatching(
        /configuration error: DRIFTLINE_TRAINER_ARTIFACT_DIR: \S+\/file\/models cannot be created: ENOTDIR: not a directory/,
      ),
    ]);
  });

  it.skipIf(asRoot)(
    'an artifact directory read-only to the trainer (mode 0555; a mode does not deny root)',
    async () => {
      const dir = join(scratch, 'read-only');
      mkdirSync(dir);
      chmodSync(dir, 0o555);
      const child = runTrainer({ DRIFTLINE_TRAINER_ARTIFACT_DIR: dir });
      expect(await child.exited).toBe(78);
      expect(child.linesNaming('DRIFTLINE_TRAINER_ARTIFACT_DIR')).toEqual([
        expect.stringMatching(/configuration error: DRIFTLINE_TRAINER_ARTIFACT_DIR: \S+ is not writable: EACCES/),
      ]);
    },
  );

  it('an interpreter it cannot execute, or whose path runs through a file', async () => {
    for (const [python, why] of [
      [file, 'is not executable by this user: EACCES'],
      [join(file, 'python'), 'cannot be read: ENOTDIR'],
    ] as const) {
      const child = runTrainer({
        DRIFTLINE_TRAINER_ARTIFACT_DIR: join(scratch, 'models'),
        DRIFTLINE_TRAINER_PYTHON: python,
      });
      expect(await child.exited).toBe(78);
      expect(child.linesNaming('DRIFTLINE_TRAINER_PYTHON')).toEqual([
        expect.stringContaining(`configuration error: DRIFTLINE_TRAINER_PYTHON: ${python} ${why}`),
      ]);
      expect(child.output()).not.toContain('internal error');
    }
  });

  it("an interpreter without the worker's packages (found by a review: it started, then every request failed `import numpy`)", async () => {
    // A real Python that cannot import them: -S leaves out every site-packages directory.
    const python = join(scratch, 'python-without-packages');
    writeFileSync(python, '#!/bin/sh\nexec python3 -S "$@"\n');
    chmodSync(python, 0o755);
    const child = runTrainer({
      DRIFTLINE_TRAINER_ARTIFACT_DIR: join(scratch, 'models'),
      DRIFTLINE_TRAINER_PYTHON: python,
    });
    expect(await child.exited).toBe(78);
    expect(child.linesNaming('DRIFTLINE_TRAINER_PYTHON')).toEqual([
      expect.stringContaining(
        `configuration error: DRIFTLINE_TRAINER_PYTHON: ${python} cannot import numpy (ModuleNotFoundError: No module named 'numpy'): point it at a Python with the worker's packages`,
      ),
    ]);
    expect(child.output()).not.toContain('service started');
  });
});
