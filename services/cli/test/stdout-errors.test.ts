import { spawn, spawnSync } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const cwd = fileURLToPath(new URL('..', import.meta.url));
const CLI = ['--import', 'tsx', '--conditions=source', 'src/main.ts'];

describe('output that cannot be written (found by a review)', () => {
  it('stdout on a full device: one line on stderr and exit 1 (`model-card > /dev/full` exited 0)', () => {
    const full = openSync('/dev/full', 'w');
    try {
      const run = spawnSync(process.execPath, [...CLI, '--help'], {
        cwd,
        stdio: ['ignore', full, 'pipe'],
        encoding: 'utf8',
      });
      expect({ status: run.status, stderr: run.stderr }).toEqual({
        status: 1,
        stderr:
          'driftline: cannot write the output: ENOSPC: no space left on device, write — no space left on that file system: free space or inodes (df -h, df -i) and start again\n',
      });
    } finally {
      closeSync(full);
    }
  }, 30_000);

  it('a reader that went away (EPIPE, `| head`) is no error: the command exits with its own code, saying nothing', async () => {
    const child = spawn(process.execPath, [...CLI, '--help'], { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const status = await new Promise<number | null>((done) => child.on('close', (code) => done(code)));
    expect({ status, stderr }).toEqual({ status: 0, stderr: '' });
  }, 30_000);
});
