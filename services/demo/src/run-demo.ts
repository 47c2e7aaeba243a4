// The demo's story, reusable by `make demo` and by the end-to-end test. A fraud model is served by
// the model-server; traffic drifts at a known moment (inputs and the relationship to fraud); labels
// arrive late; drift is detected, a retrain is requested once, the trainer trains a version that
// passes its offline gate into shadow, the model-controller takes it through canary to production
// on live paired evidence, the drift monitor measures against the new reference, and live ROC AUC
// recovers. Scenario `bad-candidate` also sends a deliberately bad version into shadow, which the
// promotion policy must reject on live labels.
import { createHash } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { allServices } from '@driftline/cli';
import { createLogger } from '@driftline/observability';
import { operatorTransitions, type Stage, usableTransitions, viewOf } from '@driftline/policy';
import { modelCardFileName, renderModelCard, renderReport } from '@driftline/report';
import { contracts } from '@driftline/schemas';
import { createDriftlineProducer } from '@driftline/sdk';
import { startRunner } from '@driftline/service';
import { pickFreePort, type StackEndpoints } from '@driftline/stack';
import { closeEmbeddedEngine, type TransitionRow } from '@driftline/warehouse';
import { kafkaWaiter } from './kafka-wait.js';
import {
  inTimeOrder,
  invertedModel,
  liveAucByPhase,
  promotedAfter,
  stageLine,
  stageTimeline,
  type Transition,
} from './phases.js';
import { cleanUpRunDir } from './run-dir.js';
import { predictBatch, servedModels } from './serving-client.js';
import { drawFeatures, eventsOfSecond, Random, rulesScore, type TrafficOptions, truthOf } from './traffic.js';

const MODEL = 'fraud';
/** The rules that served before driftline trained a model; v1 is trained on their labelled history. */
const RULES_VERSION = 'v0';
const WINDOW_MS = 60_000;
const DRIFT_AFTER_WINDOWS = 6;
const MAX_WINDOWS = 40;
const WINDOWS_AFTER_PROMOTION = 4;
/** Event-time minutes of labelled history before the live traffic (the first version's training data). */
const HISTORY_MINUTES = 30;
const HISTORY_EVENTS = 12_000;
/** How long the traffic loop may stay stuck on Kafka before the run fails (one line, not minutes of silence). */
const KAFKA_STALL_MS = 60_000;
const SDK_BUFFER_WAIT_MS = 45_000;
/** A failed run's clean-up is bounded too: with Kafka gone the producer's close waits on sends that never end. */
const FAILED_CLEANUP_MS = 10_000;

export type DemoScenario = 'retrain' | 'bad-candidate';

export interface DemoOptions {
  readonly endpoints: StackEndpoints;
  readonly say: (line: string) => void;
  /** Event-time seconds per wall-clock second; default 30 (20 minutes of traffic in 40 s). */
  readonly speed?: number;
  /** Predictions per event-time second; default 40. */
  readonly rate?: number;
  /** Keep the embedded ClickHouse data under .driftline/ (for a look afterwards). */
  readonly keep?: boolean;
  /** `bad-candidate`: also put a deliberately bad version into shadow before the drift. */
  readonly scenario?: DemoScenario;
  /** Stops the run (Ctrl-C): it rejects with the signal's reason after cleaning up. */
  readonly signal?: AbortSignal;
}

/** One row per (window, measured version): which features drifted. */
export interface DemoWindow {
  readonly windowIndex: number;
  readonly version: string;
  readonly drifted: string[];
  readonly measured: string[];
}

export interface DemoResult {
  readonly summary: {
    scenario: DemoScenario;
    events: Record<string, number>;
    drift_windows: number;
    drifted_windows: number;
    alerts: number;
    retrain_requests: number;
    model_versions: number;
    first_version: string;
    serving_version: string;
    live_auc: ReturnType<typeof liveAucByPhase>;
    stages: ReturnType<typeof stageTimeline>;
    rollbacks: number;
    rejected: string[];
    report: string;
    seconds: number;
  };
  readonly driftAtWindow: number;
  readonly promotedAtWindow: number | undefined;
  readonly firstVersion: string;
  readonly windows: DemoWindow[];
}

