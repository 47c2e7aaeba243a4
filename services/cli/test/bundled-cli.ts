// The `driftline` that the unit tests start as a child process: one esbuild bundle of the current
// sources per test file (what `make build` ships), not `node --import tsx src/main.ts`, which
// compiled the CLI's module graph again in every child (about 0.6 s a call, several seconds under
// load). The sources' own entry stays covered by the integration tests that start it through tsx.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll } from 'vitest';
import { freshBundle } from './fresh-bundle.js';

/**
 * Builds a fresh bundle before the calling file's tests and removes it after them. Returns a
 * function, for use inside tests, that gives the bundle's main.js (what node runs: `node <main.js>
 * <command> ...`).
 */
export function bundledCli(name: string): () => string {
  let bundle: { main: string; remove: () => Promise<void> } | undefined;
  // A loaded machine can take several seconds to bundle; the default hook limit is 10 s.
  beforeAll(async () => {
    bundle = await freshBundle(name);
  }, 60_000);
  afterAll(async () => {
    await bundle?.remove();
  });
  return () => {
    if (bundle === undefined) throw new Error('bundledCli: the bundle is built in beforeAll; call this inside a test');
    return bundle.main;
  };
}

/** The environment of the tests without any DRIFTLINE_* variable of the machine running them, plus `extra`. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('DRIFTLINE_')));
  return { ...env, ...extra };
}

/**
 * Runs the bundle (`main`, from bundledCli) with `args` in services/cli, in `cleanEnv(vars)`;
 * resolves to its exit status and stderr.
 */
export function runBundled(
  main: string,
  args: readonly string[],
  vars: Record<string, string>,
): Promise<{ status: number | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [main, ...args], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: cleanEnv(vars),
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.on('error', reject);
    child.on('close', (status) => resolve({ status, stderr }));
  });
}
