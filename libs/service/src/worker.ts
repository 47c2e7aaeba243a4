// Worker threads started by file name, the same way from the sources and from the bundle.
// Exported as `@driftline/service/worker` (no other import: the CLI loads it on demand).
import { Worker } from 'node:worker_threads';
import { ConfigError, DriftlineError, type Logger } from '@driftline/core';

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

/**
 * A worker thread's failed start, as it posts it: an error does not survive structured cloning,
 * so a ConfigError travels as its field, to be thrown again as one (exit 78, not a bug to report).
 */
export interface StartFailure {
  readonly type: 'failed';
  readonly message: string;
  readonly field?: string;
}

/** The message a worker thread posts when its start failed with `error`. */
export function startFailure(error: unknown): StartFailure {
  const message = error instanceof Error ? error.message : String(error);
  return error instanceof ConfigError ? { type: 'failed', message, field: error.field } : { type: 'failed', message };
}

/**
 * Waits for a worker thread's first message of type `started` (returned) or `failed` (its
 * `message` thrown); other messages pass by. On failure, or an error before either, the thread is
 * terminated and a DriftlineError naming `what` is thrown; a failure with a `field` (see
 * {@link startFailure}) is thrown as the ConfigError it was.
 */
export async function awaitStarted<M extends { readonly type: string }, S extends M['type']>(
  worker: Worker,
  started: S,
  what: string,
): Promise<Extract<M, { readonly type: S }>> {
  let first: M;
  try {
    first = await new Promise<M>((resolve, reject) => {
      const onMessage = (message: M) => {
        if (message.type !== started && message.type !== 'failed') return;
        worker.off('message', onMessage);
        worker.off('error', reject);
        resolve(message);
      };
      worker.on('message', onMessage);
      worker.once('error', reject);
    });
  } catch (error) {
    await worker.terminate();
    throw new DriftlineError('INTERNAL', `${what} failed to start: ${(error as Error).message}`, { cause: error });
  }
  if (first.type !== started) {
    await worker.terminate();
    const { message: reason, field } = first as Partial<StartFailure>;
    if (typeof field === 'string' && typeof reason === 'string' && reason.startsWith(`${field}: `)) {
      throw new ConfigError(field, reason.slice(field.length + 2));
    }
    throw new DriftlineError(
      'INTERNAL',
      `${what} failed to start: ${typeof reason === 'string' ? reason : first.type}`,
    );
  }
  return first as Extract<M, { readonly type: S }>;
}

/** A log record a worker thread sends to the main thread's logger. */
export interface ForwardedLog {
  readonly type: 'log';
  readonly level: 'debug' | 'info' | 'warn' | 'error';
  readonly obj: Record<string, unknown>;
  readonly msg?: string;
}

/**
 * A worker thread's logger: every record is posted (`post`) for the main thread's logger to write,
 * so a process has one log stream. Errors are flattened: they do not survive structured cloning.
 */
export function forwardingLogger(post: (record: ForwardedLog) => void, bindings: Record<string, unknown>): Logger {
  const at =
    (level: ForwardedLog['level']) =>
    (obj: object, msg?: string): void => {
      const flat: Record<string, unknown> = { ...bindings };
      for (const [k, v] of Object.entries(obj)) {
        flat[k] = v instanceof Error ? { message: v.message, stack: v.stack, name: v.name } : v;
      }
      post({ type: 'log', level, obj: flat, ...(msg === undefined ? {} : { msg }) });
    };
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (more) => forwardingLogger(post, { ...bindings, ...more }),
  };
}
