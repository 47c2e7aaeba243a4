// A full inode table, a read-only data directory and a process out of file descriptors, on the real
// embedded engine: each is an outage (SINK_UNAVAILABLE, retried), never a record for the DLQ, and the
// engine writes again once the resource is back. Found by a review: they were `unknown`, so every
// record of a batch went to the DLQ and its offset was committed; and start-up on a full disk exited
// at once with "internal error … report it".
import { execFile, spawnSync } from 'node:child_process';
import { chownSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/exhaustion-process.ts', import.meta.url));
const execFileAsync = promisify(execFile);
const node = [process.execPath, '--conditions=source', '--import', 'tsx', fixture];

interface Step {
  step: string;
  ok: boolean;
  code?: string;
  retriable?: boolean;
  errno?: string;
  message?: string;
}

/**
 * Runs the fixture's steps in a process of its own (`prefix` before node: a mount namespace, another
 * user `owner`, who is given the base directory).
 */
async function run(steps: readonly string[], prefix: readonly string[] = [], owner?: number): Promise<Step[]> {
  const base = mkdtempSync(join(tmpdir(), 'driftline-exhaustion-'));
  if (owner !== undefined) chownSync(base, owner, owner);
  const [command, ...args] = [...prefix, ...node, base, ...steps] as [string, ...string[]];
  try {
    const { stdout } = await execFileAsync(command, args);
    return stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Step);
  } finally {
    rmSync(base, { recursive: true, force: true });
  }
}

const outage = (step: string, errno: string) => ({ step, ok: false, code: 'SINK_UNAVAILABLE', retriable: true, errno });

// Mounting a tmpfs needs a mount namespace: root, or an unprivileged user namespace.
const namespace = ['unshare', '--mount', '--map-root-user'];
const canMount = spawnSync(namespace[0]!, [...namespace.slice(1), 'true']).status === 0;

// A directory's mode binds every user but root: as root, the fixture runs as nobody (65534), as the
// review did.
const NOBODY = 65_534;
const asRoot = process.getuid?.() === 0;
const asOtherUser = asRoot ? ['setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups'] : [];
const canDropRoot = !asRoot || spawnSync(asOtherUser[0]!, [...asOtherUser.slice(1), 'true']).status === 0;

describe('resource exhaustion in the embedded engine is an outage, never a dead letter', () => {
  it('EMFILE: an insert with every file descriptor of the process taken is retriable, and writes once they are back', async () => {
    const steps = await run(['open', 'insert', 'insert-files-full', 'insert', 'count']);
    expect(steps).toMatchObject([
      { step: 'open', ok: true },
      { step: 'insert', ok: true },
      outage('insert-files-full', 'EMFILE'),
      { step: 'insert', ok: true },
      { step: 'count', ok: true },
    ]);
  });

  it.skipIf(!canDropRoot)(
    'EACCES: an insert into a table whose directory this user may no longer write is the environment (retried, the partition paused), and writes once it may again',
    async () => {
      const steps = await run(
        ['open', 'insert', 'insert-unwritable', 'insert', 'count'],
        asOtherUser,
        asRoot ? NOBODY : undefined,
      );
      expect(steps).toMatchObject([
        { step: 'open', ok: true },
        { step: 'insert', ok: true },
        { ...outage('insert-unwritable', 'EACCES'), category: 'environment' },
        { step: 'insert', ok: true },
        { step: 'count', ok: true },
      ]);
      expect(steps[2]?.message).toMatch(/^clickhouse insert into t: STD_EXCEPTION \(1001\): .*Permission denied/);
    },
  );

  it.skipIf(!canMount)(
    'ENOSPC and EROFS: opening on a full inode table, inserting into it or into a read-only data directory is retriable, and writes once the disk is back',
    async () => {
      const steps = await run(
        [
          'mount',
          'open-inodes-full',
          'open',
          'insert',
          'insert-inodes-full',
          'insert',
          'insert-read-only',
          'insert',
          'count',
        ],
        namespace,
      );
      expect(steps).toMatchObject([
        { step: 'mount', ok: true },
        outage('open-inodes-full', 'ENOSPC'),
        { step: 'open', ok: true }, // the same process: start-up's retry opens it
        { step: 'insert', ok: true },
        outage('insert-inodes-full', 'ENOSPC'),
        { step: 'insert', ok: true },
        outage('insert-read-only', 'EROFS'),
        { step: 'insert', ok: true },
        { step: 'count', ok: true },
      ]);
      expect(steps[1]?.message).toMatch(
        /^clickhouse: the embedded engine cannot write its data directory .*\/fs\/chdb \(DRIFTLINE_CLICKHOUSE_PATH\): ENOSPC: no space left on device/,
      );
    },
  );
});
