import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allServices } from '@driftline/cli';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer, type KafkaClient, topicOffsets } from '@driftline/kafka';
import { contracts, type DriftAlert, type ModelEvent, type RetrainRequest } from '@driftline/schemas';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { seededUniform } from '@driftline/test-support/random';
import { type ClickHouse, chTime, createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

const stack = inject('stack');
const chPath = mkdtempSync(join(tmpdir(), 'trainer-ch-'));
const artifacts = mkdtempSync(join(tmpdir(), 'trainer-art-'));
const prefix = `${uniqueName('retrain')}.`;
const database = uniqueName('retrain').replace('-', '_');
const T0 = Date.UTC(2024, 5, 1);
const MIN = 60_000;
const WINDOWS = 14;
// The two services of the loop, as the driftline binary knows them.
const services = ['retrain-trigger', 'trainer'].map((name) => {
  const service = allServices.find((s) => s.name === name);
  if (service === undefined) throw new Error(`no service ${name}`);
  return service;
});

const policyFile = join(artifacts, 'policy.yaml');
writeFileSync(
  policyFile,
  `version: 1
models:
  fraud:
    signals:
      share_drifted: 0.3
      prediction_drift: true
    sustain: 3
    cooldown: 1h
    training_window: 30m
`,
);

function env(): Record<string, string> {
  return {
    DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
    DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
    DRIFTLINE_TOPIC_PREFIX: prefix,
    DRIFTLINE_TOPIC_PARTITIONS: '2',
    DRIFTLINE_HTTP_PORT: '0',
    DRIFTLINE_LOG_LEVEL: 'warn',
    DRIFTLINE_CLICKHOUSE_DATABASE: database,
    DRIFTLINE_CLICKHOUSE_PATH: chPath,
    DRIFTLINE_RETRAIN_POLICY_FILE: policyFile,
    DRIFTLINE_TRAINER_ARTIFACT_DIR: artifacts,
    DRIFTLINE_TRAINER_DEVICE: 'auto',
    DRIFTLINE_TRAINER_ROUNDS: '40',
    DRIFTLINE_TRAINER_MIN_ROWS: '100',
    DRIFTLINE_TRAINER_PROMOTION_MARGIN: '0.02',
    DRIFTLINE_TRAINER_SESSION_TIMEOUT: '2m',
  };
}

/**
 * labeled_predictions as the label-joiner writes them: after the drift the label follows a new
 * relationship (x and the color), which the serving model's logged score (built on the old one)
 * misses, so a retrained model clearly beats it on the held-out slice.
 */
async function seedLabeledPredictions(ch: ClickHouse): Promise<void> {
  const r = seededUniform(7);
  const colors = ['red', 'green', 'blue'];
  const rows = [];
  for (let i = 0; i < 1_200; i++) {
    const t = T0 + Math.floor((i * WINDOWS * MIN) / 1_200);
    const x = r() * 4 - 2 + 1;
    const color = colors[Math.floor(r() * 3)]!;
    const logit = (color === 'red' ? 2 : -1) - 1.5 * x;
    const label = r() < 1 / (1 + Math.exp(-logit)) ? 1 : 0;
    const served = 1 / (1 + Math.exp(-(1.5 * x - 0.5))); // the old model's view of the world
    rows.push({
      model: 'fraud',
      model_version: 'v1',
      prediction_id: `p${i}`,
      entity_id: `e${i % 50}`,
      prediction_time: chTime(t),
      label_time: chTime(t + 1_000),
      features: JSON.stringify({ x, color, noise: i % 5 === 0 ? null : r() }),
      prediction: served,
      predicted_class: null,
      label,
      joined_at: chTime(t + 1_000),
    });
  }
  await ch.insert('labeled_predictions', rows);
}

function alert(w: number, kind: DriftAlert['kind'] = 'FEATURE_DRIFT'): DriftAlert {
  return {
    alert_id: `${kind}-${w}`,
    kind,
    model: 'fraud',
    model_version: 'v1',
    feature: null,
    window_start: T0 + w * MIN,
    window_end: T0 + (w + 1) * MIN,
    event_time: T0 + (w + 1) * MIN,
    method: 'psi',
    statistic: 0.5,
    p_value: null,
    threshold: 0.2,
    share_drifted: kind === 'FEATURE_DRIFT' ? 0.67 : null,
    evidence: JSON.stringify({ drifted: [{ feature: 'x' }, { feature: 'color' }] }),
  };
}

async function publishAlerts(alerts: readonly DriftAlert[]): Promise<void> {
  const topic = `${prefix}alerts.v1`;
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.alert, topic);
  const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
  const messages = [];
  for (const a of alerts) messages.push({ key: a.model, value: await codec.encode(a) });
  await producer.send(topic, messages);
  await producer.disconnect();
}