function policyYaml(): string {
  return `version: 1
models:
  ${MODEL}:
    signals:
      share_drifted: 0.4
      prediction_drift: true
    sustain: 2
    cooldown: 2h
    training_window: 2m
`;
}

/**
 * Promotion on live evidence, sized for a demo: a few hundred labelled pairs decide (the
 * guarantee — P(false promotion) ≤ alpha — does not depend on the sample size).
 */
function rolloutYaml(): string {
  return `version: 1
defaults:
  canary_share: 0.3
  # Labels read in plain arrival order: the demo's event time runs 30x the wall clock, and the
  # default 1h arrival buckets (a guard for label files sorted by outcome) would hold every decision
  # for up to an hour of wall clock.
  arrival_bucket: 0
  promotion: { min_labels: 150, max_labels: 20000, max_time: 2h, alpha: 0.05 }
  rollback: { min_labels: 150, max_labels: 3000, max_time: 8m, alpha: 0.05, margin: 0.01 }
`;
}

function viewsYaml(): string {
  return `views:
  - name: user
    entity: user_id
    ttl: 1d
    features:
      amount: double
      age: double
      tenure_days: double
      country: string
      device: string
    aggregates:
      - { feature: amount, function: count, window: 10m }
      - { feature: amount, function: mean, window: 1h }
`;
}

const asTransition = (r: TransitionRow): Transition => ({
  version: r.version,
  from: r.from_stage ?? '',
  to: r.to_stage,
  at: r.at,
  decidedBy: r.decided_by,
  reason: r.reason,
  ...(r.previous_version ? { previous: r.previous_version } : {}),
});

async function waitFor<T>(
  what: string,
  timeoutMs: number,
  signal: AbortSignal | undefined,
  probe: () => Promise<T | undefined>,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    signal?.throwIfAborted();
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > until) throw new Error(`demo: ${what} did not happen within ${Math.round(timeoutMs / 1000)} s`);
    await pause(500, signal);
  }
}

/** A sleep that ends early, with the signal's reason, when the run is stopped. */
async function pause(ms: number, signal: AbortSignal | undefined): Promise<void> {
  try {
    await sleep(ms, undefined, signal === undefined ? {} : { signal });
  } catch (err) {
    signal?.throwIfAborted();
    throw err;
  }
}

/**
 * Runs the story in a fresh folder under .driftline/ and cleans up on every exit path (success,
 * failure, `signal`): the services stop and the folder keeps only a written report (cleanUpRunDir).
 */
export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const started = Date.now();
  const dir = resolve('.driftline', `demo${started.toString(36)}`);
  mkdirSync(dir, { recursive: true });
  const open: Array<() => Promise<void>> = [];
  let result: DemoResult;
  try {
    result = await runStory(options, started, dir, (close) => open.unshift(close));
  } catch (error) {
    // The run's own error is the one to report; what is not stopped in time ends with the process.
    if (!(options.signal?.aborted ?? false)) options.say('the run failed; stopping its services…');
    const stopped = await Promise.race([
      stopAll(open)
        .catch(() => undefined)
        .then(() => closeEmbeddedEngine())
        .then(
          () => true,
          () => true,
        ),
      sleep(FAILED_CLEANUP_MS, false, { ref: false }),
    ]);
    if (!stopped)
      options.say(`stopping the services took over ${FAILED_CLEANUP_MS / 1000} s; leaving them to the exit`);
    await cleanUpRunDir(dir, options.keep === true).catch((cleanup: unknown) =>
      options.say(`could not remove the run folder ${dir}: ${String(cleanup)}`),
    );
    throw error;
  }
  try {
    try {
      await stopAll(open);
    } finally {
      // Before the folder goes: the engine keeps its data directory open until closed.
      await closeEmbeddedEngine();
    }
  } finally {
    await cleanUpRunDir(dir, options.keep === true);
  }
  return result;
}

/** Stops what the run started, newest first, all of them even when one fails (then throws the first error). */
async function stopAll(open: ReadonlyArray<() => Promise<void>>): Promise<void> {
  const errors: unknown[] = [];
  for (const close of open) await close().catch((err: unknown) => errors.push(err));
  if (errors.length > 0) throw errors[0];
}

