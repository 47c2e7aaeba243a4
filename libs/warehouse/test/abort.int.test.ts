// The embedded engine installs ClickHouse's fatal-signal handler, which waits up to 300 s for a
// stack-printing thread chdb does not run: a process out of JS heap (V8 calls abort()) froze 5
// minutes before it died, and its supervisor restarted it that much later (found by a review: 304 s,
// against 0.3 s without the engine). Opening the engine gives SIGABRT its default action back.
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const fixture = fileURLToPath(new URL('./fixtures/abort-process.ts', import.meta.url));
// Well under the handler's 300 s; the engine's start and tsx take a few seconds on a loaded machine.
const EXIT_BOUND_MS = 60_000;

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface Exit {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stderr: string;
  /** From the engine's `engine open` line (or the start, without one) to the exit. */
  readonly afterOpenMs: number;
}

/** Starts the fixture with `heapMb` of old space; `onOpen` runs when the engine has answered. Killed past the bound. */
function run(mode: 'oom' | 'wait', heapMb: number, onOpen: (child: ChildProcess) => void = () => {}): Promise<Exit> {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-abort-'));
  dirs.push(dir);
  const child = spawn(
    process.execPath,
    [`--max-old-space-size=${heapMb}`, '--conditions=source', '--import', 'tsx', fixture, join(dir, 'chdb'), mode],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  let openedAt: number | undefined;
  const started = Date.now();
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    stderr += chunk;
    if (openedAt === undefined && stderr.includes('engine open\n')) {
      openedAt = Date.now();
      onOpen(child);
    }
  });
  let bound: NodeJS.Timeout | undefined;
  return new Promise<Exit>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(bound);
      resolve({ code, signal, stderr, afterOpenMs: Date.now() - (openedAt ?? started) });
    });
    bound = setTimeout(() => child.kill('SIGKILL'), EXIT_BOUND_MS);
  });
}

describe('a process with the embedded engine open ends at once on SIGABRT', () => {
  it('out of JS heap: V8 aborts and the process is gone within seconds, with the OOM line on stderr', async () => {
    const exit = await run('oom', 64);
    expect(exit.stderr).toContain('engine open');
    expect(exit.signal, exit.stderr.slice(-2_000)).toBe('SIGABRT'); // not our SIGKILL at the bound
    expect(exit.code).toBeNull();
    expect(exit.stderr).toContain('JavaScript heap out of memory');
    expect(exit.afterOpenMs).toBeLessThan(EXIT_BOUND_MS / 2);
  });

  it('`kill -ABRT` from outside ends it at once too (a supervisor asking for a core dump)', async () => {
    const exit = await run('wait', 256, (child) => child.kill('SIGABRT'));
    expect(exit.stderr).toContain('engine open');
    expect(exit.signal).toBe('SIGABRT');
    expect(exit.afterOpenMs).toBeLessThan(EXIT_BOUND_MS / 2); // not the 300 s freeze; slack for a loaded run
  });
});
