// MLServer 1.7.1 (XGBoost runtime) beside our model server, for issue 12's side-by-side figure.
// MLServer runs as a child process in its own process group on free loopback ports, on a copy of
// the bench's model.json that XGBoost loads (xgboost-model.py); its answers must equal our scorer's
// before anything is timed. The timed client is ours too (timed.ts): one keep-alive socket per
// shape, its requests interleaved with our server's.
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { loadXgboostModel } from '@driftline/scoring';
import { freePort } from '@driftline/test-support';
import { SeededRandom } from '@driftline/test-support/random';
import { httpCall } from '../features/http.js';
import { cpuSecondsOf, type TimedTarget, timedTarget } from './timed.js';

const execFileAsync = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const MODEL = 'bench';
const INFER_PATH = `/v2/models/${MODEL}/infer`;
/** First set-up downloads ~550 MB of wheels (about 2 minutes here); later runs only read a stamp. */
const SETUP_TIMEOUT_MS = 20 * 60_000;
/** Start-up imports pandas, xgboost, grpc and forks a worker: ~15 s on a loaded 2-core machine. */
const READY_TIMEOUT_MS = 180_000;
/** SIGTERM grace before SIGKILL (MLServer gives its workers 5 s, parallel_workers_timeout). */
const STOP_GRACE_MS = 15_000;
/** Rows whose scores must agree with our scorer, and the bound (issue 12's scorer criterion). */
const AGREEMENT_ROWS = 300;
const AGREEMENT_MAX_ABS_DIFF = 1e-6;

/** Runs setup-mlserver.sh (creates the venv once) and returns its interpreter; throws a one-line reason. */
export async function setupMlserver(): Promise<string> {
  try {
    const { stdout } = await execFileAsync('bash', [join(here, 'setup-mlserver.sh')], {
      timeout: SETUP_TIMEOUT_MS,
      maxBuffer: 16 * 1024 * 1024,
    });
    const python = stdout.trim().split('\n').at(-1) ?? '';
    if (python === '') throw new Error('setup-mlserver.sh printed no interpreter path');
    return python;
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? '';
    const last = stderr.trim().split('\n').filter(Boolean).at(-1);
    throw new Error(`setup failed: ${last ?? (error instanceof Error ? error.message : String(error))}`);
  }
}

/** A V2 inference request: one FP32 input of shape [rows, features], the runtime's `predict` output. */
export function v2InferBody(rows: readonly (readonly number[])[]): string {
  return JSON.stringify({
    inputs: [{ name: 'predict', shape: [rows.length, rows[0]?.length ?? 0], datatype: 'FP32', data: rows.flat() }],
  });
}

export interface MlserverOptions {
  readonly python: string;
  /** The bench's model.json (the file our server loads). */
  readonly modelJsonPath: string;
  /** A scratch directory for MLServer's model repository, settings and metrics files. */
  readonly dir: string;
  /**
   * MLServer's `parallel_workers`: 0 runs inference in the server process, 1 (its default) in one
   * worker process behind an IPC queue.
   */
  readonly parallelWorkers: 0 | 1;
  /** OMP_NUM_THREADS of MLServer: XGBoost's predict threads (its default is every core). */
  readonly ompThreads: number;
  readonly log?: (line: string) => void;
}

export interface MlserverProcess {
  readonly port: number;
  readonly pid: number;
  /** Max |MLServer - our scorer| over the agreement rows (checked ≤ 1e-6 at start). */
  readonly maxAbsDiff: number;
  readonly xgboostVersion: string;
  /** CPU seconds used so far by MLServer's process group (server and workers; Linux /proc). */
  cpuSeconds(): number;
  /** SIGTERM to the process group, SIGKILL after the grace period; resolves once it is gone. */
  close(): Promise<void>;
}

/**
 * Starts MLServer on the bench model, waits until the model is ready and checks its answers
 * against our scorer on `rows` (plus seeded random rows). Never leaves a process behind: on any
 * failure the group is stopped before the error propagates, a process `exit` hook kills it if
 * the bench dies before `close`, and PR_SET_PDEATHSIG stops it if node itself is killed.
 */
