import { startedByThisProcess } from './proc.js';

/** Exit codes of a program stopped by a signal (128 + the signal's number). */
export const SIGNAL_EXIT_CODES = { SIGINT: 130, SIGTERM: 143 } as const;
export type StopSignal = keyof typeof SIGNAL_EXIT_CODES;

/** The reason an `abortOnSignals` controller is aborted with: which signal stopped the run. */
export class Interrupted extends Error {
  readonly code = 'INTERRUPTED';
  constructor(readonly signal: StopSignal) {
    super(`interrupted by ${signal}`);
    this.name = 'Interrupted';
  }
  get exitCode(): number {
    return SIGNAL_EXIT_CODES[this.signal];
  }
}

export interface AbortOnSignalsOptions {
  /** Names the program in its lines ("demo", "bench"). */
  program: string;
  /** Where the lines go (stderr). */
  warn: (line: string) => void;
  /** How the second signal exits (process.exit; a test passes its own). */
  exit?: (code: number) => void;
}

/**
 * Signals within this long of the first are the same Ctrl-C delivered again, not a second one:
 * `make bench` runs make → pnpm → tsx → node, and one Ctrl-C reaches node as the terminal's SIGINT,
 * tsx's relayed SIGINT and the SIGTERM pnpm sends its child, within milliseconds.
 */
const SAME_STOP_MS = 1_000;

/**
 * Ctrl-C or SIGTERM aborts `controller` with an `Interrupted` reason, so the program stops where it
 * is and still runs its clean-up (`stackRelease` in a `finally`): the default exit on SIGINT skips
 * it and leaves the stack it started running. A second signal (SAME_STOP_MS or more after the first)
 * exits at once, naming any process this program started that still runs. Returns a function that
 * removes the handlers.
 */
export function abortOnSignals(controller: AbortController, options: AbortOnSignalsOptions): () => void {
  const { program, warn } = options;
  const exit = options.exit ?? ((code: number) => process.exit(code));
  let firstAt: number | undefined;
  const handlers = (['SIGINT', 'SIGTERM'] as const).map((signal) => {
    const handler = () => {
      if (firstAt === undefined) {
        firstAt = Date.now();
        warn(`${program}: ${signal}: stopping and cleaning up (again to exit at once)…`);
        if (!controller.signal.aborted) controller.abort(new Interrupted(signal));
        return;
      }
      if (Date.now() - firstAt < SAME_STOP_MS) return;
      const left = startedByThisProcess();
      warn(
        left.length === 0
          ? `${program}: ${signal} again: exiting now; nothing this ${program} started is left running`
          : `${program}: ${signal} again: exiting now; left running: ${left.map((p) => `${p.command} pid ${p.pid}`).join(', ')} ` +
              '(stop them with `pnpm -s stack down`)',
      );
      exit(SIGNAL_EXIT_CODES[signal]);
    };
    process.on(signal, handler);
    return [signal, handler] as const;
  });
  return () => {
    for (const [signal, handler] of handlers) process.off(signal, handler);
  };
}

/** `work`, or a rejection with the signal's reason as soon as `signal` aborts (the work is left behind). */
export function unlessAborted<T>(work: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
