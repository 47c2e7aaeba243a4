import { createHash } from 'node:crypto';
import {
  closeSync,
  existsSync,
  fsyncSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  ARTIFACT_NAME_RULE,
  DEFAULT_EVENT_TIME_BOUNDS,
  DriftlineError,
  type EventTimeBounds,
  eventTimeProblem,
  formatDuration,
  isArtifactName,
  type Logger,
  MAX_DATE_MS,
  PoisonRecordError,
  toDriftlineError,
} from '@driftline/core';
import type { ReferenceSet } from '@driftline/drift';
import { DEFAULT_MAX_REASON_BYTES } from '@driftline/kafka';
import type { CalibrationMap } from '@driftline/performance';
import { transitionEvent, usableClock, usableTransitions } from '@driftline/policy';
import type { ModelEvent, RetrainRequest } from '@driftline/schemas';
import {
  chTime,
  type LabelClock,
  type ModelRegistry,
  type ModelTransitionStore,
  type ModelVersionRow,
  type PredictionStore,
  type TransitionRow,
} from '@driftline/warehouse';
import { tableFromIPC } from 'apache-arrow';
import { fileEnvironmentCode, makeVersionDir } from './artifact-dir.js';
import type { TrainerConfig } from './config.js';
import { arrowSteps, type ClassCounts, classCounts, type Dataset, datasetSteps } from './dataset.js';
import {
  ENVIRONMENT_FAILURE_BUDGET_MS,
  environmentExhausted,
  recordEnvironmentFailure,
} from './environment-failures.js';
import { environmentStreakStore } from './environment-streak-store.js';
import {
  configurationDigest,
  GIVE_UP_REMEMBERED_MS,
  type GiveUpRecord,
  giveUpDecision,
  parseGiveUpRecord,
  type RecordDelivery,
} from './give-up-record.js';
import { type LabelWaits, labelWaitStep } from './label-wait.js';
import { decidePromotion, type GateBaseline, type PromotionVerdict, versionFor } from './promotion.js';
import { calibrationFromDataset, referenceSteps } from './reference.js';
import { servingProblem } from './serving-check.js';
import { runYielding } from './steps.js';
import type { TrainingSource, TrainingWindow } from './training-source.js';
import { readWorkerResult, runWorker, WorkerEnvironmentError, type WorkerResult, type WorkerRun } from './worker.js';

export interface TrainerDeps {
  readonly config: TrainerConfig;
  readonly python: string;
  readonly source: TrainingSource;
  readonly registry: ModelRegistry;
  /** Stores a reference set where drift-monitor reads it (reference_profiles); returns its URI. */
  readonly saveReference: (set: ReferenceSet) => Promise<string>;
  /** Publishes model events in order; resolves once Kafka has them. */
  readonly publish: (events: readonly ModelEvent[]) => Promise<void>;
  readonly logger: Logger;
  readonly now?: () => number;
  /** Aborts a training run: the service stops, or the group rebalances (the batch is then retried). */
  readonly signal?: AbortSignal;
  /**
   * The Kafka record handled: its position and fingerprint. A request given up on its worker runs
   * is given up again, without a run, on a redelivery of this very record under the same
   * configuration within GIVE_UP_REMEMBERED_MS (give-up-record.ts); another record of it (a replay
   * from the DLQ, a recreated topic) gets MAX_WORKER_ATTEMPTS runs of its own. Undefined: every
   * delivery counts as another record.
   */
  readonly delivery?: RecordDelivery;
  /** The requests waiting for labels, kept across their redeliveries (one per process). */
  readonly waits: LabelWaits;
  /**
   * Accepted event times (DRIFTLINE_EVENT_TIME_*): a `data_to` further ahead than this is poison,
   * so a request cannot hold its partition waiting for labels of a far future window.
   */
  readonly eventTime?: EventTimeBounds;
  /** Told when a request starts (true) and stops (false) waiting for labels (a gauge). */
  readonly onWaiting?: (model: string, waiting: boolean) => void;
  /**
   * Where the staged rollout records candidate → shadow|rejected, and reads the model's recorded
   * transitions (its gate records come after them; a retry reuses its own). Needed when staged.
   */
  readonly transitions?: Pick<ModelTransitionStore, 'record' | 'history'>;
  /**
   * The model's event clock, read as the model-controller reads it (libs/warehouse `labelClock`):
   * the staged rollout dates its gate records on it (gateRecordTime). Needed when staged.
   */
  readonly modelClock?: Pick<PredictionStore, 'labelClock'>;
  /** Stores the version's CBPE calibration map under its reference id (the label-joiner reads it). */
  readonly saveCalibration?: (
    model: string,
    version: string,
    referenceId: string,
    map: CalibrationMap,
  ) => Promise<void>;
}

export type Outcome = 'already_done' | 'republished' | 'promoted' | 'shadowed' | 'rejected';

/**
 * Not enough labels yet, and the wait (`data_to + DRIFTLINE_TRAINER_LABEL_WAIT`) is not over: the
 * request is to be handled again after `retryInMs` (the service defers its partition; nothing of
 * it is committed, nothing else waits).
 */
export interface AwaitingLabels {
  readonly kind: 'awaiting_labels';
  readonly retryInMs: number;
  /** When the wait ends (epoch ms): then the request trains or is refused. */
  readonly until: number;
  readonly shortfall: string;
}

/**
 * Failed worker runs one retrain request may have. A window the worker fails on every time (past
 * the timeout, killed for memory) was retried for ever, holding its retrain.v1 partition: no later
 * request of any model there was handled. Counted in the version's directory, so a restart of the
 * trainer does not reset it; past it the request is dead-lettered (giveUpWorkerRuns), and the
 * retrain policy's next fire (after its cooldown) tries again as a new request. The count is
 * removed when the request is given up, so the same request replayed from the DLQ (after raising
 * the timeout or the memory) gets MAX_WORKER_ATTEMPTS runs again; kept, it was given up at once,
 * without a run.
 */
