import type { Worker } from 'node:worker_threads';
import { DriftlineError, serialByKey } from '@driftline/core';
import { ModelFormatError } from '@driftline/scoring';
import { startWorker } from '@driftline/service/worker';
import { type VersionLoader, versionFromCompiled } from './artifacts.js';
import type {
  FromLoadThread,
  LoadFailure,
  LoadThreadData,
  LoadThreadReady,
  ToLoadThread,
} from './load-thread-protocol.js';

/**
 * Deaths of the load thread while it loads one version before that version fails for good (not
 * retriable). Fewer and an unlucky moment (the machine short of memory once) gives up a good
 * version; more and a model that takes more memory than the thread has kills it again each time.
 */
export const MAX_LOAD_THREAD_DEATHS = 3;

/**
 * Longest one load may take on the load thread (stat, read, parse and compile model.json and
 * meta.json) before it fails, retriably, by default (DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT). A 202
 * MiB model of 4 million nodes (near the 256 MiB file bound) took 17 s on a slow machine; a load
 * that never finished (a read on a hung volume) held every later load of every model behind it,
 * silently, and at start-up the instance was never ready. A load that needs longer (a huge model on
 * a machine short of CPU) was abandoned and retried for ever: the variable raises it.
 */
export const LOAD_TIMEOUT_MS = 120_000;

/** The shortest DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT: shorter, ordinary loads under contention would be abandoned. */
export const MIN_LOAD_TIMEOUT_MS = 10_000;

/**
 * Loads past their deadline that have not returned, at most; beyond, no load starts until one
 * returns. A load stuck in a file read (a hung NFS or FUSE mount) holds a thread of libuv's pool
 * (UV_THREADPOOL_SIZE, default 4) until the read returns, whatever becomes of its JS thread; the
 * process's other file reads and DNS lookups (Kafka and Redis reconnections) need that pool too.
 */
export const MAX_ABANDONED_LOADS = 2;

/** The load thread died (out of memory, a crash) during a load: retriable, up to {@link MAX_LOAD_THREAD_DEATHS}. */
class LoadThreadDiedError extends DriftlineError {
  constructor(message: string) {
    super('INTERNAL', message, { retriable: true });
    this.name = 'LoadThreadDiedError';
  }
}

/** A load past its deadline, or not started while loads past theirs have not returned: retriable. */
class LoadTimedOutError extends DriftlineError {
  constructor(message: string) {
    super('TIMEOUT', message, { retriable: true });
    this.name = 'LoadTimedOutError';
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
 *
 * A load that has not answered within `loadTimeoutMs` ({@link LOAD_TIMEOUT_MS}) fails retriably
 * and its thread is abandoned: the next load starts a new thread. The abandoned thread is not
 * terminated while its load is out (terminating it would not end a file read stuck in libuv's
 * pool, and it would hide when that read returns): it is ended when its load answers at last. Until
 * then the same version is not loaded again (each retry on a hung volume would hold one more pool
 * thread), and with {@link MAX_ABANDONED_LOADS} out no load starts; both fail at once, retriably.
 */
export function threadedArtifactLoader(
  dir: string,
  options: {
    /** Called with each thread started (tests end it as a crash would). */
    readonly onWorker?: (worker: Worker) => void;
    /** Longest one load may take (default {@link LOAD_TIMEOUT_MS}). */
    readonly loadTimeoutMs?: number;
    /** Tests: ms a load of `model/version` waits on the thread before it starts (Infinity: never, a read on a hung volume). */
    readonly stall?: Readonly<Record<string, number>>;
  } = {},
): ThreadedLoader {
  let worker: Worker | undefined;
  let closed = false;
  let nextId = 0;
  const pending = new Map<number, { resolve: (v: FromLoadThread) => void; reject: (e: Error) => void }>();
  // Deaths of the thread by `model/version` since that version last loaded or was given up.
  const deaths = new Map<string, number>();
  const oneAtATime = serialByKey();
  const timeoutMs = options.loadTimeoutMs ?? LOAD_TIMEOUT_MS;
  // Threads whose load outlived its deadline, with that load's `model/version`, until it answers.
  const abandoned = new Map<Worker, string>();
  // Resolved once the thread takes loads: a load's deadline counts from then.
  let threadReady: Promise<void> = Promise.resolve();

  const failAll = (error: Error) => {
    for (const p of pending.values()) p.reject(error);
    pending.clear();
  };
  const thread = (): Worker => {
    if (worker !== undefined) return worker;
    const w = startWorker(import.meta.url, 'load-worker', {
      dir,
      ...(options.stall === undefined ? {} : { stall: options.stall }),
    } satisfies LoadThreadData);
    let ready = () => {};
    threadReady = new Promise<void>((resolve) => {
      ready = resolve;
    });
    w.on('message', (message: FromLoadThread | LoadThreadReady) => {
      if (message.type === 'ready') {
        ready();
        return;
      }
      if (abandoned.delete(w)) {
        // Its load answered at last (its volume came back): nothing waits for it any more.
        void w.terminate();
        return;
      }
      const p = pending.get(message.id);
      if (p === undefined) return;
      pending.delete(message.id);
      p.resolve(message);
    });
    const gone = (why: string) => {
      abandoned.delete(w);
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
    const key = `${model}/${version}`;
    const out = [...abandoned.values()];
    if (out.includes(key)) {
      throw new LoadTimedOutError(
        `model ${model} version ${version}: its previous load outlived its ${timeoutMs} ms deadline and has not returned (a hung artifact volume?); not started again until it does`,
      );
    }
    if (out.length >= MAX_ABANDONED_LOADS) {
      throw new LoadTimedOutError(
        `model ${model} version ${version}: not loaded now, ${out.length} model loads (${out.slice(0, 3).join(', ')}) outlived their ${timeoutMs} ms deadline and have not returned (a hung artifact volume?); no load starts until one does`,
      );
    }
    const id = nextId++;
    const w = thread();
    // Kept alive while it works, not while it idles.
    w.ref();
    let timer: NodeJS.Timeout | undefined;
    try {
      const reply = await new Promise<FromLoadThread>((resolve, reject) => {
        pending.set(id, { resolve, reject });
        w.postMessage({ id, model, version } satisfies ToLoadThread);
        const started = threadReady;
        void started.then(() => {
          if (!pending.has(id)) return;
          timer = setTimeout(() => {
            if (!pending.delete(id)) return;
            // Abandoned, not terminated (see above); the next load starts a new thread.
            if (worker === w) worker = undefined;
            abandoned.set(w, key);
            w.unref();
            reject(
              new LoadTimedOutError(
                `model ${model} version ${version}: its load did not finish within ${timeoutMs} ms (a hung artifact volume?); abandoned, retried`,
              ),
            );
          }, timeoutMs);
        });
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
      clearTimeout(timer);
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
      const left = [...abandoned.keys()];
      abandoned.clear();
      await Promise.all([w?.terminate(), ...left.map((a) => a.terminate())]);
    },
  };
}
