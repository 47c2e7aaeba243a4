// `driftline run` whose DRIFTLINE_CLICKHOUSE_PATH can never be the embedded engine's directory: one
// configuration line at start-up, exit 78, at once. Found by a review: a path under a regular file
// was "internal error: ENOTDIR … report it" (exit 1), and a warehouse whose `store/` is a file —
// classified `environment` since the engine's ENOTDIR is the deployment's — was retried for
// DRIFTLINE_STARTUP_TIMEOUT before the service gave up.
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { serviceEnv, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';

const stack = inject('stack');
const execFileAsync = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const fixture = fileURLToPath(new URL('fixtures/table.csv', import.meta.url));
const cli = ['--import', 'tsx', '--conditions=source', 'services/cli/src/main.ts'];
const work = mkdtempSync(join(tmpdir(), 'driftline-startup-path-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

// Long enough that a retried start-up is told apart from a refusal at once, which is bounded by half
// of it: a refusal through tsx (its start-up, mostly) took 30 s at a load average of 23, beside the
// other test of this file.
const STARTUP_TIMEOUT_S = 90;

async function driftline(args: readonly string[], vars: Record<string, string>) {
  const env = serviceEnv(stack, {
    DRIFTLINE_TOPIC_PREFIX: `${uniqueName('path')}.`,
    DRIFTLINE_HTTP_PORT: '0',
    DRIFTLINE_STARTUP_TIMEOUT: `${STARTUP_TIMEOUT_S}s`,
    ...vars,
  });
  const started = Date.now();
  const { code, stdout, stderr } = await execFileAsync(process.execPath, [...cli, ...args], {
    cwd: root,
    env,
    timeout: 2 * STARTUP_TIMEOUT_S * 1000,
  }).then(
    ({ stdout, stderr }) => ({ code: 0, stdout, stderr }),
    (error: { code: number; stdout: string; stderr: string }) => error,
  );
  return { code, stdout, stderr, seconds: (Date.now() - started) / 1000 };
}

// Side by side: each test has its own engine directory and topic prefix. A test's limit lets a
// start-up retried for DRIFTLINE_STARTUP_TIMEOUT (the defect) fail on its bound, not on the limit.
describe.concurrent('driftline run: a DRIFTLINE_CLICKHOUSE_PATH that cannot be the engine directory fails start-up at once', {
  timeout: 3 * STARTUP_TIMEOUT_S * 1000,
}, () => {
  it('under a regular file: one configuration line naming the variable and the file, exit 78', async () => {
    const file = join(work, 'afile');
    writeFileSync(file, '');
    const path = join(file, 'chdb');
    const run = await driftline(['run', 'retrain-trigger'], { DRIFTLINE_CLICKHOUSE_PATH: path });
    expect({ code: run.code, stderr: run.stderr }).toEqual({
      code: 78,
      stderr: `driftline: configuration error: DRIFTLINE_CLICKHOUSE_PATH: ${path} cannot be a directory: ${file} is a regular file, not a directory\n`,
    });
    expect(run.stdout).not.toMatch(/retrying/);
    expect(run.seconds).toBeLessThan(STARTUP_TIMEOUT_S / 2);
  });

  it('a warehouse whose store/ is a plain file: not retried for DRIFTLINE_STARTUP_TIMEOUT, one line, exit 78', async () => {
    const path = join(work, 'chdb');
    const made = await driftline(['reference', '--model', 'm', '--version', 'v1', '--file', fixture], {
      DRIFTLINE_CLICKHOUSE_PATH: path,
    });
    expect(made.code, made.stderr).toBe(0);
    rmSync(join(path, 'store'), { recursive: true });
    writeFileSync(join(path, 'store'), '');
    const run = await driftline(['run', 'retrain-trigger'], { DRIFTLINE_CLICKHOUSE_PATH: path });
    expect({ code: run.code, stderr: run.stderr }).toEqual({
      code: 78,
      stderr: `driftline: configuration error: DRIFTLINE_CLICKHOUSE_PATH: ${path} is damaged: store is a regular file, not a directory, so the engine cannot read its tables — restore the directory from a backup, or point DRIFTLINE_CLICKHOUSE_PATH at another\n`,
    });
    expect(run.stdout).not.toMatch(/retrying/);
    expect(run.seconds).toBeLessThan(STARTUP_TIMEOUT_S / 2);
  });
});
