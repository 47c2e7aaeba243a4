import type { Worker } from 'node:worker_threads';
import { DriftlineError, serialByKey } from '@driftline/core';
import { ModelFormatError } from '@driftline/scoring';
import { startWorker } from '@driftline/service/worker';
import { type VersionLoader, versionFromCompiled } from './artifacts.js';
import type { FromLoadThread, LoadFailure, LoadThreadData, ToLoadThread } from './load-thread-protocol.js';

/**
 * Deaths of the load thread while it loads one version before that version fails for good (not
 * retriable). Fewer and an unlucky moment (the machine short of memory once) gives up a good
 * version; more and a model that takes more memory than the thread has kills it again each time.
 */
export const MAX_LOAD_THREAD_DEATHS = 3;

/** The load thread died (out of memory, a crash) during a load: retriable, up to {@link MAX_LOAD_THREAD_DEATHS}. */
class LoadThreadDiedError extends DriftlineError {
  constructor(message: string) {
    super('INTERNAL', message, { retriable: true });
    this.name = 'LoadThreadDiedError';
  }
}

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
 * keep the process alive. Loads run on it one at a time, so a thread that dies (out of memory on a
 * huge model) names the version it died on: that load fails, retriably for its first
 * {@link MAX_LOAD_THREAD_DEATHS} − 1 deaths and then for good (a version that kills the thread was
 * retried every minute for ever, a new thread each time), and the next load starts a new thread.
 * The loads waiting behind it are not failed. (Several loads at once on the thread failed them all
 * with it, so no death could be blamed on one version.)
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
  // Deaths of the thread by `model/version` since that version last loaded or was given up.
  const deaths = new Map<string, number>();
  const oneAtATime = serialByKey();

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
      failAll(new LoadThreadDiedError(`the model load thread ${why}`));
    };
    w.on('error', (error) => gone(`failed: ${error.message}`));
    w.on('exit', (code) => gone(`exited with code ${code}`));
    worker = w;
    options.onWorker?.(w);
    return w;
  };
  const closedError = () => new DriftlineError('SOURCE_UNAVAILABLE', 'the model load thread is closed');

  const loadOnThread = async (model: string, version: string): Promise<FromLoadThread> => {
    if (closed) throw closedError();
    const id = nextId++;
    const w = thread();
    // Kept alive while it works, not while it idles.
    w.ref();
    const key = `${model}/${version}`;
    try {
      const reply = await new Promise<FromLoadThread>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        w.postMessage({ id, model, version } satisfies ToLoadThread);
      });
      deaths.delete(key);
      return reply;
    } catch (error) {
      if (!(error instanceof LoadThreadDiedError)) throw error;
      const died = (deaths.get(key) ?? 0) + 1;
      if (died < MAX_LOAD_THREAD_DEATHS) {
        deaths.set(key, died);
        throw new LoadThreadDiedError(
          `model ${model} version ${version}: ${error.message} while loading it (${died} of ${MAX_LOAD_THREAD_DEATHS} times)`,
        );
      }
      // Counted afresh if it is asked for again (models.v1 publishes it again).
      deaths.delete(key);
      throw new DriftlineError(
        'INTERNAL',
        `model ${model} version ${version}: ${error.message} while loading it, ${died} times: given up (too large for the memory of the load thread?)`,
        { cause: error },
      );
    } finally {
      if (pending.size === 0) w.unref();
    }
  };

  return {
    async load(model, version) {
      if (closed) throw closedError();
      const reply = await oneAtATime('thread', () => loadOnThread(model, version));
      if (reply.type === 'failed') throw errorOf(reply.error);
      return versionFromCompiled(model, version, reply.version);
    },
    async close() {
      closed = true;
      const w = worker;
      worker = undefined;
      failAll(closedError());
      await w?.terminate();
    },
  };
}
