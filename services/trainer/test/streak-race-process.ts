/**
 * One process of the streak store's race test (environment-streak-store.test.ts), as two trainers
 * on one request are (the old owner after a rebalance). Once loaded it creates `<go>.<role>.<pid>`
 * and starts when `<go>` exists, so that every process runs at once:
 * - `writer <dir> <go> <writes>`: writes streaks into `<dir>`, counting the renames that fail;
 * - `reader <dir> <go> <stop>`: reads them as a restarted trainer does (a fresh store: nothing in
 *   memory) until `<stop>` exists, counting the reads that find no streak once the file exists.
 * Prints its counts as one JSON line.
 */
import * as fs from 'node:fs';
import { join } from 'node:path';
import { ENVIRONMENT_STREAK_FILE, environmentStreakStore, type StreakFs } from '../src/environment-streak-store.js';

const [role, dir = '', go = '', arg = ''] = process.argv.slice(2);
fs.writeFileSync(`${go}.${role}.${process.pid}`, '');
const pause = new Int32Array(new SharedArrayBuffer(4));
while (!fs.existsSync(go)) Atomics.wait(pause, 0, 0, 2);
if (role === 'writer') {
  let failedRenames = 0;
  const counting: StreakFs = {
    ...fs,
    renameSync: (from, to) => {
      try {
        fs.renameSync(from, to);
      } catch (error) {
        failedRenames++;
        throw error;
      }
    },
  };
  const store = environmentStreakStore(counting);
  const writes = Number(arg);
  for (let i = 0; i < writes; i++) store.write(dir, { failures: i + 1, since: 0, last: i });
  console.log(JSON.stringify({ writes, failedRenames }));
} else {
  const file = join(dir, ENVIRONMENT_STREAK_FILE);
  let reads = 0;
  let none = 0;
  while (!fs.existsSync(arg)) {
    if (!fs.existsSync(file)) continue;
    reads++;
    if (environmentStreakStore().read(dir) === undefined) none++;
  }
  console.log(JSON.stringify({ reads, none }));
}
