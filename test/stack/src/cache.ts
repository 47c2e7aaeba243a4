import fs from 'node:fs';
import path from 'node:path';
import { inDir } from './dir-error.js';
import { acquireLock } from './lock.js';

/** How long a cold download may hold a cache lock of another run (mvn and Apicurio's ~110 MB). */
const CACHE_LOCK_TIMEOUT_MS = 20 * 60_000;

/**
 * Runs `fill` holding `<cacheDir>/.<name>.lock`: the one way every cached artifact is fetched, so
 * two runs sharing a cold cache never write the same files at once (fixed `.part` names and an
 * unlocked extraction had corrupted each other's downloads). Call it after a cheap unlocked
 * "already cached?" check and check again inside `fill`: another run may have filled it meanwhile.
 * A file-system error in the cache dir (read-only, full) is one line naming it and
 * DRIFTLINE_STACK_CACHE_DIR (see dirError).
 */
export async function withCacheLock<T>(
  cacheDir: string,
  name: string,
  options: { log?: (line: string) => void; signal?: AbortSignal | undefined },
  fill: () => Promise<T>,
): Promise<T> {
  return inDir({ what: 'cache dir', dir: cacheDir, variable: 'DRIFTLINE_STACK_CACHE_DIR' }, async () => {
    fs.mkdirSync(cacheDir, { recursive: true });
    const release = await acquireLock(path.join(cacheDir, `.${name}.lock`), {
      timeoutMs: CACHE_LOCK_TIMEOUT_MS,
      ...options,
    });
    try {
      return await fill();
    } finally {
      release();
    }
  });
}

/**
 * Removes entries of `dir` whose names start with one of `prefixes`: temp files and folders a
 * killed download or extraction left. Only call it holding the cache lock that guards them.
 */
export function removeLeftovers(dir: string, prefixes: readonly string[]): string[] {
  let entries: string[];
  try {
    entries = fs.readdirSync(dir);
  } catch {
    return [];
  }
  const removed = entries.filter((e) => prefixes.some((p) => e.startsWith(p)));
  for (const e of removed) fs.rmSync(path.join(dir, e), { recursive: true, force: true });
  return removed;
}
