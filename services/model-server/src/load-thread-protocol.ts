// Messages between the serving thread and the load thread (load-thread.ts, load-worker.ts).
import type { ErrorCode } from '@driftline/core';
import type { CompiledVersion } from './artifacts.js';

export interface LoadThreadData {
  /** The artifact directory. */
  readonly dir: string;
  /** Tests: ms a load of `model/version` waits before it starts (Infinity: never, a read on a hung volume). */
  readonly stall?: Readonly<Record<string, number>>;
}

export interface ToLoadThread {
  readonly id: number;
  readonly model: string;
  readonly version: string;
}

/** A load's failure as it crosses the threads (errors lose their class in a structured clone). */
export type LoadFailure =
  | { readonly kind: 'format'; readonly field: string; readonly message: string }
  | { readonly kind: 'driftline'; readonly code: ErrorCode; readonly message: string; readonly retriable: boolean }
  | { readonly kind: 'other'; readonly message: string };

/** Posted once by the thread when it takes loads: a load's deadline counts from then (a thread's start takes seconds under tsx). */
export interface LoadThreadReady {
  readonly type: 'ready';
}

export type FromLoadThread =
  | { readonly type: 'loaded'; readonly id: number; readonly version: CompiledVersion }
  | { readonly type: 'failed'; readonly id: number; readonly error: LoadFailure };
