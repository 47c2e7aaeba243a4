import { execFile, spawn } from 'node:child_process';
import { accessSync, constants, existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ConfigError, DriftlineError, type Logger } from '@driftline/core';
import { z } from 'zod';

const execFileAsync = promisify(execFile);

/** services/trainer/worker (train.py, setup-venv.sh). */
export const WORKER_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '..', 'worker');

export type Device = 'auto' | 'cpu' | 'cuda';

/**
 * The worker's interpreter: `explicit` when given, else the venv that worker/setup-venv.sh creates
 * under .cache/pyenv-trainer (once; reused while its pinned stamp matches — a few ms).
 */
export async function ensureWorkerPython(logger: Logger, explicit?: string): Promise<string> {
  if (explicit !== undefined) {
    checkExplicitPython(explicit);
    return explicit;
  }
  const started = Date.now();
  try {
    const { stdout, stderr } = await execFileAsync('bash', [join(WORKER_DIR, 'setup-venv.sh')], {
      timeout: 15 * 60_000,
      maxBuffer: 16 * 1024 * 1024,
    });
    const python = stdout.trim().split('\n').at(-1) ?? '';
    if (stderr.trim() !== '')
      logger.info({ ms: Date.now() - started, output: stderr.trim().slice(-2000) }, 'trainer venv set up');
    if (!existsSync(python)) throw new Error(`setup printed ${JSON.stringify(python)}`);
    return python;
  } catch (error) {
    throw new DriftlineError('CONFIG_INVALID', `trainer worker environment: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

/**
 * DRIFTLINE_TRAINER_PYTHON (used as given, no set-up) is a file this process may execute. Anything
 * else is a ConfigError naming the variable: a directory passed an exists check, then every
 * training failed to spawn it; a path this user cannot look up (EACCES, ENOTDIR) had ended the
 * process as "internal error … report it" (found by a review).
 */
function checkExplicitPython(path: string): void {
  const refuse = (what: string, cause?: unknown) =>
    new ConfigError('DRIFTLINE_TRAINER_PYTHON', `${path} ${what}`, cause === undefined ? {} : { cause });
  let found: ReturnType<typeof statSync>;
  try {
    found = statSync(path, { throwIfNoEntry: false });
  } catch (error) {
    throw refuse(`cannot be read: ${(error as Error).message}`, error);
  }
  if (found === undefined) throw refuse('does not exist');
  if (found.isDirectory()) throw refuse('is a directory, not a Python interpreter');
  try {
    accessSync(path, constants.X_OK);
  } catch (error) {
    throw refuse(`is not executable by this user: ${(error as Error).message}`, error);
  }
}

const resultShape = z.object({
  metrics: z.record(z.string(), z.number()),
  device: z.string(),
  device_reason: z.string(),
  rows_train: z.number().int(),
  rows_holdout: z.number().int(),
  seconds: z.number(),
  xgboost: z.string(),
});

export type WorkerResult = z.infer<typeof resultShape>;

/**
 * The completed run in `outDir`, if its result.json (written last, atomically) is there. An
 * unreadable one (cut short by a crash of the host before its data reached the disk, or from
 * another version of the worker) is no completed run: undefined, the caller trains again. It had
 * thrown a SyntaxError, a poison error, and the good request went to the DLQ.
 */
export function readWorkerResult(outDir: string): WorkerResult | undefined {
  const file = join(outDir, 'result.json');
  if (!existsSync(file)) return undefined;
  let parsed: ReturnType<typeof resultShape.safeParse>;
  try {
    parsed = resultShape.safeParse(JSON.parse(readFileSync(file, 'utf8')));
  } catch {
    return undefined;
  }
  return parsed.success ? parsed.data : undefined;
}

/**
 * What train.py may see of the service's environment: the process basics (PATH, HOME, locale,
 * temp dir), the GPU runtime's variables (CUDA, NVIDIA, library path) and the thread-count knobs of
 * its numeric libraries. Never the service's configuration: Kafka, Redis, ClickHouse and registry
 * credentials stay in this process.
 */
const WORKER_ENV_NAMES =
  /^(PATH|HOME|USER|LANG|LANGUAGE|TZ|TMPDIR|TEMP|TMP|LD_LIBRARY_PATH|SYSTEMROOT|LC_[A-Z]+|CUDA_[A-Z_]+|NVIDIA_[A-Z_]+|OMP_NUM_THREADS|OPENBLAS_NUM_THREADS|MKL_NUM_THREADS)$/;

function workerEnv(env: NodeJS.ProcessEnv = process.env): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value !== undefined && WORKER_ENV_NAMES.test(key)) out[key] = value;
  }
  return { ...out, PYTHONWARNINGS: 'ignore', PYTHONUNBUFFERED: '1', PYTHONNOUSERSITE: '1' };
}

export interface WorkerRun {
  readonly python: string;
  readonly data: string;
  readonly outDir: string;
  readonly device: Device;
  readonly params: Readonly<Record<string, number>>;
  readonly timeoutMs: number;
  readonly logger: Logger;
  /** Stop or rebalance: the worker's process group is killed and the run fails, retriable. */
  readonly signal?: AbortSignal;
}

/** train.py's exit code for an OSError (a file it cannot read or write, a full disk): EX_TEMPFAIL. */
export const WORKER_OS_ERROR_EXIT = 75;

/**
 * Why a worker run failed outside the data and the worker: its interpreter cannot be started
 * (`cannot-start`), it hit an OS error (`os-error`, exit 75), the trainer could not use the
 * artifact directory (`artifact-dir`: EACCES, ENOTDIR, a full disk; artifact-dir.ts), or it was
 * stopped (`stopped`: a stop or a rebalance, no failure of anything).
 */
export type WorkerEnvironmentFailure = 'cannot-start' | 'os-error' | 'artifact-dir' | 'stopped';

/**
 * A worker run that failed for a reason outside the data and the worker: its interpreter cannot be
 * started (ENOENT while the venv is rebuilt, EACCES, EAGAIN), the worker hit an OS error (exit 75),
 * or the run was stopped (stop, rebalance). Retriable, and not counted toward MAX_WORKER_ATTEMPTS:
 * such failures had dead-lettered good requests. The first two count toward the trainer's longer
 * bound on environment failures instead (environment-failures.ts); a stop counts toward nothing.
 */
export class WorkerEnvironmentError extends DriftlineError {
  readonly failure: WorkerEnvironmentFailure;
  /** What failed, without the retry remark of the message (for the line that gives the request up). */
  readonly reason: string;
  constructor(
    failure: WorkerEnvironmentFailure,
    message: string,
    options: { readonly cause?: unknown; readonly reason?: string } = {},
  ) {
    super('INTERNAL', message, {
      ...(options.cause === undefined ? {} : { cause: options.cause }),
      retriable: true,
      details: { failure },
    });
    this.name = 'WorkerEnvironmentError';
    this.failure = failure;
    this.reason = options.reason ?? message;
  }
}

/** Kills the worker and everything it started (it leads its own process group). */
function killGroup(pid: number | undefined): void {
  if (pid === undefined) return;
  try {
    process.kill(-pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
}

/**
 * Runs train.py as a child process. Exit 3 (the data can never train) is VALIDATION_FAILED, not
 * retriable: the request goes to the DLQ with the worker's reason. A worker that cannot start, exit
 * 75 (an OS error) or an abort is a {@link WorkerEnvironmentError}. Any other non-zero exit, a
 * timeout or a missing result is a retriable error (the request is retried with backoff, never
 * committed past); the worker's stderr tail is in the message.
 *
 * The worker leads its own process group, killed whole on timeout or abort; it also watches its
 * stdin (`--watch-stdin`) and exits when this process is gone (a crash closes the pipe), so no
 * worker outlives the trainer that started it and writes into a directory another one now uses.
 */
export async function runWorker(run: WorkerRun): Promise<WorkerResult> {
  if (run.signal?.aborted) {
    throw new WorkerEnvironmentError('stopped', 'trainer worker not started: stopping or rebalancing');
  }
  const args = [
    join(WORKER_DIR, 'train.py'),
    '--data',
    run.data,
    '--out',
    run.outDir,
    '--device',
    run.device,
    '--params',
    JSON.stringify(run.params),
    '--watch-stdin',
  ];
  const child = spawn(run.python, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: workerEnv(),
    detached: true,
  });
  let stderr = '';
  let stdout = '';
  child.stdout.on('data', (d: Buffer) => {
    stdout = (stdout + d.toString()).slice(-8_000);
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-8_000);
  });
  // The pipe stays open while this process lives; a worker that exits first must not fail a write.
  child.stdin.on('error', () => {});
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup(child.pid);
  }, run.timeoutMs);
  const onAbort = () => killGroup(child.pid);
  run.signal?.addEventListener('abort', onAbort, { once: true });
  let code: number | null;
  try {
    code = await new Promise<number | null>((done, fail) => {
      child.once('error', fail);
      child.once('close', (c) => done(c));
    });
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw new WorkerEnvironmentError(
      'cannot-start',
      `cannot start the trainer worker ${run.python} (${reason}): retried, not counted as an attempt`,
      { cause: error, reason: `the worker's interpreter ${run.python} cannot be started (${reason})` },
    );
  } finally {
    clearTimeout(timer);
    run.signal?.removeEventListener('abort', onAbort);
    child.stdin.destroy();
  }
  // A failed worker's leftovers (a subprocess it started) go with it.
  if (code !== 0) killGroup(child.pid);
  if (run.signal?.aborted && !timedOut && code !== 0) {
    throw new WorkerEnvironmentError(
      'stopped',
      'trainer worker stopped: stopping or rebalancing (the request is redelivered)',
    );
  }
  if (code === 3) {
    // The data cannot train this model (labels that are not 0/1, a feature name XGBoost refuses):
    // retrying will not help, the request is dead-lettered with the worker's reason.
    throw new DriftlineError('VALIDATION_FAILED', `trainer worker refused the data: ${stderr.trim().slice(-1500)}`);
  }
  if (code === WORKER_OS_ERROR_EXIT) {
    throw new WorkerEnvironmentError(
      'os-error',
      `trainer worker hit an OS error (retried, not counted as an attempt): ${stderr.trim().slice(-1500)}`,
      { reason: `the worker exited ${WORKER_OS_ERROR_EXIT} on an OS error: ${stderr.trim().slice(-1500)}` },
    );
  }
  if (code !== 0) {
    throw new DriftlineError(
      'INTERNAL',
      `trainer worker exited with ${code ?? (timedOut ? `a kill after the ${run.timeoutMs} ms timeout` : 'a signal')}: ${stderr.trim().slice(-1500)}`,
      {
        retriable: true,
      },
    );
  }
  const result = readWorkerResult(run.outDir);
  if (result === undefined) {
    throw new DriftlineError(
      'INTERNAL',
      `trainer worker wrote no readable result.json (stdout: ${stdout.slice(-500)})`,
      {
        retriable: true,
      },
    );
  }
  return result;
}
