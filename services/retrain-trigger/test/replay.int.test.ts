import { randomUUID } from 'node:crypto';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createKafkaClient, deleteTopics, listTopics, topicOffsets } from '@driftline/kafka';
import { contracts, type DriftAlert } from '@driftline/schemas';
import { type Runner, type ServiceDefinition, startRunner } from '@driftline/service';
import { type ClickHouse, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { retrainTriggerService } from '../src/index.js';

// Replays are recognised by alert id in retrain_decisions, not by offset: on the real stack, a
// producer's re-published id and a recreated alerts.v1 (offsets from 0 again).
const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'retrain-replay-'));
const unique = randomUUID().slice(0, 8);
const prefix = `retrain-replay-${unique}.`;
const database = `retrain_replay_${unique}`;
const topic = `${prefix}alerts.v1`;
const T0 = Date.UTC(2024, 5, 1);
const MIN = 60_000;

const policyFile = join(dir, 'policy.yaml');
// Windows of a minute: sustain 2 fires on windows 0..1 and again on 5..6 (cooldown 5m); a window
// more than 3 minutes behind the newest is forgotten by the policy.
writeFileSync(
  policyFile,
  `version: 1
models:
  fraud:
    signals: { share_drifted: 0.3, prediction_drift: true }
    sustain: 2
    cooldown: 5m
    late_horizon: 3m
    training_window: 30m
  perf:
    signals:
      performance:
        - { metric: roc_auc, below: 0.7 }
`,
);

const env = (): Record<string, string> => ({
  DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
  DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
  DRIFTLINE_TOPIC_PREFIX: prefix,
  DRIFTLINE_TOPIC_PARTITIONS: '1',
  DRIFTLINE_HTTP_PORT: '0',
  DRIFTLINE_LOG_LEVEL: 'warn',
  DRIFTLINE_CLICKHOUSE_DATABASE: database,
  DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'chdb'),
  DRIFTLINE_RETRAIN_POLICY_FILE: policyFile,
});

const start = () =>
  startRunner({ services: [retrainTriggerService as unknown as ServiceDefinition<never, unknown>], env: env() });

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
    evidence: '{}',
  };
}

interface Row {
  alert_id: string;
  reason: string;
  first: number;
  request_id: string | null;
}

async function until<T>(check: () => Promise<T | undefined>, timeoutMs = 45_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`condition not met in ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('retrain-trigger on the real stack: replays by alert id, whatever the offset', () => {
  let ch: ClickHouse;
  let runner: Runner | undefined;

  const rows = (sql = '') =>
    ch.select<Row>(
      `SELECT alert_id, reason, first, request_id FROM ${ch.table('retrain_decisions')} ${sql} ORDER BY alert_id, first`,
    );
  const finalOf = async (alertId: string) => (await rows('FINAL')).find((r) => r.alert_id === alertId);
  const rowsOf = async (alertId: string) => (await rows()).filter((r) => r.alert_id === alertId);
  const publish = (alerts: readonly DriftAlert[]) => runner!.context.publisher(contracts.alert).publish(alerts);

  beforeAll(async () => {
    ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'chdb'), database });
    await migrate(ch, migrations);
    runner = await start();
    const first = Array.from({ length: 10 }, (_, w) => alert(w)); // offsets 0..9
    await publish(first);
    await until(async () => ((await rows()).length >= first.length ? true : undefined));
  });

  afterAll(async () => {
    await runner?.stop();
  });

  it('an id published again at a later offset, forgotten by the policy, never replaces its decision', async () => {
    expect(await finalOf('FEATURE_DRIFT-1')).toMatchObject({ reason: 'fire', first: 1 });
    const fired = (await rows('FINAL')).filter((r) => r.reason === 'fire').map((r) => r.alert_id);
    expect(fired).toEqual(['FEATURE_DRIFT-1', 'FEATURE_DRIFT-6']);
    // Window 1 is far behind the newest (9) and a later alert fired since: the policy forgot
    // FEATURE_DRIFT-1. The producer publishes it again, at offset 10.
    await publish([alert(1)]);
    const again = await until(async () => {
      const seen = await rowsOf('FEATURE_DRIFT-1');
      return seen.length >= 2 ? seen : undefined;
    });
    // Decided as new it was too_late with first = 1, and replaced the fire in FINAL.
    expect(again.map((r) => [r.reason, r.first])).toEqual([
      ['duplicate', 0],
      ['fire', 1],
    ]);
    expect(await finalOf('FEATURE_DRIFT-1')).toMatchObject({ reason: 'fire', first: 1 });
  });

  it("a recreated alerts.v1's new alert for an old window, at offset 0, is decided", async () => {
    await runner?.stop();
    runner = undefined;
    const kafka = createKafkaClient({ brokers: stack.kafkaBrokers, clientId: `${prefix}admin`, ssl: false });
    await deleteTopics(kafka, [topic]);
    await until(async () => ((await listTopics(kafka)).includes(topic) ? undefined : true), 30_000);
    runner = await start(); // creates alerts.v1 again; state reloaded from retrain_decisions
    // An id never seen, for window 8 (no newer than the latest decided, 9), at offset 0 (below
    // the old topic's 10): by its position a replay, held as a duplicate and never decided.
    await publish([alert(8, 'PREDICTION_DRIFT')]);
    expect(await topicOffsets(kafka, topic)).toMatchObject([{ low: 0n, high: 1n }]);
    const decided = await until(async () => (await rowsOf('PREDICTION_DRIFT-8'))[0]);
    // Signalled, within the cooldown of the fire on window 6: a real decision, the row of record.
    expect(decided).toMatchObject({ reason: 'cooldown', first: 1 });
  });

  it('PERFORMANCE alerts two days late still fire after a DATA_QUALITY alert of now (found by a review)', async () => {
    // The drift-monitor's DATA_QUALITY alert for the current 5-minute window moved the model's one
    // newest window: every performance window (labels 2 days late) was too_late behind it.
    const H = 60 * MIN;
    const now = T0 + 30 * 24 * H;
    const of = (kind: DriftAlert['kind'], id: string, start: number, end: number): DriftAlert => ({
      ...alert(0, kind),
      alert_id: id,
      model: 'perf',
      window_start: start,
      window_end: end,
      event_time: now,
      method: kind === 'PERFORMANCE' ? 'roc_auc' : 'null_rate',
      statistic: kind === 'PERFORMANCE' ? 0.55 : 0.3,
      share_drifted: null,
    });
    const late = [0, 1, 2].map((i) => of('PERFORMANCE', `perf-${i}`, now - 48 * H + i * H, now - 47 * H + i * H));
    await publish([of('DATA_QUALITY', 'perf-dq', now - 5 * MIN, now), ...late]);
    const decided = await until(async () => {
      const all = (await rows('FINAL')).filter((r) => r.alert_id.startsWith('perf-'));
      return all.length >= 4 ? all : undefined;
    });
    expect(decided.map((r) => `${r.alert_id}:${r.reason}`)).toEqual([
      'perf-0:sustaining',
      'perf-1:sustaining',
      'perf-2:fire',
      'perf-dq:no_signal',
    ]);
    expect(decided.find((r) => r.reason === 'fire')?.request_id).toMatch(/^[0-9a-f]{32}$/);
  });
});