export async function startMlserver(
  options: MlserverOptions,
  benchRows: readonly (readonly number[])[],
): Promise<MlserverProcess> {
  const log = options.log ?? (() => {});
  const repo = join(options.dir, 'models');
  mkdirSync(join(repo, MODEL), { recursive: true });
  const { stdout: loaded } = await execFileAsync(options.python, [
    join(here, 'xgboost-model.py'),
    options.modelJsonPath,
    join(repo, MODEL, 'model.json'),
  ]);
  const xgboostVersion = /xgboost (\S+)/.exec(loaded)?.[1] ?? 'unknown';
  writeFileSync(
    join(repo, MODEL, 'model-settings.json'),
    JSON.stringify({
      name: MODEL,
      implementation: 'mlserver_xgboost.XGBoostModel',
      parameters: { uri: './model.json' },
    }),
  );
  const [httpPort, grpcPort, metricsPort] = [await freePort(), await freePort(), await freePort()];
  writeFileSync(
    join(repo, 'settings.json'),
    JSON.stringify({
      host: '127.0.0.1',
      http_port: httpPort,
      grpc_port: grpcPort,
      // Kept on (as deployed), on a free port; its files go to the scratch dir, not the cwd.
      metrics_port: metricsPort,
      metrics_dir: join(options.dir, 'metrics'),
      parallel_workers: options.parallelWorkers,
      // debug=true (the default) writes an access-log line per request: our server logs none.
      debug: false,
    }),
  );
  const child = spawnInGroup(options.python, join(dirname(options.python), 'mlserver'), repo, {
    ...process.env,
    OMP_NUM_THREADS: String(options.ompThreads),
  });
  const output: string[] = [];
  const keep = (chunk: Buffer) => {
    output.push(...chunk.toString().split('\n').filter(Boolean));
    output.splice(0, Math.max(0, output.length - 40));
  };
  child.process.stdout?.on('data', keep);
  child.process.stderr?.on('data', keep);
  try {
    await waitReady(httpPort, child.exited);
    log(
      `mlserver: pid ${child.process.pid} ready on 127.0.0.1:${httpPort} (parallel_workers ${options.parallelWorkers}, OMP_NUM_THREADS ${options.ompThreads})`,
    );
    const maxAbsDiff = await checkAgreement(httpPort, options.modelJsonPath, benchRows);
    log(`mlserver: answers equal our scorer's on ${AGREEMENT_ROWS} rows (max abs diff ${maxAbsDiff.toExponential(2)})`);
    return {
      port: httpPort,
      pid: child.process.pid ?? -1,
      maxAbsDiff,
      xgboostVersion,
      cpuSeconds: () => cpuSecondsOf({ pgid: child.process.pid ?? -1 }),
      close: () => child.stop(),
    };
  } catch (error) {
    // MLServer's last lines from before the stop (its shutdown lines would say nothing).
    const tail = output.slice(-5).join(' | ');
    await child.stop();
    throw new Error(`${error instanceof Error ? error.message : String(error)}${tail ? ` (mlserver: ${tail})` : ''}`);
  }
}

// Sets PR_SET_PDEATHSIG (kept across execv) so that MLServer gets SIGTERM when node dies, even by
// SIGKILL, then becomes `mlserver start REPO`. The ppid check closes the race with a parent that
// died before prctl ran.
const PDEATHSIG_EXEC = [
  'import ctypes, os, signal, sys',
  'ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)',
  'os.getppid() == int(sys.argv[1]) or sys.exit("parent gone")',
  'os.execv(sys.argv[2], [sys.argv[2], "start", sys.argv[3]])',
].join('\n');

interface GroupChild {
  readonly process: ChildProcess;
  /** Rejects when the process exits (it never should before `stop`). */
  readonly exited: Promise<never>;
  stop(): Promise<void>;
}

