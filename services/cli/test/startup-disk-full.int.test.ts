// `driftline run` on a full disk: opening the embedded engine is an outage, retried for
// DRIFTLINE_STARTUP_TIMEOUT, then one line saying what to do. Found by a review: the engine printed
// "Code: 76 … errno: 28 … No space left on device", then "internal error: Failed to create
// connection … report it", exit 1 after a second, a restart loop under `restart: unless-stopped`.
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { serviceEnv, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';

const stack = inject('stack');
const execFileAsync = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));

// A tmpfs whose every inode is taken, mounted in a mount namespace of the child's own (root, or an
// unprivileged user namespace), then the CLI from source on a data directory there.
const SCRIPT = `set -e
mount -t tmpfs -o size=16m,nr_inodes=64 driftline-test "$1"
mkdir "$1/chdb"
i=0; while touch "$1/fill-$i" 2>/dev/null; do i=$((i+1)); done
shift
exec "$@"`;
const namespace = ['unshare', '--mount', '--map-root-user'];
const canMount = spawnSync(namespace[0]!, [...namespace.slice(1), 'true']).status === 0;

describe('driftline run: the embedded engine on a full disk at start-up', () => {
  it.skipIf(!canMount)(
    'retries for DRIFTLINE_STARTUP_TIMEOUT, then exits with one line naming the path and ENOSPC, never "internal error … report it"',
    async () => {
      const disk = mkdtempSync(join(tmpdir(), 'driftline-full-'));
      const env = serviceEnv(stack, {
        DRIFTLINE_CLICKHOUSE_PATH: join(disk, 'chdb'),
        DRIFTLINE_TOPIC_PREFIX: `${uniqueName('full')}.`,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_STARTUP_TIMEOUT: '3s',
      });
      const cli = [process.execPath, '--import', 'tsx', '--conditions=source', 'services/cli/src/main.ts'];
      // Exits 1: execFile rejects with its output.
      const { code, stdout, stderr } = await execFileAsync(
        namespace[0]!,
        [...namespace.slice(1), 'sh', '-c', SCRIPT, 'sh', disk, ...cli, 'run', 'retrain-trigger'],
        { cwd: root, env, timeout: 60_000 },
      ).then(
        () => ({ code: 0, stdout: '', stderr: '' }),
        (error: { code: number; stdout: string; stderr: string }) => error,
      );
      rmSync(disk, { recursive: true, force: true });

      const retries = `${stdout}${stderr}`
        .split('\n')
        .filter((line) => line.includes('start-up failed on an unreachable backend: retrying'));
      expect(retries.length, stdout + stderr).toBeGreaterThan(0);
      expect(retries[0]).toContain('ENOSPC');
      expect(code).toBe(1);
      const lines = stderr.trim().split('\n');
      expect(lines.at(-1)).toMatch(
        new RegExp(
          `^driftline: clickhouse: the embedded engine cannot write its data directory ${join(disk, 'chdb')} \\(DRIFTLINE_CLICKHOUSE_PATH\\): ENOSPC: no space left on device, .* — no space left on that file system: free space or inodes \\(df -h, df -i\\) and start again$`,
        ),
      );
      expect(stdout + stderr).not.toMatch(/internal error|report it|Code: 76|Failed to create connection/);
    },
  );
});
