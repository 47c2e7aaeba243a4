import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const MAIN = resolve(import.meta.dirname, '../src/main.ts');

describe('the demo with a bad DRIFTLINE_STACK_* variable (found by a review: "demo failed", exit 1)', () => {
  it('exits 78 with one line naming the variable, before any stack is touched', async () => {
    // loadConfig refuses the value first thing in stackUp: no lock, no state dir, no process.
    const outcome = await run(process.execPath, ['--import', 'tsx', '--conditions=source', MAIN], {
      env: { ...process.env, DRIFTLINE_STACK_REDIS_PORT: 'abc', DRIFTLINE_STACK_DIR: '/nonexistent/f5-stack' },
    }).then(
      () => ({ code: 0, stderr: '' }),
      (err: { code: number; stderr: string }) => err,
    );
    expect(outcome.code).toBe(78);
    expect(outcome.stderr).toBe('demo: DRIFTLINE_STACK_REDIS_PORT must be a TCP port number (got "abc")\n');
  }, 30_000);
});