export const MAX_WORKER_ATTEMPTS = 3;

const WORKER_ATTEMPTS_FILE = 'worker-attempts';
/** The give-up of a request on its worker runs: the record given up, under what, when, why (give-up-record.ts). */
const WORKER_GIVEN_UP_FILE = 'worker-given-up';

/** What a give-up is recorded with: the record handled and the configuration it is decided under. */
interface GiveUpContext {
  readonly delivery: RecordDelivery | undefined;
  readonly configuration: string;
  readonly now: () => number;
}

/**
 * Gives the request up on its worker runs, as poison (VALIDATION_FAILED): the consumer loop
 * dead-letters it at once. It was INTERNAL, a code the loop takes for a fault of the processor when
 * the record fails alone in its batch: held (DRIFTLINE_KAFKA_FAULT_HOLD) instead; the retry found
 * no count and ran the worker MAX_WORKER_ATTEMPTS times again, each retriable failure restarting
 * the hold, so it was never dead-lettered and its partition stuck (found by a review). The give-up
 * is recorded with the record (position and fingerprint), the configuration and the time before the
 * count goes: a redelivery of that record (the dead-letter write failed) is given up again without
 * a run (givenUpBefore); a replay is another record. Not recorded (the disk), the count stays at
 * the bound, which gives up without a run too.
 */
function giveUpWorkerRuns(dir: string, context: GiveUpContext, reason: string, cause?: unknown): PoisonRecordError {
  const error = new PoisonRecordError('VALIDATION_FAILED', reason, cause === undefined ? {} : { cause });
  try {
    if (context.delivery === undefined) rmSync(join(dir, WORKER_GIVEN_UP_FILE), { force: true });
    else
      writeGiveUp(dir, { delivery: context.delivery, configuration: context.configuration, at: context.now(), reason });
    rmSync(join(dir, WORKER_ATTEMPTS_FILE), { force: true });
  } catch {
    // The count, at the bound, gives the redelivery up without a run.
  }
  return error;
}

const giveUpContextOf = (deps: TrainerDeps): GiveUpContext => ({
  delivery: deps.delivery,
  configuration: configurationDigest(deps.config, deps.python),
  now: deps.now ?? Date.now,
});

function writeGiveUp(dir: string, record: GiveUpRecord): void {
  writeFileSync(join(dir, WORKER_GIVEN_UP_FILE), JSON.stringify(record));
}

/**
 * Throws the recorded give-up again when this very record was given up on its worker runs before,
 * under the same configuration, lately (give-up-record.ts: its dead-lettering failed, or the
 * trainer crashed before the commit, so it came back): at once, without reading the window or
 * running the worker; the repeat renews the give-up's time, so an outage that keeps handing the
 * record back keeps it given up. Otherwise the give-up is forgotten: another record of the request
 * (a replay, a recreated topic), or this one reprocessed after a change of the configuration or
 * GIVE_UP_REMEMBERED_MS, gets MAX_WORKER_ATTEMPTS runs of its own.
 */
function givenUpBefore(dir: string, context: GiveUpContext, log: Logger): void {
  const file = join(dir, WORKER_GIVEN_UP_FILE);
  if (!existsSync(file)) return;
  let held: GiveUpRecord | undefined;
  try {
    held = parseGiveUpRecord(readFileSync(file, 'utf8'));
  } catch {
    held = undefined; // unreadable: no give-up to repeat
  }
  const now = context.now();
  const decision = giveUpDecision(held, context.delivery, context.configuration, now);
  if (decision.kind === 'repeat') {
    const { record } = decision;
    try {
      writeGiveUp(dir, { ...record, at: now });
    } catch {
      // Not renewed: it holds from the give-up (or its last renewal) all the same.
    }
    log.warn(
      { delivery: context.delivery?.position, givenUpAt: iso(record.at) },
      `this record was given up on its worker runs under the same configuration: given up again without a run (a redelivery). Reprocessed ${formatDuration(GIVE_UP_REMEMBERED_MS)} or more after its last give-up, or after a change of a setting a worker run depends on (DRIFTLINE_TRAINER_TIMEOUT, the training parameters, _DEVICE, _MAX_ROWS, _HOLDOUT_FRACTION, _PYTHON), it runs again; replayed from the DLQ, at once`,
    );
    throw new PoisonRecordError('VALIDATION_FAILED', record.reason);
  }
  if (held !== undefined && held.delivery.position === context.delivery?.position) {
    log.info(
      { delivery: held.delivery.position, givenUpAt: iso(held.at), why: decision.why },
      'this position was given up on its worker runs before; not a redelivery of that record now: fresh worker runs',
    );
  }
  rmSync(file, { force: true });
}

/** What is kept of a failure however long the reason's prefix (a long request id and model name). */
const MIN_FAILURE_BYTES = 256;

/**
 * `text` within `maxBytes` UTF-8 bytes: its head (what ended, a third) and its tail (the error
 * line), never splitting a character. Counted in UTF-16 units against a cap in bytes, a stderr
 * that was not ASCII lost its error line to the DLQ's cut of the tail (found by a review).
 */
function abridged(text: string, maxBytes: number): string {
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length <= maxBytes) return text;
  const gap = ' … ';
  const room = Math.max(0, maxBytes - Buffer.byteLength(gap));
  const isContinuation = (i: number) => i < bytes.length && (bytes[i]! & 0xc0) === 0x80;
  let headEnd = Math.floor(room / 3);
  while (headEnd > 0 && isContinuation(headEnd)) headEnd--;
  let tailStart = bytes.length - (room - headEnd);
  while (isContinuation(tailStart)) tailStart++;
  return `${bytes.subarray(0, headEnd).toString('utf8')}${gap}${bytes.subarray(tailStart).toString('utf8')}`;
}

