// Entry point of the model server's load thread (see load-thread.ts): reads a version's artifacts,
// parses and compiles them here, and hands the compiled arrays over without a copy.
import { parentPort, workerData } from 'node:worker_threads';
import { DriftlineError } from '@driftline/core';
import { compiledModelBuffers, ModelFormatError } from '@driftline/scoring';
import { compileArtifacts, versionFromCompiled } from './artifacts.js';
import type { FromLoadThread, LoadThreadData, LoadThreadReady, ToLoadThread } from './load-thread-protocol.js';

const port = parentPort!;
const { dir, stall } = workerData as LoadThreadData;

port.on('message', (message: ToLoadThread) => {
  const { id, model, version } = message;
  const wait = stall?.[`${model}/${version}`];
  if (wait === Number.POSITIVE_INFINITY) return;
  void (async () => {
    if (wait !== undefined) await new Promise((resolve) => setTimeout(resolve, wait));
    let reply: FromLoadThread;
    let transfer: ArrayBuffer[] = [];
    try {
      const compiled = await compileArtifacts(dir, model, version);
      // Checked here, so a meta.json that does not fit the model fails on this thread.
      versionFromCompiled(model, version, compiled);
      reply = { type: 'loaded', id, version: compiled };
      transfer = compiledModelBuffers(compiled.compiled);
    } catch (error) {
      reply = {
        type: 'failed',
        id,
        error:
          error instanceof ModelFormatError
            ? { kind: 'format', field: error.field, message: error.message.replace(`model ${error.field}: `, '') }
            : error instanceof DriftlineError
              ? { kind: 'driftline', code: error.code, message: error.message, retriable: error.retriable }
              : { kind: 'other', message: String((error as Error)?.message ?? error) },
      };
    }
    port.postMessage(reply, transfer);
  })();
});
port.postMessage({ type: 'ready' } satisfies LoadThreadReady);
