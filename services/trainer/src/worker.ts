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
 * under .cache/pyenv-trainer (once; reused while its pinned stamp matches — a few ms), or under
 * DRIFTLINE_TRAINER_VENV when set (read by the script; `env`).
 */
export async function ensureWorkerPython(
  logger: Logger,
  explicit?: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  if (explicit !== undefined) {
    checkExplicitPython(explicit);
    const problem = await workerImportProblem(explicit);
    if (problem?.kind === 'import') {
      throw new ConfigError(
        'DRIFTLINE_TRAINER_PYTHON',
        `${explicit} ${problem.text}: point it at a Python with the worker's packages (${WORKER_MODULES.join(', ')}; versions pinned in worker/setup-venv.sh), or unset it to use the trainer's own venv`,
      );
    }
    if (problem !== undefined) throw passingCheckFailure(explicit, problem.text);
    return explicit;
  }
  const started = Date.now();
  let python: string;
  try {
    const { stdout, stderr } = await execFileAsync('bash', [join(WORKER_DIR, 'setup-venv.sh')], {
      timeout: 15 * 60_000,
      maxBuffer: 16 * 1024 * 1024,
      env,
    });
    python = stdout.trim().split('\n').at(-1) ?? '';
    if (stderr.trim() !== '')
      logger.info({ ms: Date.now() - started, output: stderr.trim().slice(-2000) }, 'trainer venv set up');
    if (!existsSync(python)) throw new Error(`setup printed ${JSON.stringify(python)}`);
  } catch (error) {
    const base = baseInterpreterProblem(error);
    if (base !== undefined) throw new ConfigError('PYTHON', base, { cause: error });
    throw new DriftlineError('CONFIG_INVALID', `trainer worker environment: ${(error as Error).message}`, {
      cause: error,
    });
  }
  // The venv is reused while its stamp matches; a package broken or removed since would fail every run.
  const problem = await workerImportProblem(python);
  if (problem?.kind === 'import') {
    const venv = dirname(dirname(python));
    const advice = `${python} ${problem.text}: remove ${venv} to have it built again at the next start`;
    const chosen = env.DRIFTLINE_TRAINER_VENV;
    if (chosen !== undefined && chosen !== '') throw new ConfigError('DRIFTLINE_TRAINER_VENV', advice);
    throw new DriftlineError('CONFIG_INVALID', `trainer worker environment: ${advice}`);
  }
  if (problem !== undefined) throw passingCheckFailure(python, problem.text);
  return python;
}

/** How setup-venv.sh says its base interpreter (PYTHON) is missing or cannot make a venv: exit 78 and this line. */
const BASE_INTERPRETER_LINE = /^trainer worker: PYTHON: (.+)$/m;

/**
 * setup-venv.sh's one line about an unusable base interpreter (exit 78), without its prefix; it had
 * failed after the lock and the removal with bash's "No such file or directory" under three lines.
 */
function baseInterpreterProblem(error: unknown): string | undefined {
  const { code, stderr } = error as { code?: unknown; stderr?: unknown };
  if (code !== 78 || typeof stderr !== 'string') return undefined;
  return BASE_INTERPRETER_LINE.exec(stderr)?.[1];
}

/**
 * A start-up import check that failed for a passing reason (a kill under memory pressure, EAGAIN,
 * the timeout): retriable, so the runner tries the start again (DRIFTLINE_STARTUP_TIMEOUT). It had
 * exited 78 as a configuration error, advising to remove a healthy venv (found by a review).
 */
function passingCheckFailure(python: string, text: string): DriftlineError {
  return new DriftlineError('INTERNAL', `trainer worker environment: the import check of ${python} ${text}`, {
    retriable: true,
  });
}

/** What train.py imports (keep in step with it): checked at start-up. */
const WORKER_MODULES = ['numpy', 'pyarrow', 'pyarrow.ipc', 'xgboost'] as const;

/**
 * Bound on the start-up import check. It took 0.3–0.6 s here (about 2 s on a loaded machine, 20 s
 * once with a cold disk): the bound is for an interpreter that hangs, not a measure of speed.
 */
const IMPORT_CHECK_TIMEOUT_MS = 120_000;

/**
 * Imports each module named in its arguments; at the first failure, one line naming it on stderr
 * (`import check: `), exit 1. A MemoryError or an interrupt is no verdict on the packages: exit 2,
 * without that line.
 */
const IMPORT_CHECK = `import importlib, sys
for name in sys.argv[1:]:
    try:
        importlib.import_module(name)
    except (MemoryError, KeyboardInterrupt) as error:
        print("interrupted importing " + name + ": " + type(error).__name__, file=sys.stderr)
        sys.exit(2)
    except BaseException as error:
        print("import check: " + (f"{name} ({type(error).__name__}: {error}".splitlines() or [name])[0][:300] + ")", file=sys.stderr)
        sys.exit(1)`;

/**
 * Why `python` failed the import check, or undefined: `import` when it cannot import what train.py
 * imports (the check's own line: a configuration error), `passing` when the check did not come to
 * a verdict (killed, timed out, not spawned: EAGAIN, ENOMEM; any other exit). Run in the worker's
 * environment (workerEnv: PYTHONNOUSERSITE=1, no PYTHONPATH), so what passes here is what the
 * worker gets. Without it an interpreter lacking numpy started, and every request failed `import
 * numpy` three times (found by a review).
 */