/** `prefix` + the failure abridged to the bytes left of the DLQ reason's cap. */
function withFailure(prefix: string, failure: string): string {
  const left = Math.max(MIN_FAILURE_BYTES, DEFAULT_MAX_REASON_BYTES - Buffer.byteLength(prefix));
  return prefix + abridged(failure, left);
}

const GIVEN_UP_ADVICE =
  'given up (a new request, or this one replayed from the DLQ after raising DRIFTLINE_TRAINER_TIMEOUT or the memory, may succeed)';

/**
 * runWorker, then `read` of its output, counting failures of either for this request in `dir`
 * (MAX_WORKER_ATTEMPTS). The count is
 * raised before the run, so a trainer killed together with its worker (for memory) counts it too;
 * it is taken back when the run failed for a reason outside the data (WorkerEnvironmentError: the
 * interpreter missing, an OS error, a stop), and cleared when a run completes (before, completed
 * runs counted, so a later failure of the same request could be its last). Past the bound, the
 * request is given up as poison (giveUpWorkerRuns), the reason naming the attempts and the last
 * failure.
 *
 * Failures of the environment (the interpreter cannot start, exit 75; not a stop) count toward a
 * longer bound of their own instead, kept in `dir` too (environment-failures.ts): failing for
 * ENVIRONMENT_FAILURE_BUDGET_MS and MIN_ENVIRONMENT_FAILURES times in a row, the request is given
 * up (a non-retriable error: dead-lettered with the reason and how to fix it, after the loop's
 * processor-fault hold). Before, a venv deleted after start had the request retried for ever. The
 * streak is not ended here, whatever the worker's outcome: only a run moved into place ends it
 * (handleRequest), so a file error after a successful run (moving it into place: a failing disk)
 * counts on it too.
 * Ended by the worker's success, such a failure was retried for ever, training again each time
 * (found by a review).
 */
async function runWorkerCounted<T>(
  dir: string,
  run: WorkerRun & { readonly subject: string },
  read: (result: WorkerResult) => T,
  giveUp: GiveUpContext,
): Promise<T> {
  const { now } = giveUp;
  const file = join(dir, WORKER_ATTEMPTS_FILE);
  const failed = existsSync(file) ? Number.parseInt(readFileSync(file, 'utf8'), 10) || 0 : 0;
  if (failed >= MAX_WORKER_ATTEMPTS) {
    // The last run ended with the trainer (killed together with its worker: memory, as a rule).
    throw giveUpWorkerRuns(
      dir,
      giveUp,
      `${run.subject}: trainer worker failed ${failed} times on this request (the last run ended with the trainer: killed together, for memory?); ${GIVEN_UP_ADVICE}`,
    );
  }
  writeFileSync(file, String(failed + 1));
  const startedAt = now();
  try {
    const output = read(await runWorker(run));
    rmSync(file, { force: true });
    return output;
  } catch (error) {
    if (error instanceof WorkerEnvironmentError) {
      writeFileSync(file, String(failed));
      if (error.failure === 'stopped') throw error;
      const fix =
        error.failure === 'cannot-start' || error.failure === 'cannot-import'
          ? `make ${run.python} a working interpreter: restart the trainer to rebuild its venv (worker/setup-venv.sh; DRIFTLINE_TRAINER_VENV), or point DRIFTLINE_TRAINER_PYTHON at a working Python with the worker's packages`
          : `fix the OS error (a full disk or file table, permissions) of the worker's files in ${dirname(run.outDir)} (DRIFTLINE_TRAINER_ARTIFACT_DIR) or of its interpreter ${run.python}`;
      const outcome = recordEnvironmentFailureOf(dir, error, startedAt, now(), fix);
      // Given up: no count left (the streak stays: a replay still broken is given up at once).
      if (outcome !== error) rmSync(file, { force: true });
      throw outcome;
    }
    const failure = toDriftlineError(error);
    if (failure.retriable && failed + 1 < MAX_WORKER_ATTEMPTS) throw error;
    if (!failure.retriable) {
      rmSync(file, { force: true }); // refused by the worker (exit 3): a replay starts a count of its own
      throw error;
    }
    throw giveUpWorkerRuns(
      dir,
      giveUp,
      withFailure(
        `${run.subject}: trainer worker failed ${failed + 1} times on this request; ${GIVEN_UP_ADVICE}. The last failure: `,
        failure.message,
      ),
      error,
    );
  }
}

/** The requests' environment streaks (one store per process: its memory holds the unwritten ones). */
const environmentStreaks = environmentStreakStore();

/**
 * Counts one environment failure of the request in `dir` (not a stop): returns the failure itself
 * (retriable) while within the bound, else the give-up (non-retriable: dead-lettered with the reason
 * and `fix`).
 */
function recordEnvironmentFailureOf(
  dir: string,
  error: WorkerEnvironmentError,
  startedAt: number,
  now: number,
  fix: string,
): DriftlineError {
  const streak = recordEnvironmentFailure(environmentStreaks.read(dir), startedAt, now);
  environmentStreaks.write(dir, streak);
  if (!environmentExhausted(streak)) return error;
  const minutes = Math.round((streak.last - streak.since) / 60_000);
  return new DriftlineError(
    'INTERNAL',
    `trainer worker environment failed ${streak.failures} times in a row over ${minutes} min (bound: ${formatDuration(ENVIRONMENT_FAILURE_BUDGET_MS)}): ${error.reason}; given up (a new request may succeed). To fix: ${fix}`,
    { cause: error },
  );
}

