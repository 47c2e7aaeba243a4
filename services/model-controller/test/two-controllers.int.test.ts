import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { partitionOf } from '@driftline/kafka';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, uniqueName } from '@driftline/test-support';
import { SeededRandom } from '@driftline/test-support/random';
import { openWarehouse, type TransitionRow, type Warehouse } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { modelControllerService } from '../src/service.js';

/**
 * Two model-controllers at once (a rolling deploy that changes the policy, or a scaled
 * deployment) on the real stack, over the same models and rows, with policies that decide
 * differently on them: `eager` promotes v2 to canary on 30 labels; `strict` wants 1,000 labels
 * within 1 minute of predictions and rejects v2 at max_time. Before, both decided every model and
 * recorded both (v2 shadow → canary and shadow → rejected; found by a review). Each model is now
 * decided by the controller holding its models.v1 partition, and a controller that stops hands its
 * models to the other.
 */

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'two-controllers-'));
const prefix = `${uniqueName('ctl')}.`;
const database = uniqueName('ctl').replaceAll('-', '_');
const PARTITIONS = 4;

/** Two models per models.v1 partition: both controllers hold some whatever the assignment. */
const models: string[] = [];
for (let i = 0; models.length < 2 * PARTITIONS; i++) {
  const name = `m${i}`;
  if (models.filter((m) => partitionOf(m, PARTITIONS) === partitionOf(name, PARTITIONS)).length < 2) models.push(name);
}

function policy(name: string, promotion: string): string {
  const file = join(dir, `${name}.yaml`);
  // arrival_bucket 0: pairs as they arrive (the default waits up to an hour for a bucket to close).
  writeFileSync(
    file,
    `version: 1\ndefaults:\n  promotion: ${promotion}\n  rollback: ${promotion}\n  arrival_bucket: 0\n`,
  );
  return file;
}
const eager = policy('eager', '{ min_labels: 30, max_labels: 1000, max_time: 1h }');
const strict = policy('strict', '{ min_labels: 1000, max_labels: 1000, max_time: 1m }');

const env = (policyFile: string) => ({
  DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
  DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
  DRIFTLINE_TOPIC_PREFIX: prefix,
  DRIFTLINE_TOPIC_PARTITIONS: String(PARTITIONS),
  DRIFTLINE_HTTP_PORT: '0',
  DRIFTLINE_LOG_LEVEL: process.env.CONTROLLER_TEST_LOG_LEVEL ?? 'error',
  DRIFTLINE_CLICKHOUSE_DATABASE: database,
  DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'ch'),
  DRIFTLINE_PROMOTION_POLICY: policyFile,
  DRIFTLINE_MODEL_CONTROLLER_INTERVAL: '300ms',
});

/** What the trainer's staged rollout records: `version` enters shadow against `against` at `at`. */
function gate(model: string, version: string, against: string, at: number): TransitionRow[] {
  const base = { model, version, at, decided_by: 'trainer:offline_gate', detail: '', evidence: '', canary_share: null };
  return [
    { ...base, from_stage: null, to_stage: 'candidate', reason: 'trained', previous_version: null, recorded_at: at },
    {
      ...base,
      from_stage: 'candidate',
      to_stage: 'shadow',
      reason: 'offline_gate',
      previous_version: against,
      recorded_at: at,
    },
  ];
}

/**
 * 300 labelled predictions of `model` answered by v1 as production, one a second from `from`, each
 * labelled 0.5 s later, with `shadow`'s score too: v1 says 0.5, the shadow is right.
 */
async function answered(warehouse: Warehouse, model: string, shadow: string, from: number): Promise<void> {
  const r = new SeededRandom(from % 1_000_003);
  const rows = Array.from({ length: 300 }, (_, i) => {
    const t = from + (i + 1) * 1000;
    const label = r.uniform() < 0.5 ? 1 : 0;
    const good = Math.min(1, Math.max(0, (label === 1 ? 0.8 : 0.2) + (r.uniform() - 0.5) * 0.2));
    const id = `${model}-${shadow}-${i}`;
    return {
      prediction: {
        prediction_id: id,
        model,
        model_version: 'v1',
        entity_id: `e${i}`,
        event_time: t,
        features: { f0: 1 },
        prediction: 0.5,
        predicted_class: null,
        role: 'production',
        scores: { v1: 0.5, [shadow]: good },
      },
      label: { prediction_id: id, model, event_time: t + 500, label },
      joinedAt: t + 600,
    };
  });
  await warehouse.predictions.insertJoined(rows);
}