async function messagesIn(kafka: KafkaClient, topic: string): Promise<number> {
  const offsets = await topicOffsets(kafka, topic);
  return offsets.reduce((sum, o) => sum + Number(o.high - o.low), 0);
}

async function rowsOf<T>(ch: ClickHouse, sql: string): Promise<T[]> {
  return ch.select<T>(sql);
}

describe('retrain loop: alerts → one retrain request → trained, promoted, reference stored', () => {
  let ch: ClickHouse;
  let runner: Runner | undefined;
  const kafka = kafkaFor(stack.kafkaBrokers);
  const timings: Record<string, number> = {};

  beforeAll(async () => {
    // The trainer's start installs its Python venv on a fresh machine (reused afterwards): 6 minutes,
    // past the default hook timeout (180 s were not enough in a fresh clone at a load average of 25).
    let t = Date.now();
    ch = await createClickHouse({ mode: 'embedded', path: chPath, database });
    await migrate(ch, migrations);
    await seedLabeledPredictions(ch);
    timings.warehouse = Date.now() - t;
    t = Date.now();
    runner = await startRunner({ services, env: env() });
    timings.runnerStart = Date.now() - t;
  }, 360_000);

  afterAll(async () => {
    await runner?.stop();
    console.log('retrain loop timings (ms)', timings);
  });

  it('fires once despite many drifted windows, trains and promotes once, even when the request is delivered twice', async () => {
    const started = Date.now();
    // Every window drifts; some alerts come twice, one window's alert arrives late (out of order).
    const alerts: DriftAlert[] = [];
    for (let w = 0; w < WINDOWS; w++) if (w !== 1) alerts.push(alert(w));
    alerts.splice(3, 0, alert(1)); // window 1 arrives after window 3 and completes the run 0..3
    alerts.push(alert(2), alert(5)); // duplicates
    for (let w = 6; w < WINDOWS; w += 3) alerts.push(alert(w, 'PREDICTION_DRIFT'));
    await publishAlerts(alerts);

    const decisions = await eventually(
      async () => {
        const rows = await rowsOf<{ alert_id: string; decision: string; reason: string; request_id: string | null }>(
          ch,
          `SELECT alert_id, decision, reason, request_id FROM ${ch.table('retrain_decisions')} FINAL ORDER BY window_start, alert_id`,
        );
        return rows.length >= WINDOWS + 3 ? rows : undefined;
      },
      45_000,
      250,
    );
    timings.decided = Date.now() - started;
    const fired = decisions.filter((d) => d.decision === 'fire');
    expect(fired).toHaveLength(1);
    expect(decisions.filter((d) => d.reason === 'cooldown').length).toBeGreaterThanOrEqual(WINDOWS - 3);
    expect(decisions.filter((d) => d.reason === 'sustaining')).toHaveLength(3);
    expect(await messagesIn(kafka, `${prefix}retrain.v1`)).toBe(1);

    const [retrainMessage] = await readTopic(kafka, `${prefix}retrain.v1`, 1);
    const retrainCodec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.retrain,
      `${prefix}retrain.v1`,
    );
    const request: RetrainRequest = await retrainCodec.decode(retrainMessage!.value);
    expect(request.request_id).toBe(fired[0]!.request_id);
    // The run 0..3 (window 1 late) decides at window 3's end; the data window is the 30 minutes before it.
    expect(request.data_to).toBe(T0 + 4 * MIN);
    expect(request.data_from).toBe(T0 + 4 * MIN - 30 * MIN);

    // The trainer: a version registered, published, promoted.
    const version = await eventually(
      async () => {
        const rows = await rowsOf<{
          version: string;
          status: string;
          device: string;
          published: number;
          metrics: Record<string, number>;
          reference_id: string | null;
          artifact_uri: string;
          request_id: string;
          data_to: string;
          rows_train: string;
        }>(ch, `SELECT * FROM ${ch.table('model_versions')} FINAL WHERE published = 1`);
        return rows.length > 0 ? rows : undefined;
      },
      60_000,
      250,
    );
    timings.trained = Date.now() - started;
    expect(version).toHaveLength(1);
    const v = version[0]!;
    expect(v.request_id).toBe(request.request_id);
    expect(v.status).toBe('PROMOTED');
    expect(v.device).toBe(spawnSync('nvidia-smi', ['-L']).status === 0 ? 'cuda' : 'cpu');
    expect(v.metrics.roc_auc!).toBeGreaterThan(v.metrics.current_roc_auc! + 0.02);
    expect(existsSync(new URL(v.artifact_uri))).toBe(true);
    // The window [data_to − 30 min, data_to) holds the first 4 of 14 minutes of rows (~343), 80 % for training.
    expect(Number(v.rows_train)).toBeGreaterThan(250);
    expect(Number(v.rows_train)).toBeLessThan(300);

    const events = (await readTopic(kafka, `${prefix}models.v1`, 2)).map((m) => m.value);
    const modelCodec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.model,
      `${prefix}models.v1`,
    );
    const decoded: ModelEvent[] = [];
    for (const e of events) decoded.push(await modelCodec.decode(e));
    expect(decoded.map((e) => e.kind)).toEqual(['TRAINED', 'PROMOTED']);
    expect(decoded[1]!.version).toBe(v.version);
    expect(decoded[1]!.reference_uri).toContain(v.reference_id!);

    // The reference drift-monitor will load on the PROMOTED event.
    const reference = await warehouseOn(ch).references.latest('fraud', v.version);
    expect(reference?.referenceId).toBe(v.reference_id);
    expect(reference?.features).toEqual(['__prediction__', 'color', 'noise', 'x']);

    // The same request delivered again: handled, nothing retrained, nothing republished.
    const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
    await producer.send(`${prefix}retrain.v1`, [{ key: 'fraud', value: retrainMessage!.value }]);
    await producer.disconnect();
    await eventually(
      async () => {
        const metrics = await runner!.context.registry.getSingleMetricAsString('driftline_trainer_requests_total');
        return /outcome="already_done"[^}]*\} 1$/m.test(metrics) ? true : undefined;
      },
      30_000,
      200,
    );
    expect(await messagesIn(kafka, `${prefix}models.v1`)).toBe(2);
    expect(readdirSync(join(artifacts, 'fraud'))).toEqual([v.version]);
    const versions = await rowsOf<{ n: string }>(ch, `SELECT count() AS n FROM ${ch.table('model_versions')} FINAL`);
    expect(Number(versions[0]!.n)).toBe(1);
    timings.total = Date.now() - started;
  });

  it('rebuilds the policy state after a restart: the cooldown still holds', async () => {
    await runner?.stop();
    runner = await startRunner({ services: [services[0]!], knownServices: services, env: env() });
    await publishAlerts([alert(WINDOWS), alert(WINDOWS + 1), alert(WINDOWS + 2)]);
    const late = await eventually(
      async () => {
        const rows = await rowsOf<{ reason: string }>(
          ch,
          `SELECT reason FROM ${ch.table('retrain_decisions')} FINAL
         WHERE window_start >= fromUnixTimestamp64Milli(${T0 + WINDOWS * MIN}, 'UTC') ORDER BY window_start`,
        );
        return rows.length === 3 ? rows : undefined;
      },
      45_000,
      250,
    );
    // Fresh state would say sustaining, sustaining, fire.
    expect(late.map((r) => r.reason)).toEqual(['cooldown', 'cooldown', 'cooldown']);
    expect(await messagesIn(kafka, `${prefix}retrain.v1`)).toBe(2); // the first request + its manual redelivery
  });
});