/**
 * Runs `step`, a use of the version's directory `dir`; a failure of the directory's environment
 * (fileEnvironmentCode: permissions, a path through a file, the disk) is counted toward the
 * environment bound like the worker's exit 75 — retried, then given up after
 * ENVIRONMENT_FAILURE_BUDGET_MS — never dead-lettered as a fault of the request.
 */
async function usingArtifactDir<T>(deps: TrainerDeps, dir: string, step: () => T | Promise<T>): Promise<T> {
  const now = deps.now ?? Date.now;
  const startedAt = now();
  try {
    return await step();
  } catch (error) {
    const code = fileEnvironmentCode(error);
    if (code === undefined) throw error;
    const reason = `the artifact directory cannot be used (${(error as Error).message})`;
    const failure = new WorkerEnvironmentError('artifact-dir', `${reason}: retried, not counted as an attempt`, {
      cause: error,
      reason,
    });
    throw recordEnvironmentFailureOf(
      dir,
      failure,
      startedAt,
      now(),
      `make ${resolve(deps.config.artifactDir)} (DRIFTLINE_TRAINER_ARTIFACT_DIR) and what is under it writable by the trainer's user, or free its disk`,
    );
  }
}

/** A run's files besides result.json, moved into the version's directory before it. */
const RUN_FILES = ['train.arrow', 'model.json', 'meta.json', 'scores.arrow'] as const;

