import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * Points TMPDIR at a new folder for one test run and removes it when the run's process exits.
 * Everything the run writes through `os.tmpdir()` lands there: the tests' folders, embedded
 * ClickHouse data, spawned services' and Python's scratch (children inherit TMPDIR). A run used to
 * leave ~200 folders (~220 MB) in /tmp. A failed run keeps its folder for a look and says where;
 * DRIFTLINE_TEST_KEEP_TMP=1 keeps it always. Call it before any worker starts (the vitest config);
 * vitest evaluates its config more than once per run (once per project), and a process that
 * already has a run folder (or inherited one) keeps it.
 */
export function useRunTempDir(env: NodeJS.ProcessEnv = process.env): string {
  const inherited = env.DRIFTLINE_TEST_TMPDIR;
  if (inherited !== undefined && inherited !== '' && env.TMPDIR === inherited) return inherited;
  const dir = mkdtempSync(join(tmpdir(), 'driftline-test-'));
  // Like /tmp itself (sticky, anyone may create): tests run processes as another user (the
  // warehouse's permission tests run one as nobody), and those make folders here too.
  chmodSync(dir, 0o1777);
  env.TMPDIR = dir;
  env.DRIFTLINE_TEST_TMPDIR = dir;
  const keepAlways = /^(1|true|yes)$/i.test(env.DRIFTLINE_TEST_KEEP_TMP ?? '');
  process.once('exit', (code) => {
    const said = endRunTempDir(dir, code, keepAlways);
    if (said !== undefined) process.stderr.write(`${said}\n`);
  });
  return dir;
}

/** Removes a run's folder when the run passed (exit code 0) and not `keep`; returns a line to show, if any. */
export function endRunTempDir(dir: string, exitCode: number, keep: boolean): string | undefined {
  if (keep || exitCode !== 0) return `test temporary files kept in ${dir}`;
  try {
    // The workers and the services they spawned have stopped: nothing writes here any more.
    rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    return undefined;
  } catch (error) {
    return `could not remove test temporary files in ${dir}: ${(error as Error).message}`;
  }
}