async function workerImportProblem(
  python: string,
  timeoutMs = IMPORT_CHECK_TIMEOUT_MS,
): Promise<{ readonly kind: 'import' | 'passing'; readonly text: string } | undefined> {
  try {
    await execFileAsync(python, ['-c', IMPORT_CHECK, ...WORKER_MODULES], {
      env: workerEnv(),
      timeout: timeoutMs,
      killSignal: 'SIGKILL',
      maxBuffer: 1024 * 1024,
    });
    return undefined;
  } catch (error) {
    const failed = error as { code?: unknown; killed?: boolean; signal?: unknown; stderr?: unknown };
    if (typeof failed.code === 'string') return { kind: 'passing', text: `could not be run (${failed.code})` };
    if (failed.killed === true) {
      return { kind: 'passing', text: `did not import ${WORKER_MODULES.join(', ')} within ${timeoutMs / 1000} s` };
    }
    const said =
      String(failed.stderr ?? '')
        .trim()
        .split('\n')
        .at(-1)
        ?.slice(0, 400) ?? '';
    if (said.startsWith('import check: '))
      return { kind: 'import', text: `cannot import ${said.slice('import check: '.length)}` };
    const ended = typeof failed.signal === 'string' ? `signal ${failed.signal}` : `exit ${String(failed.code)}`;
    return { kind: 'passing', text: `ended with ${ended} before a verdict${said === '' ? '' : `: ${said}`}` };
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
  /** What the run trains, named in its failure (`retrain <request_id> of <model>`). */
  readonly subject?: string;
}

/**
 * train.py's exit code for an OSError (a file it cannot read or write, a full disk) and for packages
 * it cannot import (a venv being rebuilt): EX_TEMPFAIL.
 */
export const WORKER_OS_ERROR_EXIT = 75;

/** How train.py's line on stderr starts when it cannot import its packages (keep in step with it). */
const WORKER_IMPORT_FAILURE = 'worker packages: cannot import ';

/**
 * Why a worker run failed outside the data and the worker: its interpreter cannot be started
 * (`cannot-start`) or cannot import the worker's packages (`cannot-import`, exit 75 with train.py's
 * line: a venv being rebuilt), it hit an OS error (`os-error`, exit 75), the trainer could not use the
 * artifact directory (`artifact-dir`: EACCES, ENOTDIR, a full disk; artifact-dir.ts), or it was
 * stopped (`stopped`: a stop or a rebalance, no failure of anything).
 */
export type WorkerEnvironmentFailure = 'cannot-start' | 'cannot-import' | 'os-error' | 'artifact-dir' | 'stopped';

/**
 * A worker run that failed for a reason outside the data and the worker: its interpreter cannot be
 * started (ENOENT while the venv is rebuilt, EACCES, EAGAIN) or cannot import its packages (the venv
 * rebuilt: created, its packages not installed yet), the worker hit an OS error (exit 75), or the run
 * was stopped (stop, rebalance). Retriable, and not counted toward MAX_WORKER_ATTEMPTS:
 * such failures had dead-lettered good requests. All but a stop count toward the trainer's longer
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
 * How a worker ended, for its failure's message. A signal the trainer did not send is named (the
 * message had said "a signal" and nothing more): SIGKILL from outside is the kernel's OOM killer as
 * a rule, the hint that the window needs more memory (or a lower DRIFTLINE_TRAINER_MAX_ROWS).
 */
function exitOf(code: number | null, signal: NodeJS.Signals | null, timedOut: boolean, timeoutMs: number): string {
  if (code !== null) return String(code);
  if (timedOut) return `a kill after the ${timeoutMs} ms timeout`;
  if (signal === 'SIGKILL') {
    return "signal SIGKILL, not sent by the trainer (the kernel's OOM killer, as a rule: check `dmesg` or the memory limit)";
  }
  return `signal ${signal ?? '(none reported)'}`;
}

/**
 * Runs train.py as a child process. Exit 3 (the data can never train) is VALIDATION_FAILED, not
 * retriable: the request goes to the DLQ with the worker's reason. A worker that cannot start, exit
 * 75 (an OS error, or its packages cannot be imported) or an abort is a {@link WorkerEnvironmentError}. Any other non-zero exit, a
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
  // Decoded across chunks: a character split between two chunks is not two U+FFFD.
  child.stdout.setEncoding('utf8');
  child.stderr.setEncoding('utf8');
  child.stdout.on('data', (d: string) => {
    stdout = (stdout + d).slice(-8_000);
  });
  child.stderr.on('data', (d: string) => {
    stderr = (stderr + d).slice(-8_000);
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
  let signal: NodeJS.Signals | null;
  try {
    [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((done, fail) => {
      child.once('error', fail);
      child.once('close', (c, s) => done([c, s]));
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
    const importLine = stderr
      .split('\n')
      .find((line) => line.startsWith(WORKER_IMPORT_FAILURE))
      ?.slice(0, 500);
    if (importLine !== undefined) {
      // Counted as a run, three in a row (backoff 100/200 ms) had dead-lettered a good request within
      // seconds while setup-venv.sh reinstalled the packages (found by a review).
      throw new WorkerEnvironmentError(
        'cannot-import',
        `trainer worker cannot import its packages (retried, not counted as an attempt): ${importLine}`,
        { reason: `the worker's interpreter ${run.python} cannot import its packages: ${importLine}` },
      );
    }
    throw new WorkerEnvironmentError(
      'os-error',
      `trainer worker hit an OS error (retried, not counted as an attempt): ${stderr.trim().slice(-1500)}`,
      { reason: `the worker exited ${WORKER_OS_ERROR_EXIT} on an OS error: ${stderr.trim().slice(-1500)}` },
    );
  }
  if (code !== 0) {
    const subject = run.subject === undefined ? '' : ` (${run.subject})`;
    throw new DriftlineError(
      'INTERNAL',
      `trainer worker exited with ${exitOf(code, signal, timedOut, run.timeoutMs)}${subject}: ${stderr.trim().slice(-1500)}`,
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