function fsyncPath(path: string): void {
  const fd = openSync(path, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A completed run, read back: what registering it needs. */
interface CompletedRun {
  readonly result: WorkerResult;
  /** The new model's score of every row. */
  readonly scores: Float64Array;
  /** Why the model-server would refuse model.json + meta.json (undefined: it serves them). */
  readonly servingProblem: string | undefined;
}

/**
 * The completed run in `runDir` for a dataset of `rows` rows, or undefined when any of its files is
 * missing or unreadable (cut short by a crash of the host), or its meta.json names another
 * model.json (`model_sha256`, written by the worker; absent in runs of workers before it): then it
 * is no completed run and the model is trained again. An unparsable result.json or scores.arrow
 * had been a poison error; a model.json and meta.json of two runs (another trainer's files moved
 * in at the same time) would have been registered and served together.
 */
function readCompletedRun(runDir: string, rows: number): CompletedRun | undefined {
  const result = readWorkerResult(runDir);
  if (result === undefined) return undefined;
  let scores: Float64Array;
  let model: unknown;
  let meta: unknown;
  try {
    const column = tableFromIPC(readFileSync(join(runDir, 'scores.arrow'))).getChild('score');
    if (column === null || column.length !== rows) return undefined;
    scores = Float64Array.from(column.toArray() as ArrayLike<number>);
    const modelBytes = readFileSync(join(runDir, 'model.json'));
    model = JSON.parse(modelBytes.toString('utf8'));
    meta = JSON.parse(readFileSync(join(runDir, 'meta.json'), 'utf8'));
    const named = (meta as { model_sha256?: unknown } | null)?.model_sha256;
    if (named !== undefined && named !== createHash('sha256').update(modelBytes).digest('hex')) return undefined;
  } catch {
    return undefined;
  }
  return { result, scores, servingProblem: servingProblem(model, meta) };
}

/** Attempt directories older than this belong to no live worker (it is killed at the timeout). */
const staleAfter = (timeoutMs: number) => timeoutMs + 60_000;

/**
 * Trains `arrow` in a directory of its own (`attempt-*` under the version's), then moves the run
 * into the version's directory, result.json last, each step synced. Two trainers on one request
 * (the old owner of a partition still running after a rebalance) never write into the same
 * train.arrow or model.json. A run that completes after another trainer's run of the request came
 * into the directory (its result.json there: this trainer removed any before training) or was
 * registered (`takenMeanwhile`) is not moved in: undefined. Moved in, it replaced a run that may
 * have been published and loaded — a model-server reading between the renames of model.json and
 * meta.json got one run's model with the other's features and categories (found by a review).
 */
async function trainRun(
  deps: TrainerDeps,
  dir: string,
  arrow: Uint8Array,
  rows: number,
  log: Logger,
  subject: string,
  takenMeanwhile: () => Promise<boolean>,
): Promise<CompletedRun | undefined> {
  const { config } = deps;
  for (const name of readdirSync(dir)) {
    if (!name.startsWith('attempt-')) continue;
    const at = join(dir, name);
    try {
      if (Date.now() - statSync(at).mtimeMs > staleAfter(config.timeoutMs))
        rmSync(at, { recursive: true, force: true });
    } catch {
      // Removed meanwhile by the trainer that made it.
    }
  }
  const attempt = mkdtempSync(join(dir, 'attempt-'));
  try {
    const data = join(attempt, 'train.arrow');
    writeFileSync(data, arrow);
    fsyncPath(data);
    const started = Date.now();
    const run = await runWorkerCounted(
      dir,
      {
        python: deps.python,
        data,
        outDir: attempt,
        device: config.device,
        params: config.params,
        timeoutMs: config.timeoutMs,
        logger: log,
        subject,
        ...(deps.signal === undefined ? {} : { signal: deps.signal }),
      },
      () => {
        const completed = readCompletedRun(attempt, rows);
        if (completed === undefined) {
          throw new DriftlineError('INTERNAL', `trainer worker output in ${attempt} is incomplete or unreadable`, {
            retriable: true,
          });
        }
        return completed;
      },
      giveUpContextOf(deps),
    );
    const { result } = run;
    log.info(
      { device: result.device, deviceReason: result.device_reason, ms: Date.now() - started, rows },
      'model trained',
    );
    if (existsSync(join(dir, 'result.json')) || (await takenMeanwhile())) {
      log.info({}, "another trainer's run of this request completed meanwhile: its files stay, this run is dropped");
      return undefined;
    }
    rmSync(join(dir, 'result.json'), { force: true }); // no completed run while its files change
    for (const name of RUN_FILES) renameSync(join(attempt, name), join(dir, name));
    fsyncPath(dir);
    renameSync(join(attempt, 'result.json'), join(dir, 'result.json'));
    fsyncPath(dir);
    return run;
  } finally {
    rmSync(attempt, { recursive: true, force: true });
  }
}

/**
 * The request's training window: integer epoch ms a date can hold, `data_from` < `data_to`.
 * Anything else can never train: poison, naming the field (not a RangeError from deep inside).
 */
function checkDataWindow(request: RetrainRequest): void {
  for (const field of ['data_from', 'data_to'] as const) {
    const v = request[field];
    if (!Number.isSafeInteger(v) || Math.abs(v) > MAX_DATE_MS) {
      throw new PoisonRecordError(
        'VALIDATION_FAILED',
        `retrain request: ${field} ${v} is not a time in epoch milliseconds`,
      );
    }
  }
  if (!(request.data_from < request.data_to)) {
    throw new PoisonRecordError(
      'VALIDATION_FAILED',
      `retrain request: data_from ${request.data_from} must be before data_to ${request.data_to}`,
    );
  }
}

/**
 * The version's artifact directory, `<artifactDir>/<model>/<version>`. A name that is not a plain
 * segment (`..`, `a/b`, empty, over 128 characters) can never train: poison, with the reason.
 * The resolved path is checked to stay inside the artifact directory as well.
 */
function artifactDirFor(artifactDir: string, model: string, version: string): string {
  for (const [field, value] of [
    ['model', model],
    ['version', version],
  ] as const) {
    if (!isArtifactName(value)) {
      throw new PoisonRecordError(
        'VALIDATION_FAILED',
        `retrain request: ${field} ${JSON.stringify(value.slice(0, 140))} cannot name an artifact directory (${ARTIFACT_NAME_RULE})`,
      );
    }
  }
  const root = resolve(artifactDir);
  const dir = resolve(root, model, version);
  if (relative(root, dir).startsWith('..') || isAbsolute(relative(root, dir))) {
    throw new PoisonRecordError(
      'VALIDATION_FAILED',
      `retrain request: model ${JSON.stringify(model)} escapes the artifact directory`,
    );
  }
  return dir;
}

/** Whether `file` holds exactly `bytes` (false when it does not exist). */
function sameBytes(file: string, bytes: Uint8Array): boolean {
  if (!existsSync(file)) return false;
  const held = readFileSync(file);
  return held.length === bytes.length && Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).equals(held);
}

/** `decided_by` of the trainer's gate records. */
const GATE_DECIDER = 'trainer:offline_gate';

/**
 * The staged rollout's records of a registered version: its registration as a candidate and the
 * offline gate's verdict, candidate → shadow (gated against `base_version`, kept as
 * previous_version: the production version the controller compares it with) or → rejected. `at`:
 * event time, from gateRecordTime; `recordedAt`: the wall clock.
 */
export function gateTransitions(row: ModelVersionRow, at: number, recordedAt: number): TransitionRow[] {
  const common = {
    model: row.model,
    version: row.version,
    at,
    decided_by: GATE_DECIDER,
    evidence: JSON.stringify({ gate: 'offline_holdout', metrics: row.metrics }),
    canary_share: null,
    recorded_at: recordedAt,
  };
  const gatedAgainst = row.base_version === '' ? null : row.base_version;
  return [
    {
      ...common,
      from_stage: null,
      to_stage: 'candidate',
      reason: 'trained',
      detail: `request ${row.request_id}`,
      previous_version: null,
    },
    {
      ...common,
      from_stage: 'candidate',
      to_stage: row.status === 'PROMOTED' ? 'shadow' : 'rejected',
      reason: 'offline_gate',
      detail: row.promotion_reason,
      previous_version: gatedAgainst,
    },
  ];
}

/** Where a gate record's time comes from (logged). */
export type GateClock = 'event' | 'wall' | 'data_to' | 'after_last_record' | 'recorded';

/** The times gateRecordTime weighs (epoch ms). */
export interface GateTimes {
  /** The model's event clock (the warehouse's `labelClock`), undefined when it has no labelled prediction. */
  readonly clock: LabelClock | undefined;
  /** The request's training window end (`data_to`): event time the servers had predicted past. */
  readonly dataTo: number;
  /** The wall clock. */
  readonly now: number;
  /** The wall clock + DRIFTLINE_EVENT_TIME_MAX_FUTURE: no event time lies past it. */
  readonly notAfter: number;
}

/**
 * When the staged rollout's gate records of `version` are dated (epoch ms), on the model's EVENT
 * clock, as the model-controller measures every stage: the shadow's pairs are read from it, its
 * `max_time` counts from it, and every later decision of the model is dated after it. That is the
 * model's label clock (`clock.labelTime`, the warehouse's `labelClock`: its newest label time,
 * quorum-robust), or the wall clock `now` when the model has no labelled prediction (or the clock
 * is past `notAfter`, as the controller leaves it out); never before the request's own `data_to`
 * (capped at `notAfter`); and never before the model's latest recorded transition (+1 ms: the
 * history replays in the order it was recorded). A version whose gate records exist already (a
 * retried request) keeps their time, so the retry records and publishes the very rows and events
 * of the first attempt.
 * Dated by the wall clock (its registration), a shadow where event time runs a month behind got no
 * pair and never decided; with event time 40× the wall clock it was rejected untested; and every
 * later decision of the model was dated after it, a month ahead of its evidence (found by a review).
 * Dated by the label clock alone, a shadow registered while labels lagged (a label-joiner outage, a
 * stalled label source) started its `max_time` at the stale label time: the controller's first tick
 * after the labels caught up ended it, rejected with 0 pairs before one could exist (found by the
 * next review). The
 * label clock is where labels are, not where the servers score: `data_to` is a window the
 * retrain-trigger saw closed, so the servers had predicted past it before the version existed.
 */
export function gateRecordTime(
  recorded: readonly TransitionRow[],
  version: string,
  times: GateTimes,
): { readonly at: number; readonly clock: GateClock } {
  const kept = recordedGateTime(recorded, version);
  if (kept !== undefined) return { at: kept, clock: 'recorded' };
  const { clock, dataTo, now, notAfter } = times;
  const history = usableTransitions(recorded);
  const usable = usableClock(clock, notAfter);
  const event = usable !== undefined;
  const read = usable?.labelTime ?? now;
  const windowEnd = Number.isSafeInteger(dataTo) ? Math.min(dataTo, notAfter) : Number.NEGATIVE_INFINITY;
  const at = Math.max(read, windowEnd);
  const after = history.reduce((m, t) => Math.max(m, t.at + 1), Number.NEGATIVE_INFINITY);
  if (after > at) return { at: after, clock: 'after_last_record' };
  return { at, clock: windowEnd > read ? 'data_to' : event ? 'event' : 'wall' };
}

/** The time of `version`'s gate records when they are recorded already (a retried request). */
function recordedGateTime(recorded: readonly TransitionRow[], version: string): number | undefined {
  return usableTransitions(recorded).find((t) => t.version === version && t.decided_by === GATE_DECIDER)?.at;
}

/** TRAINED (registered), then the stage event of the gate's transition, as the controller would re-publish it. */
function stagedEvents(row: ModelVersionRow, eventTime: number, gate: TransitionRow): ModelEvent[] {
  const [trained] = modelEvents(row, eventTime);
  return trained === undefined ? [transitionEvent(gate, row)] : [trained, transitionEvent(gate, row)];
}

/** The model events of a registered version: TRAINED, then PROMOTED or REJECTED. */
export function modelEvents(row: ModelVersionRow, eventTime: number): ModelEvent[] {
  const base = {
    model: row.model,
    version: row.version,
    event_time: eventTime,
    request_id: row.request_id,
    metrics: { ...row.metrics },
    artifact_uri: row.artifact_uri,
    reference_uri: row.reference_uri,
  };
  return [
    { ...base, kind: 'TRAINED' },
    { ...base, kind: row.status === 'PROMOTED' ? 'PROMOTED' : 'REJECTED' },
  ];
}

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Reads the request's window; with fewer than DRIFTLINE_TRAINER_MIN_ROWS labeled rows (or a class
 * missing) it answers `awaiting_labels` (label-wait.ts): read again after DRIFTLINE_TRAINER_LABEL_POLL,
 * until `data_to + DRIFTLINE_TRAINER_LABEL_WAIT`, then refused (poison: dead-lettered with the
 * reason). It used to sleep here, inside the batch, and that held every partition of the process
 * (kafkajs fetches again only once every batch of a fetch is done): the service now defers the
 * request's partition instead. `deps.waits` keeps when the wait began across the redeliveries.
 */
