// The artifact directory on a disk that is full (a 256 KiB tmpfs, filled): every attempt fails
// with ENOSPC, and the request must be given up after the environment bound, naming
// DRIFTLINE_TRAINER_ARTIFACT_DIR. Found by a review: the streak file, written in place, was left
// empty by each failed write and read back as no streak, so the count restarted at 1 on every
// failure and the request held its partition for ever. Needs root (mount); skipped otherwise.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import type { RetrainRequest } from '@driftline/schemas';
import type { ModelVersionRow } from '@driftline/warehouse';
import { afterAll, describe, expect, it } from 'vitest';
import type { LabeledRow } from '../src/dataset.js';
import { ENVIRONMENT_FAILURE_BUDGET_MS, MIN_ENVIRONMENT_FAILURES } from '../src/environment-failures.js';
import { ENVIRONMENT_STREAK_FILE } from '../src/environment-streak-store.js';
import { LabelWaits } from '../src/label-wait.js';
import { versionFor } from '../src/promotion.js';
import { handleRequest, type TrainerDeps } from '../src/trainer.js';
import { unitTrainerConfig } from './fixtures.js';

const mountPoint = mkdtempSync(join(tmpdir(), 'trainer-disk-full-'));
const mounted =
  process.getuid?.() === 0 &&
  existsSync('/usr/bin/mount') &&
  spawnSync('/usr/bin/mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mountPoint], { stdio: 'ignore' }).status ===
    0;

afterAll(() => {
  if (mounted) spawnSync('/usr/bin/umount', [mountPoint], { stdio: 'ignore' });
  rmdirSync(mountPoint);
});

const request: RetrainRequest = {
  request_id: 'req-disk-full',
  model: 'fraud',
  model_version: 'v1',
  reason: 'test',
  evidence: '{}',
  data_from: 0,
  data_to: 100_000,
  event_time: 100_000,
};

const rows: LabeledRow[] = Array.from({ length: 50 }, (_, i) => ({
  predictionId: `p${i}`,
  time: i * 1_000,
  features: { x: i },
  prediction: 0.5,
  label: i % 2,
}));

/** Fills the file system at `dir` to its last byte. */
function fill(dir: string): void {
  try {
    writeFileSync(join(dir, 'filler'), Buffer.alloc(1024 * 1024));
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
  }
  expect(() => writeFileSync(join(dir, 'one-byte'), 'x')).toThrow(/ENOSPC/);
}

describe.skipIf(!mounted)('trainer on a full disk (tmpfs; root only)', () => {
  it('an artifact directory on a full disk is given up after the hour and MIN_ENVIRONMENT_FAILURES, naming DRIFTLINE_TRAINER_ARTIFACT_DIR (found by a review)', async () => {
    const artifactDir = join(mountPoint, 'models');
    const versionDir = join(artifactDir, 'fraud', versionFor(request));
    mkdirSync(versionDir, { recursive: true });
    fill(mountPoint);
    let clock = 1_000_000;
    const deps: TrainerDeps = {
      config: unitTrainerConfig(artifactDir),
      python: '/nonexistent/python', // never reached: the window's train.arrow cannot be written
      source: { read: async () => ({ rows, truncated: false }) },
      registry: {
        byRequest: async () => undefined,
        save: async (_row: ModelVersionRow) => {
          throw new Error('nothing is registered on a full disk');
        },
      },
      saveReference: async () => 'mem://none',
      publish: async () => {},
      logger: silentLogger,
      now: () => clock,
      waits: new LabelWaits(),
    };
    // Ten minutes apart: MIN_ENVIRONMENT_FAILURES failures span 90 min, past the hour.
    const step = 10 * 60_000;
    const outcomes: string[] = [];
    for (let attempt = 1; attempt <= MIN_ENVIRONMENT_FAILURES + 5; attempt++) {
      const error = await handleRequest(deps, request).then(
        () => undefined,
        (e: unknown) => e as Error & { retriable?: boolean },
      );
      outcomes.push(error?.retriable === false ? 'given up' : 'retried');
      if (error?.retriable === false) {
        expect(error.message).toMatch(
          new RegExp(
            `^trainer worker environment failed ${MIN_ENVIRONMENT_FAILURES} times in a row over 90 min \\(bound: 1h\\): the artifact directory cannot be used \\(ENOSPC: .*To fix: make ${artifactDir} \\(DRIFTLINE_TRAINER_ARTIFACT_DIR\\) and what is under it writable by the trainer's user, or free its disk`,
          ),
        );
        break;
      }
      expect(error?.message).toMatch(/the artifact directory cannot be used \(ENOSPC/);
      clock += step;
    }
    // Before: retried for ever (15 of 15 retried), the streak file left empty.
    expect(outcomes).toEqual([...Array(MIN_ENVIRONMENT_FAILURES - 1).fill('retried'), 'given up']);
    expect((MIN_ENVIRONMENT_FAILURES - 1) * step).toBeGreaterThanOrEqual(ENVIRONMENT_FAILURE_BUDGET_MS);
    // A failed write leaves no empty streak file behind, nor a temporary one, nor an attempt directory.
    expect(existsSync(join(versionDir, ENVIRONMENT_STREAK_FILE))).toBe(false);
    expect(readdirSync(versionDir)).toEqual([]);
  });
});
