import { Worker } from 'node:worker_threads';
import { ConfigError, DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { awaitStarted, startFailure } from '../src/worker.js';

/** A thread that posts what `startFailure` makes of `error` (built in the thread). */
function failingThread(errorSource: string): Worker {
  const core = import.meta.resolve('@driftline/core');
  const worker = new URL('../src/worker.ts', import.meta.url).href;
  const tsx = import.meta.resolve('tsx/esm/api');
  const body = `
    const { register } = await import(${JSON.stringify(tsx)});
    register();
    const { parentPort } = await import('node:worker_threads');
    const { ConfigError } = await import(${JSON.stringify(core)});
    const { startFailure } = await import(${JSON.stringify(worker)});
    parentPort.postMessage(startFailure(${errorSource}));
  `;
  return new Worker(`(async () => {${body}})()`, { eval: true });
}

describe('a worker thread that fails to start', () => {
  it('throws a ConfigError of the thread as the ConfigError it was (a wrong variable, not a bug)', async () => {
    const thread = failingThread(`new ConfigError('DRIFTLINE_X_PORT', 'cannot listen on 127.0.0.1:1: in use')`);
    const error = await awaitStarted(thread, 'started', 'test thread').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(ConfigError);
    expect(error).toMatchObject({
      field: 'DRIFTLINE_X_PORT',
      message: 'DRIFTLINE_X_PORT: cannot listen on 127.0.0.1:1: in use',
    });
  });

  it('throws any other failure as an internal error naming the thread', async () => {
    const thread = failingThread(`new Error('boom')`);
    const error = await awaitStarted(thread, 'started', 'test thread').catch((e: unknown) => e);
    expect(error).not.toBeInstanceOf(ConfigError);
    expect(error).toBeInstanceOf(DriftlineError);
    expect(error).toMatchObject({ code: 'INTERNAL', message: 'test thread failed to start: boom' });
    expect(startFailure('text')).toEqual({ type: 'failed', message: 'text' });
  });
});
