import fs from 'node:fs';
import path from 'node:path';
import { readProcInfo } from './proc.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface LockOwner {
  pid: number;
  startTime: string;
}

function readOwner(lockDir: string): LockOwner | undefined {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(path.join(lockDir, 'owner.json'), 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'pid' in parsed && 'startTime' in parsed) {
      const { pid, startTime } = parsed;
      if (typeof pid === 'number' && typeof startTime === 'string') return { pid, startTime };
    }
  } catch {
    // missing or half-written
  }
  return undefined;
}

function ownerAlive(owner: LockOwner): boolean {
  const info = readProcInfo(owner.pid);
  return info !== undefined && !info.zombie && info.startTime === owner.startTime;
}

/**
 * A cross-process mutex (mkdir is atomic) so two `stack up`/`down` runs never race each other.
 * A lock whose owner died is taken over. Returns the release function.
 */
export async function acquireLock(
  lockDir: string,
  options: { timeoutMs: number; log?: (line: string) => void },
): Promise<() => void> {
  const deadline = Date.now() + options.timeoutMs;
  const self = readProcInfo(process.pid);
  const me: LockOwner = { pid: process.pid, startTime: self?.startTime ?? 'unknown' };
  let announced = false;
  fs.mkdirSync(path.dirname(lockDir), { recursive: true });
  for (;;) {
    try {
      fs.mkdirSync(lockDir);
      fs.writeFileSync(path.join(lockDir, 'owner.json'), JSON.stringify(me));
      return () => fs.rmSync(lockDir, { recursive: true, force: true });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const owner = readOwner(lockDir);
    let stale = false;
    if (owner === undefined) {
      // Either being written right now, or its writer died between mkdir and write.
      try {
        stale = Date.now() - fs.statSync(lockDir).mtimeMs > 5_000;
      } catch {
        stale = false; // vanished: just retry
      }
    } else {
      stale = !ownerAlive(owner);
    }
    if (stale) {
      options.log?.(`taking over a stale lock ${lockDir}`);
      fs.rmSync(lockDir, { recursive: true, force: true });
      continue;
    }
    if (Date.now() >= deadline) {
      throw new Error(`timed out waiting for ${lockDir} (held by pid ${owner?.pid ?? 'unknown'})`);
    }
    if (!announced) {
      options.log?.(`waiting for another stack command (pid ${owner?.pid ?? 'unknown'}) to finish`);
      announced = true;
    }
    await sleep(250);
  }
}