function spawnInGroup(python: string, mlserverBin: string, repo: string, env: NodeJS.ProcessEnv): GroupChild {
  // detached: its own process group, so one signal reaches the server and its inference workers.
  const proc = spawn(python, ['-c', PDEATHSIG_EXEC, String(process.pid), mlserverBin, repo], {
    cwd: repo,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let gone = false;
  const exitedOnce = new Promise<string>((resolve) => {
    proc.once('exit', (code, signal) => {
      gone = true;
      resolve(signal ? `killed by ${signal}` : `exited with code ${code}`);
    });
    proc.once('error', (error) => {
      gone = true;
      resolve(`failed to start: ${error.message}`);
    });
  });
  const signalGroup = (signal: NodeJS.Signals) => {
    if (proc.pid === undefined) return;
    try {
      process.kill(-proc.pid, signal);
    } catch {
      // ESRCH: the whole group is gone already.
    }
  };
  const onExit = () => signalGroup('SIGKILL');
  process.once('exit', onExit);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      if (!gone) {
        signalGroup('SIGTERM');
        let timer: NodeJS.Timeout | undefined;
        const timedOut = await Promise.race([
          exitedOnce.then(() => false),
          new Promise<boolean>((resolve) => {
            timer = setTimeout(() => resolve(true), STOP_GRACE_MS);
          }),
        ]);
        clearTimeout(timer);
        if (timedOut) {
          signalGroup('SIGKILL');
          await exitedOnce;
        }
      }
      // A worker that outlived the server still holds the group id (no pid reuse while it does).
      signalGroup('SIGKILL');
      process.removeListener('exit', onExit);
    })();
    return stopping;
  };
  const exited = exitedOnce.then((how) => {
    throw new Error(`mlserver ${how} before it was ready`);
  });
  exited.catch(() => {}); // observed by waitReady only; never an unhandled rejection
  return { process: proc, exited, stop };
}

async function waitReady(port: number, exited: Promise<never>): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  const agent = new Agent({ keepAlive: false });
  try {
    for (;;) {
      const status = await Promise.race([
        httpCall(agent, port, 'GET', `/v2/models/${MODEL}/ready`).catch(() => 0),
        exited,
      ]);
      if (status === 200) return;
      if (Date.now() > deadline) throw new Error(`model not ready within ${READY_TIMEOUT_MS / 1000} s`);
      await Promise.race([new Promise((resolve) => setTimeout(resolve, 250)), exited]);
    }
  } finally {
    agent.destroy();
  }
}

async function checkAgreement(
  port: number,
  modelJsonPath: string,
  benchRows: readonly (readonly number[])[],
): Promise<number> {
  const ours = loadXgboostModel(JSON.parse(readFileSync(modelJsonPath, 'utf8')) as unknown);
  const width = benchRows[0]?.length ?? 0;
  // The bench's own rows, then seeded normal rows (split thresholds are normal draws too).
  const rng = new SeededRandom(12);
  const rows = [...benchRows.slice(0, AGREEMENT_ROWS / 2)];
  while (rows.length < AGREEMENT_ROWS) rows.push(Array.from({ length: width }, () => rng.normal() * 1.5));
  const res = await fetch(`http://127.0.0.1:${port}${INFER_PATH}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: v2InferBody(rows),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`agreement request answered ${res.status}: ${text.slice(0, 200)}`);
  const theirs = (JSON.parse(text) as { outputs?: Array<{ data?: number[] }> }).outputs?.[0]?.data ?? [];
  if (theirs.length !== rows.length) throw new Error(`agreement: ${theirs.length} scores for ${rows.length} rows`);
  const expected = ours.predict(rows.flat());
  let max = 0;
  for (let r = 0; r < rows.length; r++) max = Math.max(max, Math.abs(theirs[r]! - expected[r]!));
  if (!(max <= AGREEMENT_MAX_ABS_DIFF)) {
    throw new Error(`MLServer's scores differ from ours by up to ${max} (> ${AGREEMENT_MAX_ABS_DIFF})`);
  }
  return max;
}

export interface MlserverSideBySideOptions {
  /** The bench's model.json (the file our server loads). */
  readonly modelJsonPath: string;
  /** Scratch directory (removed by the caller after `close`). */
  readonly dir: string;
  /** The features of the i-th single request: the same rows our server gets inline. */
  readonly single: (i: number) => number[];
  /** The rows of the i-th batch-of-100 request. */
  readonly batch100: (i: number) => number[][];
  readonly log?: (line: string) => void;
  readonly env?: NodeJS.ProcessEnv;
}

/** MLServer measured in the same run as our server, its requests interleaved with ours (timed.ts). */
export interface MlserverSideBySide {
  /** MLServer's shapes (`mlserver.single`, `mlserver.batch100`), optional: a failure drops them; none when skipped. */
  readonly targets: ReadonlyArray<TimedTarget & { readonly optional: true }>;
  /** `mlserver.*` keys besides the timings: its configuration and agreement, or `mlserver.skipped` with the reason. */
  keys(dropped: ReadonlyMap<string, string>): Record<string, number | string>;
  close(): Promise<void>;
}

