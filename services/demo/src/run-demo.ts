// The demo's story, reusable by `make demo` and by the end-to-end test: synthetic traffic for a
// fraud model drifts at a known moment, labels arrive late, drift is detected, a retrain is
// requested once, the trainer trains and promotes a version, the monitor switches to its
// reference, and a report is written.
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { allServices, buildAndStoreReference } from '@driftline/cli';
import { createLogger } from '@driftline/observability';
import { renderReport } from '@driftline/report';
import { createDriftlineProducer } from '@driftline/sdk';
import { startRunner } from '@driftline/service';
import type { StackEndpoints } from '@driftline/stack';
import { type DemoEvent, drawFeatures, eventsOfSecond, Random, type TrafficOptions, truthOf } from './traffic.js';

const MODEL = 'fraud';
const FIRST_VERSION = 'v1';
const WINDOW_MS = 60_000;
const DRIFT_AFTER_WINDOWS = 6;
const MAX_WINDOWS = 30;
const WINDOWS_AFTER_PROMOTION = 3;

export interface DemoOptions {
  readonly endpoints: StackEndpoints;
  readonly say: (line: string) => void;
  /** Event-time seconds per wall-clock second; default 30 (20 minutes of traffic in 40 s). */
  readonly speed?: number;
  /** Predictions per event-time second; default 40. */
  readonly rate?: number;
  /** Keep the embedded ClickHouse data under .driftline/ (for a look afterwards). */
  readonly keep?: boolean;
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
    events: Record<string, number>;
    drift_windows: number;
    drifted_windows: number;
    alerts: number;
    retrain_requests: number;
    model_versions: number;
    serving_version: string;
    report: string;
    seconds: number;
  };
  readonly driftAtWindow: number;
  readonly promotedAtWindow: number | undefined;
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

/** Training data of the first version: the world before the drift. */
function referenceCsv(random: Random, rows: number): string {
  const lines = ['amount,age,tenure_days,country,device,__prediction__'];
  for (let i = 0; i < rows; i++) {
    const f = drawFeatures(random, false);
    lines.push(`${f.amount},${f.age},${f.tenure_days},${f.country},${f.device},${truthOf(f, false)}`);
  }
  return `${lines.join('\n')}\n`;
}

