import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const signalsModule = fileURLToPath(new URL('../src/signals.ts', import.meta.url));

/**
 * A program shaped like `make bench` / `make demo`: work under `abortOnSignals`, its clean-up in a
 * `finally` (stackRelease there), and an `Interrupted` rejection turned into the signal's exit code.
 */
function program(cleanUp: string): string {
  return `
    const { abortOnSignals, Interrupted, unlessAborted } = await import(${JSON.stringify(signalsModule)});
    const controller = new AbortController();
    abortOnSignals(controller, { program: 'prog', warn: (l) => process.stderr.write(l + '\\n') });
    try {
      try {
        process.stdout.write('ready\\n');
        await unlessAborted(new Promise(() => setInterval(() => {}, 1 << 30)), controller.signal);
      } finally {
        ${cleanUp}
      }
    } catch (error) {
      if (!(error instanceof Interrupted)) throw error;
      process.exit(error.exitCode);
    }`;
}

/** Runs `script`, sends `signals` (one each time stdout shows `ready` / after `gapMs`), returns the outcome. */
function interrupt(script: string, signals: NodeJS.Signals[], gapMs: number) {
  return new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script]);
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (d) => {
      stderr += String(d);
    });
    child.stdout.on('data', (d) => {
      const first = !stdout.includes('ready');
      stdout += String(d);
      if (first && stdout.includes('ready')) {
        for (const [i, s] of signals.entries()) setTimeout(() => child.kill(s), i * gapMs);
      }
    });
    child.once('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

describe('abortOnSignals (make bench and make demo on Ctrl-C)', () => {
  it('runs the clean-up in `finally` and exits 130 (the default SIGINT exit skipped it)', async () => {
    const out = await interrupt(program(`process.stdout.write('released\\n');`), ['SIGINT'], 0);
    expect(out.stdout).toContain('released');
    expect(out.stderr).toContain('prog: SIGINT: stopping and cleaning up (again to exit at once)');
    expect(out.code).toBe(130);
  }, 30_000);

  it('exits 143 on SIGTERM, and at once on a second signal while the clean-up hangs', async () => {
    const term = await interrupt(program(`process.stdout.write('released\\n');`), ['SIGTERM'], 0);
    expect(term.code).toBe(143);
    const hung = await interrupt(
      program('await new Promise(() => setInterval(() => {}, 1 << 30));'),
      ['SIGINT', 'SIGINT'],
      1_500,
    );
    expect(hung.stderr).toContain('prog: SIGINT again: exiting now; nothing this prog started is left running');
    expect(hung.code).toBe(130);
  }, 30_000);

  it('takes the signals one Ctrl-C sends through make → pnpm → tsx (SIGINT, SIGINT, SIGTERM at once) as one', async () => {
    const slowCleanUp = `await new Promise((r) => setTimeout(r, 300)); process.stdout.write('released\\n');`;
    const out = await interrupt(program(slowCleanUp), ['SIGINT', 'SIGINT', 'SIGTERM'], 20);
    expect(out.stdout).toContain('released');
    expect(out.stderr).not.toContain('again: exiting now');
    expect(out.code).toBe(130);
  }, 30_000);
});
