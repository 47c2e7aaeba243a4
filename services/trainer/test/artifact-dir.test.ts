import { chmodSync, existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { checkArtifactDir, fileEnvironmentCode } from '../src/artifact-dir.js';

const systemError = (code: string) =>
  Object.assign(new Error(`${code}: failed, mkdir '/x'`), { code, syscall: 'mkdir' });

describe('the artifact directory', () => {
  it('classifies permissions, a path through a file and the disk as the environment; nothing else', () => {
    for (const code of ['EACCES', 'EPERM', 'ENOTDIR', 'ENOSPC', 'EROFS'])
      expect(fileEnvironmentCode(systemError(code))).toBe(code);
    // A missing file is part of the trainer's own logic (a completed run or not), never the environment.
    for (const code of ['ENOENT', 'EISDIR', 'EEXIST']) expect(fileEnvironmentCode(systemError(code))).toBeUndefined();
    // A DriftlineError's code is its own: INTERNAL, never a system error.
    expect(fileEnvironmentCode(new DriftlineError('INTERNAL', 'EACCES'))).toBeUndefined();
    expect(fileEnvironmentCode('EACCES')).toBeUndefined();
  });

  it('is created at start-up when missing, and checked by a write that leaves nothing behind', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'trainer-art-check-')), 'a', 'b');
    checkArtifactDir(dir);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('one that cannot be created or written fails start-up with one line naming DRIFTLINE_TRAINER_ARTIFACT_DIR', () => {
    const root = mkdtempSync(join(tmpdir(), 'trainer-art-check-'));
    writeFileSync(join(root, 'file'), '');
    expect(() => checkArtifactDir(join(root, 'file', 'models'))).toThrow(
      new RegExp(`^DRIFTLINE_TRAINER_ARTIFACT_DIR: ${root}/file/models cannot be created: ENOTDIR: [^\\n]*$`),
    );
    expect(() => checkArtifactDir(join(root, 'file'))).toThrow(
      /^DRIFTLINE_TRAINER_ARTIFACT_DIR: .* cannot be created: EEXIST/,
    );
    expect(existsSync(join(root, 'file', 'models'))).toBe(false);
  });

  it.skipIf(process.getuid?.() === 0)(
    'one read-only to the trainer (mode 0555) fails start-up (root is not denied by a mode)',
    () => {
      const dir = mkdtempSync(join(tmpdir(), 'trainer-art-check-'));
      chmodSync(dir, 0o555);
      expect(() => checkArtifactDir(dir)).toThrow(/^DRIFTLINE_TRAINER_ARTIFACT_DIR: .* is not writable: EACCES/);
    },
  );
});
