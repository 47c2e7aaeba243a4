import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { type SpawnedProcess, spawnDetached } from '../src/proc.js';
import type { ProcessRecord } from '../src/state.js';

/**
 * A temporary folder for one test file's throwaway processes, removed with every process spawned in
 * it (SIGKILL to its group) after the file's tests. Call at the top level of a test file.
 */
export function processSandbox(prefix: string) {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  const spawned: SpawnedProcess[] = [];

  /** Kills `p`'s process group after the file's tests. */
  function track(p: SpawnedProcess): SpawnedProcess {
    spawned.push(p);
    return p;
  }

  /** A throwaway long-running process whose command line carries `marker`. */
  async function sleeper(marker: string): Promise<SpawnedProcess> {
    return track(
      await spawnDetached({
        command: process.execPath,
        args: ['-e', 'setInterval(() => {}, 1 << 30)', marker],
        cwd: root,
        logFile: path.join(root, `${marker}.log`),
      }),
    );
  }

  /** The state.json record of process `p` as service `name`, recognised by `marker`. */
  function record(name: ProcessRecord['name'], p: { pid: number; startTime: string }, marker: string): ProcessRecord {
    return {
      name,
      pid: p.pid,
      startTime: p.startTime,
      markers: [marker],
      port: 1,
      command: ['node', marker],
      cwd: root,
      logFile: path.join(root, `${marker}.log`),
      startedAt: new Date().toISOString(),
    };
  }

  afterAll(() => {
    for (const p of spawned) {
      try {
        process.kill(-p.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    fs.rmSync(root, { recursive: true, force: true });
  });

  return { root, sleeper, record, track };
}