const SHAPES = ['single', 'batch100'] as const;

/**
 * Sets up and starts MLServer for the side-by-side figures. Never throws: without MLServer
 * (BENCH_MLSERVER=0, no network for the set-up, a start or agreement failure, a crash while timed)
 * it logs one line and reports `mlserver.skipped` with the reason. BENCH_MLSERVER_WORKERS picks
 * MLServer's parallel_workers: 0 (default here: inference in the server process like ours, no IPC
 * hop, so MLServer's best single-client latency) or 1 (MLServer's own default).
 * BENCH_MLSERVER_OMP_THREADS (default 1) sets MLServer's OpenMP threads: with XGBoost's default (every
 * core) its idle threads spin after each predict, which on 2 shared cores cost 3.5× the CPU per
 * request and doubled its p99 here; one thread is also what our single-threaded scorer uses.
 */
export async function openMlserverSideBySide(options: MlserverSideBySideOptions): Promise<MlserverSideBySide> {
  const log = options.log ?? (() => {});
  const env = options.env ?? process.env;
  let skipped: string | undefined;
  let server: MlserverProcess | undefined;
  const skip = async (reason: string) => {
    // One line: a failed command's message holds its whole stderr; its last line names the error.
    const lines = reason.trim().split('\n').filter(Boolean);
    skipped = lines.length > 1 ? `${lines[0]} … ${lines.at(-1)}` : reason;
    log(`mlserver: skipped: ${skipped}`);
    await server?.close();
    server = undefined;
  };
  const workers = env.BENCH_MLSERVER_WORKERS ?? '0';
  const omp = env.BENCH_MLSERVER_OMP_THREADS ?? '1';
  if (env.BENCH_MLSERVER === '0') await skip('BENCH_MLSERVER=0');
  else if (workers !== '0' && workers !== '1') await skip(`BENCH_MLSERVER_WORKERS must be 0 or 1 (got "${workers}")`);
  else if (!/^[1-9]\d{0,2}$/.test(omp)) await skip(`BENCH_MLSERVER_OMP_THREADS must be 1 to 999 (got "${omp}")`);
  else {
    try {
      const started = Date.now();
      log('mlserver: checking .cache/pyenv-mlserver (created on first use: ~550 MB of wheels, about 2 minutes)');
      const python = await setupMlserver();
      log(`mlserver: environment ready in ${((Date.now() - started) / 1000).toFixed(1)} s (${python})`);
      server = await startMlserver(
        {
          python,
          modelJsonPath: options.modelJsonPath,
          dir: options.dir,
          parallelWorkers: workers === '1' ? 1 : 0,
          ompThreads: Number(omp),
          log,
        },
        Array.from({ length: AGREEMENT_ROWS / 2 }, (_, i) => options.single(i)),
      );
    } catch (error) {
      await skip(error instanceof Error ? error.message : String(error));
    }
  }
  const live = server;
  const targets =
    live === undefined
      ? []
      : SHAPES.map((shape) => ({
          ...timedTarget({
            name: `mlserver.${shape}`,
            server: 'mlserver',
            port: live.port,
            path: INFER_PATH,
            body:
              shape === 'single'
                ? (i: number) => v2InferBody([options.single(i)])
                : (i: number) => v2InferBody(options.batch100(i)),
            cpuSeconds: () => live.cpuSeconds(),
          }),
          optional: true as const,
        }));
  return {
    targets,
    keys(dropped) {
      const failed = [...dropped].find(([name]) => name.startsWith('mlserver.'));
      if (failed !== undefined) skipped ??= `failed while timed: ${failed[1]}`;
      if (skipped !== undefined || server === undefined) return { 'mlserver.skipped': skipped ?? 'not started' };
      return {
        'mlserver.parallel_workers': workers === '1' ? 1 : 0,
        'mlserver.omp_threads': Number(omp),
        'mlserver.max_abs_diff_vs_ours': server.maxAbsDiff,
      };
    },
    async close() {
      for (const t of targets) t.close();
      await server?.close();
    },
  };
}