async function runStory(
  options: DemoOptions,
  started: number,
  dir: string,
  onClose: (close: () => Promise<void>) => void,
): Promise<DemoResult> {
  const { say, signal } = options;
  const SPEED = options.speed ?? 30;
  const RATE = options.rate ?? 40;
  const scenario = options.scenario ?? 'retrain';
  const runId = basename(dir);
  const stack = { endpoints: options.endpoints };
  const modelsDir = join(dir, 'models');

  const random = new Random(20261121);
  writeFileSync(join(dir, 'policy.yaml'), policyYaml());
  writeFileSync(join(dir, 'rollout.yaml'), rolloutYaml());
  writeFileSync(join(dir, 'views.yaml'), viewsYaml());
  const prefix = `${runId}.`;
  const servingPort = await pickFreePort();
  const env: Record<string, string> = {
    DRIFTLINE_KAFKA_BROKERS: stack.endpoints.kafkaBrokers.join(','),
    DRIFTLINE_SCHEMA_REGISTRY_URL: stack.endpoints.schemaRegistryUrl,
    DRIFTLINE_REDIS_URL: stack.endpoints.redisUrl,
    DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'chdb'),
    DRIFTLINE_CLICKHOUSE_DATABASE: 'driftline',
    DRIFTLINE_TOPIC_PREFIX: prefix,
    DRIFTLINE_TOPIC_PARTITIONS: '3',
    DRIFTLINE_HTTP_PORT: '0',
    DRIFTLINE_LOG_LEVEL: process.env.DRIFTLINE_LOG_LEVEL ?? 'error',
    DRIFTLINE_FEATURE_VIEWS: join(dir, 'views.yaml'),
    DRIFTLINE_FEATURE_API_PORT: '0',
    DRIFTLINE_MODEL_SERVER_PORT: String(servingPort),
    DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR: modelsDir,
    DRIFTLINE_MODEL_SERVER_LOG_FLUSH: '20ms',
    DRIFTLINE_FEATURE_KEY_PREFIX: runId,
    DRIFTLINE_JOINER_KEY_PREFIX: `${runId}:joiner:`,
    DRIFTLINE_JOINER_WINDOW: `${WINDOW_MS}`,
    DRIFTLINE_JOINER_RECOMPUTE_INTERVAL: '2000',
    DRIFTLINE_DRIFT_WINDOW: '1m',
    DRIFTLINE_DRIFT_ALLOWED_LATENESS: '5s',
    // Event time runs faster than the clock here: windows close as the simulated time passes them.
    DRIFTLINE_DRIFT_MAX_AHEAD: '1h',
    DRIFTLINE_DRIFT_IDLE_TIMEOUT: '30s',
    // Simulated time: a pause of the simulation is no silence of a live stream (source idleness off).
    DRIFTLINE_DRIFT_SOURCE_IDLE: '0',
    DRIFTLINE_DRIFT_ALERT_SHARE: '0.4',
    DRIFTLINE_RETRAIN_POLICY_FILE: join(dir, 'policy.yaml'),
    DRIFTLINE_TRAINER_ARTIFACT_DIR: modelsDir,
    DRIFTLINE_TRAINER_MIN_ROWS: '500',
    DRIFTLINE_TRAINER_PROMOTION_MARGIN: '0.005',
    DRIFTLINE_TRAINER_ROLLOUT: 'staged',
    DRIFTLINE_PROMOTION_POLICY: join(dir, 'rollout.yaml'),
    DRIFTLINE_MODEL_CONTROLLER_INTERVAL: '1000',
  };
  // Human output on stdout; the services' JSON logs (errors only, unless asked) on stderr.
  const logger = createLogger({
    service: 'demo',
    level: env.DRIFTLINE_LOG_LEVEL ?? 'error',
    destination: process.stderr,
  });
  say('starting every service in this process (embedded ClickHouse), the model-server on its own port…');
  signal?.throwIfAborted();
  const runner = await startRunner({ services: allServices, knownServices: allServices, env, logger });
  onClose(() => runner.stop());
  signal?.throwIfAborted();
  const warehouse = await runner.context.warehouse();
  const retrain = runner.context.publisher(contracts.retrain);
  const producer = await createDriftlineProducer({
    client: runner.context.kafka(),
    registry: { url: stack.endpoints.schemaRegistryUrl },
    topicPrefix: prefix,
    // Under the traffic loop's bound on a stall (KAFKA_STALL_MS): a publish waiting on a Kafka
    // that went away fails first, with the SDK's own precise line.
    bufferWaitMs: SDK_BUFFER_WAIT_MS,
  });
  onClose(() => producer.close());
  const produced = { predictions: 0, features: 0, labels: 0 };

  // 1. History: the rules (v0) scored the pre-drift world, labels came back. It flows through the
  //    pipeline like any traffic (predictions.v1, labels.v1 → label-joiner → ClickHouse).
  const start = Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS;
  const historyFrom = start - HISTORY_MINUTES * WINDOW_MS;
  const history = Array.from({ length: HISTORY_EVENTS }, (_, i) => {
    const eventTime = historyFrom + Math.floor((i * (HISTORY_MINUTES - 1) * WINDOW_MS) / HISTORY_EVENTS);
    const f = drawFeatures(random, false);
    return { id: `h-${i}`, entity: `user-${Math.floor(random.uniform() * 5000)}`, eventTime, f };
  });
  await producer.publishPrediction(
    history.map((h) => ({
      prediction_id: h.id,
      model: MODEL,
      model_version: RULES_VERSION,
      entity_id: h.entity,
      event_time: h.eventTime,
      features: { ...h.f },
      prediction: rulesScore(h.f),
    })),
  );
  await producer.publishLabel(
    history.map((h) => ({
      prediction_id: h.id,
      model: MODEL,
      event_time: h.eventTime + 5_000,
      label: random.uniform() < truthOf(h.f, false) ? 1 : 0,
      value: Math.round(h.f.amount * 100) / 100,
    })),
  );
  await producer.flush();
  produced.predictions += history.length;
  produced.labels += history.length;
  say(
    `history: ${HISTORY_EVENTS} predictions of the rules (${RULES_VERSION}) over ${HISTORY_MINUTES} minutes, labelled`,
  );
  await waitFor('the label-joiner joining the history', 180_000, signal, async () =>
    (await warehouse.summary.labeledCount(MODEL, RULES_VERSION)) >= HISTORY_EVENTS * 0.95 ? true : undefined,
  );

  // 2. The first trained version: an operator asks for it; the offline gate (vs the rules on the
  //    same held-out rows) sends it to shadow, and with no production version to compare against
  //    the model-controller makes it production.
  const request = {
    request_id: `${runId}-bootstrap`,
    model: MODEL,
    model_version: RULES_VERSION,
    reason: 'bootstrap: first trained version (operator)',
    evidence: '{}',
    data_from: historyFrom,
    data_to: start,
    event_time: start,
  };
  await retrain.publish([request]);
  say('retrain requested by the operator: the first trained version, on the labelled history');
  const operator = async (version: string, to: Stage, reason: string, at: number, canaryShare?: number) => {
    const rows = operatorTransitions(await warehouse.transitions.history(MODEL), MODEL, {
      version,
      to,
      at,
      operator: 'demo',
      reason,
      ...(canaryShare === undefined ? {} : { canaryShare }),
    });
    await warehouse.transitions.record(rows.map((r) => ({ ...r, model: MODEL, recorded_at: Date.now() })));
  };
  const firstVersion = await waitFor(
    'the first version passing its offline gate into shadow',
    300_000,
    signal,
    async () => (await warehouse.transitions.history(MODEL)).find((t) => t.to_stage === 'shadow')?.version,
  );
  // The rules are not served by the model-server, so there is nothing to pair the first version
  // with: the operator takes it to production (the controller publishes the recorded moves).
  const firstReason = 'first trained version: no served model to compare it with on live labels';
  await operator(firstVersion, 'canary', firstReason, start, 1);
  await operator(firstVersion, 'production', firstReason, start);
  await waitFor('the model-server serving the first version', 60_000, signal, async () =>
    (await servedModels(servingPort, MODEL))?.production === firstVersion ? true : undefined,
  );
  say(`${MODEL} ${firstVersion} trained, in production; the model-server answers with it`);

  // 3. Live traffic, scored by the model-server; event time runs SPEED× faster than the wall clock.
  const traffic: TrafficOptions = {
    seed: 7,
    start,
    rate: RATE,
    driftAt: start + DRIFT_AFTER_WINDOWS * WINDOW_MS,
    labelDelayMs: 15_000,
    unlabeledShare: 0.05,
  };
  say(
    `traffic: ${RATE} predictions per event-time second through the model-server, inputs and fraud pattern drift at window ${DRIFT_AFTER_WINDOWS} (${new Date(traffic.driftAt).toISOString()})`,
  );
  const pendingLabels: Array<{ id: string; time: number; label: 0 | 1; value: number }> = [];
  let promotedAtWindow: number | undefined;
  let promotedAt: number | undefined;
  let badVersion: string | undefined;
  let lastReport = 0;
  const announced = new Set<string>();
  const kafka = kafkaWaiter({ brokers: stack.endpoints.kafkaBrokers.join(','), say, limitMs: KAFKA_STALL_MS });
  const wallStart = Date.now();
  let second = 0;
  for (; second < MAX_WINDOWS * 60; second++) {
    signal?.throwIfAborted();
    const due = wallStart + (second * 1000) / SPEED;
    if (due > Date.now()) await pause(due - Date.now(), signal);
    const now = start + second * 1000;
    const events = eventsOfSecond(random, traffic, second);
    await kafka(
      'publishing features',
      producer.publishFeatures(
        events.map((e) => ({
          view: 'user',
          entity_id: e.entityId,
          event_time: e.eventTime,
          features: { ...e.features },
        })),
      ),
    );
    // The model-server publishes what it scores: it waits on Kafka too.
    const scored = await kafka(
      'the model-server scoring',
      predictBatch(
        servingPort,
        MODEL,
        events.map((e) => ({ entity_id: e.entityId, features: { ...e.features }, event_time: e.eventTime })),
      ),
    );
    events.forEach((e, i) => {
      if (e.labelTime !== null) {
        pendingLabels.push({
          id: scored[i]!.prediction_id,
          time: e.labelTime,
          label: e.label,
          value: Math.round(e.features.amount * 100) / 100,
        });
      }
    });
    produced.predictions += events.length;
    produced.features += events.length;
    const dueLabels = pendingLabels.filter((l) => l.time <= now);
    if (dueLabels.length > 0) {
      await kafka(
        'publishing labels',
        producer.publishLabel(
          dueLabels.map((l) => ({
            prediction_id: l.id,
            model: MODEL,
            event_time: l.time,
            label: l.label,
            value: l.value,
          })),
        ),
      );
      produced.labels += dueLabels.length;
      pendingLabels.splice(0, pendingLabels.length, ...pendingLabels.filter((l) => l.time > now));
    }
    if (scenario === 'bad-candidate' && badVersion === undefined && second === 2 * 60) {
      badVersion = writeBadCandidate(modelsDir, firstVersion);
      await operator(badVersion, 'shadow', 'deliberately bad candidate (every leaf negated)', now);
      say(
        `operator: ${MODEL} ${badVersion} (${firstVersion} with every leaf negated) sent to shadow — it should be rejected`,
      );
    }
    if (Date.now() - lastReport >= 3_000) {
      lastReport = Date.now();
      const window = Math.floor(second / 60);
      const counts = await warehouse.summary.counts();
      const served = await servedModels(servingPort, MODEL);
      const stages = served === undefined ? '—' : describeServed(served);
      say(
        `event time +${window}m${String(second % 60).padStart(2, '0')}s | predictions ${produced.predictions} labels ${produced.labels} | drift windows ${counts.windows} (drifted ${counts.driftedWindows}) | retrain requests ${counts.retrainRequests} | serving ${stages}`,
      );
      const transitions = (await warehouse.transitions.history(MODEL)).map(asTransition);
      for (const t of inTimeOrder(transitions)) {
        const key = `${t.version}\u0000${t.to}`;
        if (announced.has(key)) continue;
        announced.add(key);
        say(`  stage: ${stageLine(t)}`);
      }
      const promoted = promotedAfter(transitions, firstVersion);
      if (promoted !== undefined && promotedAt === undefined && promoted.version !== badVersion) {
        promotedAt = promoted.at;
        promotedAtWindow = Math.floor((promoted.at - start) / WINDOW_MS);
        say(`model ${MODEL} ${promoted.version} reached production on live evidence`);
      }
      if (promotedAtWindow !== undefined && window >= promotedAtWindow + WINDOWS_AFTER_PROMOTION + 1) break;
    }
  }
  await kafka('flushing the producer', producer.flush());
  const end = start + second * 1000;
  await pause(4_000, signal);

  const recorded = await warehouse.transitions.history(MODEL);
  const transitions = recorded.map(asTransition);
  const outcomes = await warehouse.summary.liveOutcomes(MODEL, start, end);
  const liveAuc = liveAucByPhase(outcomes, {
    start,
    driftAt: traffic.driftAt,
    promotedAt,
    settleMs: WINDOW_MS,
    end,
  });
  const reportPath = join(dir, 'report.html');
  const data = await warehouse.report({ model: MODEL, from: historyFrom, to: end + WINDOW_MS });
  const cards = new Map<string, string>();
  for (const version of new Set(transitions.map((t) => t.version))) {
    const file = modelCardFileName(MODEL, version);
    writeFileSync(join(dir, file), renderModelCard(await warehouse.modelCard(MODEL, version)));
    cards.set(version, file);
  }
  writeFileSync(reportPath, renderReport(data, { modelCards: cards }));
  say(`report written: ${reportPath} (model cards beside it)`);
  const final = await warehouse.summary.counts();
  const summary: DemoResult['summary'] = {
    scenario,
    events: { 'predictions.v1': produced.predictions, 'features.v1': produced.features, 'labels.v1': produced.labels },
    drift_windows: final.driftRows,
    drifted_windows: final.driftedWindows,
    alerts: final.decisions,
    retrain_requests: final.retrainRequests,
    model_versions: final.modelVersions,
    first_version: firstVersion,
    // The rollout's own view: after a rollback the version restored serves (the last row that
    // reached production named the rolled-back one).
    serving_version: viewOf(usableTransitions(recorded)).production ?? firstVersion,
    live_auc: liveAuc,
    stages: stageTimeline(transitions),
    rollbacks: transitions.filter((t) => t.to === 'rolled_back').length,
    rejected: transitions.filter((t) => t.to === 'rejected').map((t) => t.version),
    report: reportPath,
    seconds: Math.round((Date.now() - started) / 1000),
  };
  say(
    `live ROC AUC: before the drift ${liveAuc.before_drift ?? '—'}, during it ${liveAuc.during_drift ?? '—'}, after the promotion ${liveAuc.after_promotion ?? '—'}`,
  );
  const windows = (await warehouse.summary.psiWindows(MODEL)).map((r) => ({
    windowIndex: Math.round((r.windowStart - start) / WINDOW_MS),
    version: r.version,
    drifted: r.drifted,
    measured: r.measured,
  }));
  return { summary, driftAtWindow: DRIFT_AFTER_WINDOWS, promotedAtWindow, firstVersion, windows };
}

