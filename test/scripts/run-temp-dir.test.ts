import { existsSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { endRunTempDir, useRunTempDir } from './run-temp-dir.js';

describe('useRunTempDir', () => {
  it('points TMPDIR at a new folder once, and a second call (the config evaluated again) keeps it', () => {
    const env: NodeJS.ProcessEnv = { TMPDIR: tmpdir() };
    const dir = useRunTempDir(env);
    expect(existsSync(dir)).toBe(true);
    expect(dirname(dir)).toBe(tmpdir());
    // Sticky and open to all, as /tmp is: processes of other users make folders in it.
    expect(statSync(dir).mode & 0o7777).toBe(0o1777);
    expect(env.TMPDIR).toBe(dir);
    expect(useRunTempDir(env)).toBe(dir);
    expect(env.TMPDIR).toBe(dir);
  });

  it('makes a new folder when TMPDIR no longer points at the inherited one', () => {
    const env: NodeJS.ProcessEnv = { TMPDIR: tmpdir(), DRIFTLINE_TEST_TMPDIR: '/elsewhere/driftline-test-x' };
    const dir = useRunTempDir(env);
    expect(dir).not.toBe('/elsewhere/driftline-test-x');
    expect(env.DRIFTLINE_TEST_TMPDIR).toBe(dir);
  });
});

describe('endRunTempDir', () => {
  const filledDir = () => {
    const dir = mkdtempSync(join(tmpdir(), 'run-temp-'));
    mkdirSync(join(dir, 'a', 'b'), { recursive: true });
    writeFileSync(join(dir, 'a', 'b', 'part'), 'x');
    return dir;
  };

  it('removes the folder and everything in it after a passing run, saying nothing', () => {
    const dir = filledDir();
    expect(endRunTempDir(dir, 0, false)).toBeUndefined();
    expect(existsSync(dir)).toBe(false);
  });

  it('keeps it after a failed run, or when asked, and says where', () => {
    const failed = filledDir();
    expect(endRunTempDir(failed, 1, false)).toBe(`test temporary files kept in ${failed}`);
    expect(existsSync(join(failed, 'a', 'b', 'part'))).toBe(true);
    const kept = filledDir();
    expect(endRunTempDir(kept, 0, true)).toBe(`test temporary files kept in ${kept}`);
    expect(existsSync(kept)).toBe(true);
  });
});
