// Worker threads started by file name, the same way from the sources and from the bundle.
// Exported as `@driftline/service/worker` (no other import: the CLI loads it on demand).
import { Worker } from 'node:worker_threads';

/**
 * Starts the worker module `name` (without extension) that sits next to the caller's module
 * (`callerUrl`: its import.meta.url): `name.js` in the bundle, `name.ts` in the sources. Under tsx
 * (development, tests) the worker must register tsx itself: workers do not inherit the
 * `--import tsx` hook of the main thread.
 */
export function startWorker(callerUrl: string, name: string, workerData: unknown): Worker {
  const entry = new URL(callerUrl.endsWith('.ts') ? `./${name}.ts` : `./${name}.js`, callerUrl);
  if (!entry.pathname.endsWith('.ts')) return new Worker(entry, { workerData });
  const tsx = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsx)}).then((m) => { m.register(); return import(${JSON.stringify(entry.href)}); })`;
  return new Worker(boot, { eval: true, workerData });
}