function describeServed(s: {
  production?: string;
  canary?: { version: string; share: number };
  shadows?: readonly string[];
}) {
  const parts = [`production ${s.production ?? '—'}`];
  if (s.canary !== undefined) parts.push(`canary ${s.canary.version} @ ${Math.round(s.canary.share * 100)}%`);
  if (s.shadows !== undefined && s.shadows.length > 0) parts.push(`shadow ${s.shadows.join(',')}`);
  return parts.join(', ');
}

/**
 * The operator's bad candidate: the first version's artifacts with every leaf negated. Moved to
 * shadow, the model-server scores it beside production on every request and the controller
 * decides on the paired labels.
 */
function writeBadCandidate(modelsDir: string, base: string): string {
  const version = `${base}-inverted`;
  const from = join(modelsDir, MODEL, base);
  const to = join(modelsDir, MODEL, version);
  mkdirSync(to, { recursive: true });
  const model = invertedModel(readFileSync(join(from, 'model.json'), 'utf8'));
  writeFileSync(join(to, 'model.json'), model);
  // The meta names its model file by digest (the model-server loads only the pair it names): a
  // version made by hand names its own model.json.
  const meta = JSON.parse(readFileSync(join(from, 'meta.json'), 'utf8')) as Record<string, unknown>;
  meta.model_sha256 = createHash('sha256').update(model).digest('hex');
  writeFileSync(join(to, 'meta.json'), JSON.stringify(meta));
  return version;
}
