import type { Worker } from 'node:worker_threads';
import { DriftlineError } from '@driftline/core';
import { ModelFormatError } from '@driftline/scoring';
import { startWorker } from '@driftline/service/worker';
import { type VersionLoader, versionFromCompiled } from './artifacts.js';
import type { FromLoadThread, LoadFailure, LoadThreadData, ToLoadThread } from './load-thread-protocol.js';

export interface ThreadedLoader {
  readonly load: VersionLoader;
  /** Ends the thread; loads in flight reject. */
  close(): Promise<void>;
}

function errorOf(failure: LoadFailure): Error {
  switch (failure.kind) {
    case 'format':
      return new ModelFormatError(failure.field, failure.message);
    case 'driftline':
      return new DriftlineError(failure.code, failure.message, { retriable: failure.retriable });
    default:
      return new DriftlineError('INTERNAL', failure.message);
  }
}

/**
 * `artifactLoader` on a thread of its own: model.json is read, parsed and compiled there, and the
 * compiled arrays are transferred back, so the serving thread only wraps them. Parsing a model on
 * the serving thread held every request for as long: 150 ms for a 10 MB model of 2,200 trees,
 * seconds for one near the 256 MiB file bound. The thread starts with the first load and does not
 * keep the process alive; if it dies (out of memory on a huge model), the loads in flight fail
 * (the stage retries take them again) and the next load starts a new one.
 */
export function threadedArtifactLoader(
  dir: string,
  options: {
    /** Called with each thread started (tests end it as a crash would). */
    readonly onWorker?: (worker: Worker) => void;
  } = {},
): ThreadedLoader {
  let worker: Worker | undefined;
  let closed = false;
  let nextId = 0;
  const pending = new Map<number, { resolve: (v: FromLoadThread) => void; reject: (e: Error) => void }>();

  const failAll = (error: Error) => {
    for (const p of pending.values()) p.reject(error);
    pending.clear();
  };
  const thread = (): Worker => {
    if (worker !== undefined) return worker;
    const w = startWorker(import.meta.url, 'load-worker', { dir } satisfies LoadThreadData);
    w.on('message', (message: FromLoadThread) => {
      const p = pending.get(message.id);
      if (p === undefined) return;
      pending.delete(message.id);
      p.resolve(message);
    });
    const gone = (why: string) => {
      if (worker !== w) return;
      worker = undefined;
      failAll(new DriftlineError('INTERNAL', `the model load thread ${why}`, { retriable: true }));
    };
    w.on('error', (error) => gone(`failed: ${error.message}`));
    w.on('exit', (code) => gone(`exited with code ${code}`));
    worker = w;
    options.onWorker?.(w);
    return w;
  };

  return {
    async load(model, version) {
      if (closed) throw new DriftlineError('SOURCE_UNAVAILABLE', 'the model load thread is closed');
      const id = nextId++;
      const w = thread();
      // Kept alive while it works, not while it idles.
      w.ref();
      const reply = await new Promise<FromLoadThread>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        w.postMessage({ id, model, version } satisfies ToLoadThread);
      }).finally(() => {
        if (pending.size === 0) w.unref();
      });
      if (reply.type === 'failed') throw errorOf(reply.error);
      return versionFromCompiled(model, version, reply.version);
    },
    async close() {
      closed = true;
      const w = worker;
      worker = undefined;
      failAll(new DriftlineError('SOURCE_UNAVAILABLE', 'the model load thread is closed'));
      await w?.terminate();
    },
  };
}