async function readLabeledWindow(
  deps: TrainerDeps,
  request: RetrainRequest,
  log: Logger,
): Promise<(TrainingWindow & { readonly counts: ClassCounts }) | AwaitingLabels> {
  const { config } = deps;
  const now = deps.now ?? Date.now;
  const range = `[${iso(request.data_from)}, ${iso(request.data_to)})`;
  const window = await deps.source.read(
    request.model,
    request.data_from,
    request.data_to,
    config.maxRows,
    request.model_version,
  );
  const rows = window.rows.length;
  // With a base version named, its held-out classes too: the gate measures it on the rows it scored.
  const counts = classCounts(window.rows, config.holdoutFraction, request.model_version);
  const needs = { minRows: config.minRows, minClassRows: config.minClassRows };
  const at = now();
  const step = labelWaitStep(counts, needs, request.data_to, at, config.labelWait, `of ${request.model} in ${range}`);
  if (step.kind === 'wait') {
    const { since, began } = deps.waits.waiting(request.request_id, request.model, at);
    if (began) {
      deps.onWaiting?.(request.model, true);
      log.info(
        { rows, shortfall: step.shortfall, until: iso(step.until), pollMs: config.labelWait.pollMs },
        'not enough labels yet; waiting for labels (its partition only: the request is handled again every poll)',
      );
    } else log.debug({ rows, waitedMs: at - since, until: iso(step.until) }, 'still not enough labels; waiting');
    return { kind: 'awaiting_labels', retryInMs: step.ms, until: step.until, shortfall: step.shortfall };
  }
  const waited = deps.waits.end(request.request_id);
  if (waited !== undefined) deps.onWaiting?.(request.model, false);
  if (step.kind === 'train') {
    if (waited !== undefined) log.info({ rows, waitedMs: at - waited.since }, 'enough labeled rows arrived; training');
    return { ...window, counts };
  }
  throw new DriftlineError(
    'VALIDATION_FAILED',
    `retrain ${request.request_id}: ${step.shortfall}; labels were awaited until ${iso(step.until)} (data_to + DRIFTLINE_TRAINER_LABEL_WAIT)`,
  );
}

/**
 * The outcome of a request registered before (undefined: it was not): published → nothing to do;
 * registered but unpublished (a crash after registering) → its events published.
 */
async function handledBefore(deps: TrainerDeps, request: RetrainRequest, log: Logger): Promise<Outcome | undefined> {
  const now = deps.now ?? Date.now;
  const existing = await deps.registry.byRequest(request.request_id);
  if (existing?.published === 1) {
    log.info({ version: existing.version }, 'retrain request already handled; skipped');
    return 'already_done';
  }
  if (existing === undefined) return undefined;
  const dated = await publishVersion(deps, existing);
  await deps.registry.save({ ...existing, published: 1, updated_at: chTime(now()) });
  log.info(
    { version: existing.version, eventTime: iso(dated.eventTime), datedBy: dated.clock },
    'registered version published after a restart',
  );
  return 'republished';
}

