/**
 * Progress lines on stderr (never stdout) for runs that take more than a few seconds: shown when
 * `--progress` is given, or when stderr is a terminal and the input is large enough to take a while
 * (`LARGE_INPUT_BYTES`). Each phase prints when it starts and the total elapsed time.
 */
export interface Progress {
  phase(what: string): void;
  done(): void;
}

/** Input size from which a run on a terminal shows progress without `--progress` (about 2 s of reading). */
export const LARGE_INPUT_BYTES = 32 * 1024 * 1024;

export function progress(options: { forced: boolean; inputBytes: number }): Progress {
  const enabled = options.forced || (process.stderr.isTTY === true && options.inputBytes >= LARGE_INPUT_BYTES);
  const started = performance.now();
  const elapsed = () => `${((performance.now() - started) / 1000).toFixed(1)} s`;
  if (!enabled) return { phase: () => {}, done: () => {} };
  return {
    phase: (what) => process.stderr.write(`driftline: ${what}… (${elapsed()})\n`),
    done: () => process.stderr.write(`driftline: done (${elapsed()})\n`),
  };
}
