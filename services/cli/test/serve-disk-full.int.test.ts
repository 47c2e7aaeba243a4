// `driftline clickhouse serve` on a full disk: opening the engine is an outage, retried for
// DRIFTLINE_STARTUP_TIMEOUT — it listens once the disk has room again, or gives up with one line
// saying what to do. Found by a review: the host skipped the embedded client's checks, printed
// "internal error … report it" and exited 1 at once, a restart loop under a supervisor.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../..', import.meta.url));

// A tmpfs whose every inode is taken, mounted in a mount namespace of the child's own (root, or an
// unprivileged user namespace); once the file $2 exists (when not empty: the test creates it after
// the first retry) the inodes are given back. Then the CLI from source on a data directory there.
// Not after a fixed delay: a loaded run started the CLI after the inodes were back, and saw no
// retry.
const SCRIPT = `set -e
mount -t tmpfs -o size=16m,nr_inodes=64 driftline-test "$1"
mkdir "$1/chdb"
i=0; while touch "$1/fill-$i" 2>/dev/null; do i=$((i+1)); done
if [ -n "$2" ]; then (while [ ! -e "$2" ]; do sleep 0.1; done; rm -f "$1"/fill-*) >/dev/null 2>&1 & fi
shift 2
exec "$@"`;
const namespace = ['unshare', '--mount', '--map-root-user'];
const canMount = spawnSync(namespace[0]!, [...namespace.slice(1), 'true']).status === 0;
const cli = [process.execPath, '--import', 'tsx', '--conditions=source', 'services/cli/src/main.ts'];

interface Serve {
  readonly child: ChildProcess;
  readonly disk: string;
  /** Creating this file gives the inodes back (when the disk is to be freed). */
  readonly freeTrigger: string;
  stdout: string;
  stderr: string;
  readonly exited: Promise<number | null>;
}

const started: Serve[] = [];
afterEach(() => {
  for (const s of started.splice(0)) {
    s.child.kill('SIGKILL');
    rmSync(s.disk, { recursive: true, force: true });
    rmSync(s.freeTrigger, { force: true });
  }
});

/** `driftline clickhouse serve` on a full tmpfs whose inodes come back once `freeTrigger` exists (never unless `freeable`). */
function serve(freeable: boolean, startupTimeout: string): Serve {
  const disk = mkdtempSync(join(tmpdir(), 'driftline-serve-full-'));
  const freeTrigger = `${disk}.free`;
  // Only the host's variables: any other DRIFTLINE_* name is refused (exit 78).
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DRIFTLINE_')));
  const child = spawn(
    namespace[0]!,
    [...namespace.slice(1), 'sh', '-c', SCRIPT, 'sh', disk, freeable ? freeTrigger : '', ...cli, 'clickhouse', 'serve'],
    {
      cwd: root,
      env: {
        ...env,
        DRIFTLINE_CLICKHOUSE_PATH: join(disk, 'chdb'),
        DRIFTLINE_CLICKHOUSE_HOST_PORT: '0',
        DRIFTLINE_STARTUP_TIMEOUT: startupTimeout,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  const s: Serve = {
    child,
    disk,
    freeTrigger,
    stdout: '',
    stderr: '',
    exited: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
  };
  child.stdout?.on('data', (chunk: Buffer) => {
    s.stdout += chunk.toString();
  });
  child.stderr?.on('data', (chunk: Buffer) => {
    s.stderr += chunk.toString();
  });
  started.push(s);
  return s;
}

const retries = (s: Serve) =>
  s.stderr.split('\n').filter((line) => line.includes('start-up failed: the engine cannot open its data directory'));

async function until(condition: () => boolean, timeoutMs: number): Promise<void> {
  for (const end = Date.now() + timeoutMs; !condition(); ) {
    if (Date.now() > end) throw new Error('timed out');
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

describe('driftline clickhouse serve: the embedded engine on a full disk at start-up', () => {
  it.skipIf(!canMount)(
    'retries while the disk is full and listens once it has room, then stops on SIGTERM with exit 0',
    async () => {
      const s = serve(true, '60s');
      await until(() => retries(s).length > 0, 60_000).catch(() => {});
      writeFileSync(s.freeTrigger, '');
      await until(() => s.stdout.includes('"url"'), 60_000).catch(() => {});
      const listening = JSON.parse(s.stdout.trim().split('\n')[0] ?? 'null') as { url?: string } | null;
      expect(listening?.url, s.stdout + s.stderr).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(retries(s).length, s.stderr).toBeGreaterThan(0);
      expect(retries(s)[0]).toContain('ENOSPC');
      // It serves: the engine opened on the directory it could not write at first.
      const answer = await fetch(`${listening!.url}/?query=SELECT%201`);
      expect(await answer.text()).toBe('1\n');
      s.child.kill('SIGTERM');
      expect(await s.exited).toBe(0);
      expect(s.stderr).not.toMatch(/internal error|report it|Failed to create connection/);
    },
  );

  it.skipIf(!canMount)(
    'gives up after DRIFTLINE_STARTUP_TIMEOUT with one line naming the path and ENOSPC, never "internal error … report it"',
    async () => {
      const s = serve(false, '3s');
      const code = await Promise.race([
        s.exited,
        new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 60_000)),
      ]);
      expect(code, s.stdout + s.stderr).toBe(1);
      expect(retries(s).length, s.stderr).toBeGreaterThan(0);
      expect(s.stdout).toBe('');
      expect(s.stderr.trim().split('\n').at(-1)).toMatch(
        new RegExp(
          `^driftline: clickhouse: the embedded engine cannot write its data directory ${join(s.disk, 'chdb')} \\(DRIFTLINE_CLICKHOUSE_PATH\\): ENOSPC: no space left on device, .* — no space left on that file system: free space or inodes \\(df -h, df -i\\) and start again$`,
        ),
      );
      expect(s.stderr).not.toMatch(/internal error|report it|Code: 76|Failed to create connection/);
    },
  );

  it.skipIf(!canMount)('a signal while it waits for the disk stops it at once, exit 0', async () => {
    const s = serve(false, '60s');
    await until(() => retries(s).length > 0, 60_000);
    s.child.kill('SIGTERM');
    expect(await s.exited).toBe(0);
    expect(s.stderr).toContain('driftline: stopped during start-up (SIGTERM); nothing was started');
    expect(s.stdout).toBe('');
  });
});