/**
 * Handles one retrain request, idempotently:
 *
 * 1. a published model_versions row for the request_id → nothing to do (the same request twice
 *    trains once); a registered but unpublished one (crash after registering) → publish its events;
 * 2. a completed worker run in the version's artifact directory (crash after training, before
 *    registering) → reuse it instead of training again;
 * 3. else read the window from labeled_predictions (too few labels: `awaiting_labels`, handled
 *    again later, for a bounded time), write it as Arrow IPC, run the worker.
 *
 * Then evaluate against the serving model on the held-out slice, store the reference profile (on
 * promotion, before the PROMOTED event so drift-monitor finds it), register, publish, mark published.
 * Requests of one model arrive on one partition, so Kafka's partition ownership serialises them.
 */
export async function handleRequest(deps: TrainerDeps, request: RetrainRequest): Promise<Outcome | AwaitingLabels> {
  const { config, logger } = deps;
  const now = deps.now ?? Date.now;
  const log = logger.child({ model: request.model, requestId: request.request_id });
  const before = await handledBefore(deps, request, log);
  if (before !== undefined) return before;

  checkDataWindow(request);
  // Only the future bound: an old window is a replay, refused or trained without waiting.
  const { maxFutureMs } = deps.eventTime ?? DEFAULT_EVENT_TIME_BOUNDS;
  const ahead = eventTimeProblem(request.data_to, now(), { maxFutureMs, minMs: -MAX_DATE_MS }, 'data_to');
  if (ahead !== undefined) throw new PoisonRecordError('VALIDATION_FAILED', `retrain ${request.request_id}: ${ahead}`);
  const version = versionFor(request);
  const dir = artifactDirFor(config.artifactDir, request.model, version);
  // Before the window is read: an unusable directory fails each retry without a ClickHouse read.
  await usingArtifactDir(deps, dir, () => {
    makeVersionDir(config.artifactDir, dir);
    givenUpBefore(dir, giveUpContextOf(deps), log);
  });
  const window = await readLabeledWindow(deps, request, log);
  if (!('rows' in window)) return window;
  const rows = window.rows;
  if (window.truncated) {
    log.warn(
      { rows: rows.length, maxRows: config.maxRows, from: rows[0]?.time },
      'training window larger than DRIFTLINE_TRAINER_MAX_ROWS: its newest rows are used',
    );
  }
  // Built in slices that let the event loop run (heartbeats, /healthz): see steps.ts.
  const ds: Dataset = await runYielding(datasetSteps(rows, config.holdoutFraction)).catch((error: unknown) => {
    // The refusal reaches the DLQ alone: it names the request it refuses (the dataset knows only rows).
    const failure = toDriftlineError(error);
    throw new DriftlineError(
      failure.code,
      `retrain ${request.request_id} of ${request.model} in [${iso(request.data_from)}, ${iso(request.data_to)}): ${failure.message}`,
      { cause: error, retriable: failure.retriable },
    );
  });
  const { counts: dropped, examples } = ds.dropped;
  if (Object.values(dropped).some((n) => n > 0) || ds.outOfRange > 0) {
    log.warn(
      { columns: ds.features.length, dropped, examples, outOfRange: ds.outOfRange },
      'feature names left out of the training set, or values beyond float32 read as missing',
    );
  }
  const arrow = await runYielding(arrowSteps(ds));
  const run = await usingArtifactDir(deps, dir, async () => {
    const completed = readCompletedRun(dir, ds.rows);
    // A completed run is reused only on the very rows it was trained on. Labels keep joining for
    // days, so the window read again after a failure may differ (more rows, or as many different ones
    // when truncated): its scores would then be paired with rows they were not computed for (a wrong
    // reference and calibration, or a count mismatch retried for ever).
    let inPlace: CompletedRun;
    if (completed !== undefined && sameBytes(join(dir, 'train.arrow'), arrow)) {
      log.info({ version }, 'completed training found in the artifact directory; reused');
      inPlace = completed;
    } else {
      if (completed !== undefined) {
        log.info({ version, rows: ds.rows }, 'training window changed since the completed run; training again');
      }
      // result.json last: without it, no run counts as completed (an unreadable one included).
      rmSync(join(dir, 'result.json'), { force: true });
      const trained = await trainRun(
        deps,
        dir,
        arrow,
        ds.rows,
        log.child({ version }),
        `retrain ${request.request_id} of ${request.model}`,
        async () => (await deps.registry.byRequest(request.request_id)) !== undefined,
      );
      if (trained === undefined) return undefined;
      inPlace = trained;
    }
    // The run is in place: only now does the request's environment streak end (runWorkerCounted).
    environmentStreaks.clear(dir);
    return inPlace;
  });
  // Another trainer's run of the request came in meanwhile (trainRun): handled as it left it.
  if (run === undefined) return handleRequest(deps, request);
  const { result, scores } = run;

  // A model the model-server would refuse to load is never promoted: it registers as REJECTED, and
  // the serving version stays.
  const verdict: PromotionVerdict =
    run.servingProblem === undefined
      ? decidePromotion(result.metrics, config.promotion, gateBaselineOf(window.counts))
      : {
          promote: false,
          reason: `the model-server would refuse this model: ${run.servingProblem}`,
          candidate: undefined,
          current: undefined,
        };
  let referenceId: string | null = null;
  let referenceUri: string | null = null;
  if (verdict.promote) {
    const set = await runYielding(referenceSteps(request.model, version, ds, scores));
    referenceUri = await deps.saveReference(set);
    referenceId = set.referenceId;
    const calibration = calibrationFromDataset(ds, scores);
    if (calibration !== undefined) await deps.saveCalibration?.(request.model, version, set.referenceId, calibration);
  }
  const registeredAt = now();
  const row: ModelVersionRow = {
    model: request.model,
    version,
    request_id: request.request_id,
    base_version: request.model_version,
    status: verdict.promote ? 'PROMOTED' : 'REJECTED',
    promotion_reason: verdict.reason,
    data_from: chTime(request.data_from),
    data_to: chTime(request.data_to),
    rows_train: result.rows_train,
    rows_holdout: result.rows_holdout,
    metrics: {
      ...result.metrics,
      rows_train: result.rows_train,
      rows_holdout: result.rows_holdout,
      device_cuda: result.device === 'cuda' ? 1 : 0,
      training_seconds: result.seconds,
    },
    params: JSON.stringify({
      ...config.params,
      xgboost: result.xgboost,
      // What of the requested window was trained on (DRIFTLINE_TRAINER_MAX_ROWS keeps the newest rows).
      training_window: {
        rows: ds.rows,
        max_rows: config.maxRows,
        truncated: window.truncated,
        kept: 'newest',
        first_time: ds.rows > 0 ? ds.time[0] : null,
      },
      // What of its features: names left out (dataset.ts), values beyond float32 read as missing.
      features: {
        columns: ds.features.length,
        dropped,
        dropped_examples: examples,
        out_of_range_values: ds.outOfRange,
      },
    }),
    artifact_uri: pathToFileURL(join(dir, 'model.json')).href,
    reference_id: referenceId,
    reference_uri: referenceUri,
    device: result.device,
    device_reason: result.device_reason,
    published: 0,
    registered_at: chTime(registeredAt),
    updated_at: chTime(registeredAt),
  };
  await deps.registry.save(row);
  const dated = await publishVersion(deps, row);
  await deps.registry.save({ ...row, published: 1, updated_at: chTime(Math.max(registeredAt + 1, now())) });
  log.info(
    {
      version,
      status: row.status,
      reason: verdict.reason,
      referenceId,
      rollout: config.rollout,
      currentRows: result.metrics.current_rows,
      eventTime: iso(dated.eventTime),
      datedBy: dated.clock,
    },
    'model version registered',
  );
  return verdict.promote ? (config.rollout === 'staged' ? 'shadowed' : 'promoted') : 'rejected';
}