/** The version's transitions out of shadow, by model. */
async function outOfShadow(warehouse: Warehouse, version: string): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const model of models) {
    const rows = (await warehouse.transitions.history(model, version)).filter((t) => t.from_stage !== null);
    out.set(
      model,
      rows.filter((t) => t.to_stage !== 'shadow').map((t) => `${t.from_stage}>${t.to_stage}`),
    );
  }
  return out;
}

describe('two model-controllers in one group: each model decided by one of them', () => {
  let warehouse: Warehouse;
  let eagerRunner: Runner | undefined;
  let strictRunner: Runner | undefined;

  beforeAll(async () => {
    warehouse = await openWarehouse({ mode: 'embedded', path: join(dir, 'ch'), database });
    eagerRunner = await startRunner({ services: [modelControllerService as never], env: env(eager) });
    strictRunner = await startRunner({ services: [modelControllerService as never], env: env(strict) });
    // Ready once in the group: the second one's join is the rebalance that split the partitions.
    await eventually(async () => (eagerRunner?.ready() && strictRunner?.ready() ? true : undefined), 60_000, 100);
  });

  afterAll(async () => {
    await strictRunner?.stop();
    await eagerRunner?.stop();
    await warehouse?.close();
  });

  it('records one decision per model, from the controller that holds its partition; a controller stopped hands its models over', async () => {
    const t0 = Date.now() - 60 * 60_000;
    for (const model of models) {
      await warehouse.transitions.record(gate(model, 'v2', 'v1', t0));
      await answered(warehouse, model, 'v2', t0);
    }
    await eventually(
      async () => ([...(await outOfShadow(warehouse, 'v2')).values()].every((d) => d.length > 0) ? true : undefined),
      60_000,
      200,
    );
    // Both controllers tick every 300 ms: a second decision of a model, if any, lands within this.
    await new Promise((resolve) => setTimeout(resolve, 3_000));
    const decided = await outOfShadow(warehouse, 'v2');
    console.info(`v2 out of shadow: ${JSON.stringify(Object.fromEntries(decided))}`);
    // One decision per model: before, both controllers decided every model (v2 shadow → canary by
    // one, then canary → rolled_back by the other, or shadow → rejected beside it).
    const contradicted = [...decided].filter(([, d]) => d.join() !== 'shadow>canary' && d.join() !== 'shadow>rejected');
    expect(contradicted).toEqual([]);
    const byEager = models.filter((m) => decided.get(m)!.join() === 'shadow>canary');
    const byStrict = models.filter((m) => decided.get(m)!.join() === 'shadow>rejected');
    expect(byEager.length).toBeGreaterThan(0);
    expect(byStrict.length).toBeGreaterThan(0);
    // A partition's models go together: ownership is by the partition their events go to.
    for (const model of models) {
      const mate = models.find((m) => m !== model && partitionOf(m, PARTITIONS) === partitionOf(model, PARTITIONS))!;
      expect(byEager.includes(model)).toBe(byEager.includes(mate));
    }

    // The strict controller stops: the eager one takes its models over and decides them (v3 enters
    // shadow after v2's rejection, and is promoted by the eager policy, never rejected).
    await strictRunner?.stop();
    strictRunner = undefined;
    const t1 = Date.now() - 30 * 60_000;
    for (const model of byStrict) {
      await warehouse.transitions.record(gate(model, 'v3', 'v1', t1));
      await answered(warehouse, model, 'v3', t1);
    }
    const v3 = await eventually(
      async () => {
        const d = await outOfShadow(warehouse, 'v3');
        return byStrict.every((m) => (d.get(m) ?? []).length > 0) ? d : undefined;
      },
      60_000,
      200,
    );
    for (const model of byStrict) expect({ model, v3: v3.get(model) }).toEqual({ model, v3: ['shadow>canary'] });
  });
});