export async function runDemo(options: DemoOptions): Promise<DemoResult> {
  const { say } = options;
  const SPEED = options.speed ?? 30;
  const RATE = options.rate ?? 40;
  const started = Date.now();
  const runId = `demo${started.toString(36)}`;
  const dir = resolve('.driftline', runId);
  mkdirSync(dir, { recursive: true });
  const stack = { endpoints: options.endpoints };

  const random = new Random(20261121);
  writeFileSync(join(dir, 'policy.yaml'), policyYaml());
  writeFileSync(join(dir, 'views.yaml'), viewsYaml());
  writeFileSync(join(dir, 'reference.csv'), referenceCsv(random, 5_000));
  const prefix = `${runId}.`;
  const env: Record<string, string> = {
    DRIFTLINE_KAFKA_BROKERS: stack.endpoints.kafkaBrokers.join(','),
    DRIFTLINE_SCHEMA_REGISTRY_URL: stack.endpoints.schemaRegistryUrl,
    DRIFTLINE_REDIS_URL: stack.endpoints.redisUrl,
    DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'chdb'),
    DRIFTLINE_CLICKHOUSE_DATABASE: 'driftline',
    DRIFTLINE_TOPIC_PREFIX: prefix,
    DRIFTLINE_TOPIC_PARTITIONS: '3',
    DRIFTLINE_HTTP_PORT: '0',
    DRIFTLINE_LOG_LEVEL: process.env.DRIFTLINE_LOG_LEVEL ?? 'warn',
    DRIFTLINE_FEATURE_VIEWS: join(dir, 'views.yaml'),
    DRIFTLINE_FEATURE_API_PORT: '0',
    DRIFTLINE_MODEL_SERVER_PORT: '0',
    DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR: join(dir, 'models'),
    DRIFTLINE_FEATURE_KEY_PREFIX: runId,
    DRIFTLINE_JOINER_KEY_PREFIX: `${runId}:joiner:`,
    DRIFTLINE_JOINER_WINDOW: `${WINDOW_MS}`,
    DRIFTLINE_JOINER_RECOMPUTE_INTERVAL: '2000',
    DRIFTLINE_DRIFT_WINDOW: '1m',
    DRIFTLINE_DRIFT_ALLOWED_LATENESS: '5s',
    DRIFTLINE_DRIFT_IDLE_TIMEOUT: '30s',
    DRIFTLINE_DRIFT_ALERT_SHARE: '0.4',
    DRIFTLINE_RETRAIN_POLICY_FILE: join(dir, 'policy.yaml'),
    DRIFTLINE_TRAINER_ARTIFACT_DIR: join(dir, 'models'),
    DRIFTLINE_TRAINER_MIN_ROWS: '500',
    DRIFTLINE_TRAINER_PROMOTION_MARGIN: '0.005',
  };
  const logger = createLogger({ service: 'demo', level: env.DRIFTLINE_LOG_LEVEL ?? 'info' });
  say('starting every service in this process (embedded ClickHouse)…');
  const runner = await startRunner({
    services: allServices,
    knownServices: allServices,
    env,
    logger,
  });
  const warehouse = await runner.context.warehouse();
  await buildAndStoreReference({
    references: warehouse.references,
    model: MODEL,
    version: FIRST_VERSION,
    file: join(dir, 'reference.csv'),
  });
  say(`reference profile of ${MODEL}/${FIRST_VERSION} stored (5,000 training rows)`);

  const producer = await createDriftlineProducer({
    client: runner.context.kafka(),
    registry: { url: stack.endpoints.schemaRegistryUrl },
    topicPrefix: prefix,
  });
  // Event time starts at the current window and runs SPEED× faster than the wall clock, so the
  // model events the trainer stamps with wall-clock time fall before the windows that follow.
  const start = Math.floor(Date.now() / WINDOW_MS) * WINDOW_MS;
  const traffic: TrafficOptions = {
    seed: 7,
    start,
    rate: RATE,
    driftAt: start + DRIFT_AFTER_WINDOWS * WINDOW_MS,
    labelDelayMs: 15_000,
    unlabeledShare: 0.05,
  };
  say(
    `traffic: ${RATE} predictions per event-time second, inputs drift at window ${DRIFT_AFTER_WINDOWS} (${new Date(traffic.driftAt).toISOString()})`,
  );
  const labels: DemoEvent[] = [];
  const produced = { predictions: 0, features: 0, labels: 0 };
  let servingVersion = FIRST_VERSION;
  let promotedAtWindow: number | undefined;
  let lastReport = 0;
  const announced = new Set<string>();
  const wallStart = Date.now();
  for (let second = 0; second < MAX_WINDOWS * 60; second++) {
    // Pace event time against the wall clock.
    const due = wallStart + (second * 1000) / SPEED;
    if (due > Date.now()) await sleep(due - Date.now());
    const now = start + second * 1000;
    const events = eventsOfSecond(random, traffic, second);
    const drifted = now >= traffic.driftAt;
    await producer.publishPrediction(
      events.map((e) => ({
        prediction_id: e.predictionId,
        model: MODEL,
        model_version: servingVersion,
        entity_id: e.entityId,
        event_time: e.eventTime,
        features: { ...e.features },
        // The serving model knows the world as it was when it was trained.
        prediction: servingVersion === FIRST_VERSION ? truthOf(e.features, false) : truthOf(e.features, drifted),
      })),
    );
    await producer.publishFeatures(
      events.map((e) => ({
        view: 'user',
        entity_id: e.entityId,
        event_time: e.eventTime,
        features: { ...e.features },
      })),
    );
    produced.predictions += events.length;
    produced.features += events.length;
    for (const e of events) if (e.labelTime !== null) labels.push(e);
    const dueLabels = labels.filter((e) => (e.labelTime ?? 0) <= now);
    if (dueLabels.length > 0) {
      await producer.publishLabel(
        dueLabels.map((e) => ({
          prediction_id: e.predictionId,
          model: MODEL,
          event_time: e.labelTime!,
          label: e.label,
        })),
      );
      produced.labels += dueLabels.length;
      labels.splice(0, labels.length, ...labels.filter((e) => (e.labelTime ?? 0) > now));
    }
    if (Date.now() - lastReport >= 3_000) {
      lastReport = Date.now();
      const counts = await warehouse.summary.counts();
      const { windows, driftedWindows: drifted, retrainRequests: requests, promoted } = counts;
      const window = Math.floor(second / 60);
      say(
        `event time +${window}m${String(second % 60).padStart(2, '0')}s | predictions ${produced.predictions} labels ${produced.labels} | drift windows ${windows} (drifted ${drifted}) | retrain requests ${requests} | promoted ${promoted}`,
      );
      for (const v of await warehouse.summary.versions()) {
        if (announced.has(v.version)) continue;
        announced.add(v.version);
        say(`trainer: ${MODEL} ${v.version} trained on ${v.device}, ${v.status} (${v.promotionReason})`);
      }
      if (promoted > 0 && promotedAtWindow === undefined) {
        promotedAtWindow = window;
        servingVersion = (await warehouse.summary.latestPromoted()) ?? servingVersion;
        say(`model ${MODEL} ${servingVersion} promoted: serving it from now on`);
      }
      if (promotedAtWindow !== undefined && window >= promotedAtWindow + WINDOWS_AFTER_PROMOTION + 1) break;
    }
  }
  await producer.flush();
  await sleep(3_000);
  const reportPath = join(dir, 'report.html');
  const simEnd = start + MAX_WINDOWS * WINDOW_MS;
  const data = await warehouse.report({ model: MODEL, from: start - WINDOW_MS, to: simEnd + WINDOW_MS });
  writeFileSync(reportPath, renderReport(data));
  say(`report written: ${reportPath}`);

  const final = await warehouse.summary.counts();
  const summary = {
    events: { 'predictions.v1': produced.predictions, 'features.v1': produced.features, 'labels.v1': produced.labels },
    drift_windows: final.driftRows,
    drifted_windows: final.driftedWindows,
    alerts: final.decisions,
    retrain_requests: final.retrainRequests,
    model_versions: final.modelVersions,
    serving_version: servingVersion,
    report: reportPath,
    seconds: Math.round((Date.now() - started) / 1000),
  };
  const windows = (await warehouse.summary.psiWindows(MODEL)).map((r) => ({
    windowIndex: Math.round((r.windowStart - start) / WINDOW_MS),
    version: r.version,
    drifted: r.drifted,
    measured: r.measured,
  }));
  await producer.close();
  await runner.stop();
  if (options.keep !== true) rmSync(join(dir, 'chdb'), { recursive: true, force: true });
  return { summary, driftAtWindow: DRIFT_AFTER_WINDOWS, promotedAtWindow, windows };
}