/**
 * What the gate compares against besides the worker's metrics: the base version named, the held-out
 * class rate; from the counts the label wait let train, so both read one split.
 */
function gateBaselineOf(counts: ClassCounts): GateBaseline {
  const { holdout, base } = counts;
  return {
    baseVersion: base.version,
    holdoutRows: holdout.negative + holdout.positive,
    holdoutPositives: holdout.positive,
  };
}

/**
 * A time column of the version's row (epoch ms): `registered_at` dates its direct events, `data_to`
 * bounds its staged gate records (gateRecordTime). A row that has none is no row this trainer
 * wrote: non-retriable, naming the field.
 */
function rowTimeOf(row: ModelVersionRow, field: 'registered_at' | 'data_to'): number {
  const ms = Date.parse(`${String(row[field]).replace(' ', 'T')}Z`);
  if (!Number.isFinite(ms)) {
    throw new DriftlineError(
      'INTERNAL',
      `model_versions ${row.model} ${row.version}: ${field} ${JSON.stringify(row[field])} is no time; its events cannot be published`,
    );
  }
  return ms;
}

/** How a version's events were dated: direct, its registration; staged, its gate records' time (gateRecordTime). */
interface Dated {
  readonly eventTime: number;
  readonly clock: GateClock | 'registered';
}

/**
 * Publishes a registered version's events. Direct: dated its registration time, so a retried
 * request (the mark-published failed, the trainer crashed) publishes the very events of the first
 * attempt. Dated the retry's clock, a re-published PROMOTED came after a rollback of the version and
 * the model-server took it as a new decision: the rolled-back version served again (found by a
 * review). Staged: the gate's transitions, dated on the model's event clock (gateRecordTime; a
 * retry finds its rows and keeps their time), are recorded in model_transitions FIRST (a crash
 * before the publish leaves a record the model-controller re-publishes on its next start), then
 * TRAINED and the gate's event are published at that time.
 */
async function publishVersion(deps: TrainerDeps, row: ModelVersionRow): Promise<Dated> {
  if (deps.config.rollout === 'direct') {
    const eventTime = rowTimeOf(row, 'registered_at');
    await deps.publish(modelEvents(row, eventTime));
    return { eventTime, clock: 'registered' };
  }
  if (deps.transitions === undefined || deps.modelClock === undefined) {
    throw new DriftlineError('INTERNAL', 'staged rollout without a model_transitions store or the model clock');
  }
  const now = (deps.now ?? Date.now)();
  const notAfter = now + (deps.eventTime ?? DEFAULT_EVENT_TIME_BOUNDS).maxFutureMs;
  const recorded = await deps.transitions.history(row.model);
  // A retry keeps its recorded time: the clock is read only for a version not recorded yet.
  const kept = recordedGateTime(recorded, row.version) !== undefined;
  const clock = kept ? undefined : await deps.modelClock.labelClock(row.model, now, notAfter);
  const dated = gateRecordTime(recorded, row.version, { clock, dataTo: rowTimeOf(row, 'data_to'), now, notAfter });
  const rows = gateTransitions(row, dated.at, now);
  await deps.transitions.record(rows);
  await deps.publish(stagedEvents(row, dated.at, rows[1]!));
  return { eventTime: dated.at, clock: dated.clock };
}
