import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { allServices } from '@driftline/cli';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer, type EventProducer, ensureTopics, topicOffsets } from '@driftline/kafka';
import { contracts, type LabelEvent, type ModelEvent } from '@driftline/schemas';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, freePort, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { SeededRandom } from '@driftline/test-support/random';
import { openWarehouse, type TransitionRow, type Warehouse } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';

/**
 * Issue 12, item 3 on the real stack: model-server, label-joiner and model-controller in one
 * process (as `driftline run` composes them), live traffic and live labels.
 *
 * Models are one-split stumps written in XGBoost's JSON format, so the test knows every version's
 * probability exactly: `truth` (p = 0.88 when f0 ≥ 0, else 0.12), `flat` (0.5), `anti` (the
 * reverse of truth). Labels are drawn from the world's probability of the instance.
 * - fraud: production v1 = flat; v2 = truth and v3 = anti enter shadow (as the trainer's staged
 *   rollout records them). v2 goes shadow → canary → production, v1 is retired after the watch;
 *   v3 is rejected in shadow.
 * - churn: production v1 = flat; v2 = truth goes to production, then degrades — once it answers as
 *   production the world is the reverse (labels drawn from `anti`) — and is rolled back to v1.
 */

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'rollout-int-'));
const prefix = `${uniqueName('rollout')}.`;
const database = uniqueName('rollout').replaceAll('-', '_');
const FEATURES = ['f0', 'f1'];
const LOGIT = 2; // sigmoid(2) ≈ 0.881

type Kind = 'truth' | 'flat' | 'anti';
const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const leafOf = (kind: Kind, left: boolean) => (kind === 'flat' ? 0 : (kind === 'truth') === left ? -LOGIT : LOGIT);
const probability = (kind: Kind, f0: number) => sigmoid(leafOf(kind, f0 < 0));

/** A one-split XGBoost model on f0 < 0 (left), base score 0.5, in the worker's JSON layout. */
function writeStump(model: string, version: string, kind: Kind): void {
  const at = join(dir, model, version);
  mkdirSync(at, { recursive: true });
  const tree = {
    id: 0,
    tree_param: { num_nodes: '3', num_feature: String(FEATURES.length), size_leaf_vector: '1' },
    left_children: [1, -1, -1],
    right_children: [2, -1, -1],
    split_indices: [0, 0, 0],
    split_conditions: [0, leafOf(kind, true), leafOf(kind, false)],
    default_left: [1, 0, 0],
    base_weights: [0, leafOf(kind, true), leafOf(kind, false)],
    loss_changes: [0, 0, 0],
    sum_hessian: [1, 1, 1],
    parents: [2147483647, 0, 0],
    split_type: [0, 0, 0],
    categories: [],
    categories_nodes: [],
    categories_segments: [],
    categories_sizes: [],
  };
  const json = {
    learner: {
      feature_names: FEATURES,
      feature_types: FEATURES.map(() => 'float'),
      learner_model_param: {
        base_score: '[5E-1]',
        num_class: '0',
        num_feature: String(FEATURES.length),
        num_target: '1',
      },
      objective: { name: 'binary:logistic' },
      gradient_booster: {
        name: 'gbtree',
        model: { gbtree_model_param: { num_parallel_tree: '1', num_trees: '1' }, tree_info: [0], trees: [tree] },
      },
    },
    version: [3, 2, 0],
  };
  writeFileSync(join(at, 'model.json'), JSON.stringify(json));
  writeFileSync(join(at, 'meta.json'), JSON.stringify({ features: FEATURES, categories: {} }));
}

const kinds: Record<string, Record<string, Kind>> = {
  fraud: { v1: 'flat', v2: 'truth', v3: 'anti' },
  churn: { v1: 'flat', v2: 'truth' },
};
for (const [model, versions] of Object.entries(kinds)) {
  for (const [version, kind] of Object.entries(versions)) writeStump(model, version, kind);
}

const policyFile = join(dir, 'rollout.yaml');
writeFileSync(
  policyFile,
  `version: 1
defaults:
  promotion: { min_labels: 40, max_labels: 5000, max_time: 1h }
  rollback: { min_labels: 80, max_labels: 5000, max_time: 1h }
  canary_share: 0.5
  arrival_bucket: 0
`,
);
const viewsFile = join(dir, 'views.yaml');
writeFileSync(
  viewsFile,
  'views:\n  - name: user\n    entity: user_id\n    ttl: 1d\n    features:\n      other: double\n',
);

const services = ['label-joiner', 'model-server', 'model-controller'].map((name) => {
  const service = allServices.find((s) => s.name === name);
  if (service === undefined) throw new Error(`no service ${name}`);
  return service;
});

async function publishModels(events: readonly ModelEvent[]): Promise<void> {
  const topic = `${prefix}models.v1`;
  await ensureTopics(kafkaFor(stack.kafkaBrokers), [
    { topic, partitions: 2 },
    { topic: `${prefix}labels.v1`, partitions: 2 },
  ]);
  const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.model, topic);
  const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
  const messages = [];
  for (const e of events) messages.push({ key: e.model, value: await codec.encode(e) });
  await producer.send(topic, messages);
  await producer.disconnect();
}

const promoted = (model: string, version: string): ModelEvent => ({
  model,
  version,
  kind: 'PROMOTED',
  event_time: Date.now(),
  request_id: null,
  metrics: {},
  artifact_uri: `file://${join(dir, model, version, 'model.json')}`,
  reference_uri: null,
});

/** What the trainer's staged rollout records for a version that passed the offline gate. */
function gate(model: string, version: string, against: string, at: number): TransitionRow[] {
  const base = {
    model,
    version,
    at,
    decided_by: 'trainer:offline_gate',
    detail: '',
    evidence: '',
    canary_share: null,
    recorded_at: at,
  };
  return [
    { ...base, from_stage: null, to_stage: 'candidate', reason: 'trained', previous_version: null },
    { ...base, from_stage: 'candidate', to_stage: 'shadow', reason: 'offline_gate', previous_version: against },
  ];
}

describe('model-controller on the real stack: shadow → canary → production, rejection, rollback', () => {
  let runner: Runner | undefined;
  let warehouse: Warehouse;
  let labels: EventProducer;
  let base = '';
  let stop = false;
  let traffic: Promise<void> = Promise.resolve();
  const answered: Record<string, string[]> = { fraud: [], churn: [] };
  let failures = 0;

  /** Live traffic: 5 instances per model every 100 ms; every answered prediction gets its label at once. */
  async function drive(): Promise<void> {
    const r = new SeededRandom(42);
    const lc = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(
      contracts.label,
      `${prefix}labels.v1`,
    );
    while (!stop) {
      for (const model of ['fraud', 'churn']) {
        const instances = Array.from({ length: 5 }, () => ({
          entity_id: `e${r.int(100_000)}`,
          features: { f0: r.normal(), f1: r.normal() },
        }));
        const res = await fetch(`${base}/v1/models/${model}:predict`, {
          method: 'POST',
          body: JSON.stringify({ instances }),
        });
        if (res.status !== 200) {
          failures++;
          continue;
        }
        const body = (await res.json()) as {
          predictions: Array<{ prediction_id: string; version: string; role: string }>;
        };
        const out = [];
        for (const [i, p] of body.predictions.entries()) {
          answered[model]!.push(`${p.version}:${p.role}`);
          // churn's v2 degrades once it serves as production: the world turns into the reverse.
          const world: Kind = model === 'churn' && p.version === 'v2' && p.role === 'production' ? 'anti' : 'truth';
          const label = r.uniform() < probability(world, instances[i]!.features.f0) ? 1 : 0;
          const event: LabelEvent = { prediction_id: p.prediction_id, model, event_time: Date.now(), label };
          out.push({ key: p.prediction_id, value: await lc.encode(event) });
        }
        await labels.send(`${prefix}labels.v1`, out);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  const stagesOf = async (model: string) =>
    (await warehouse.transitions.history(model)).map((t) => `${t.version}:${t.from_stage ?? ''}>${t.to_stage}`);

  beforeAll(async () => {
    const env = {
      DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
      DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
      DRIFTLINE_REDIS_URL: stack.redisUrl,
      DRIFTLINE_TOPIC_PREFIX: prefix,
      DRIFTLINE_TOPIC_PARTITIONS: '2',
      DRIFTLINE_HTTP_PORT: '0',
      DRIFTLINE_LOG_LEVEL: 'warn',
      DRIFTLINE_CLICKHOUSE_DATABASE: database,
      DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'ch'),
      DRIFTLINE_JOINER_KEY_PREFIX: `${prefix}:`,
      DRIFTLINE_JOINER_GROUP: 'joiner', // after the topic prefix
      DRIFTLINE_JOINER_MAX_LABEL_DELAY: '1h',
      DRIFTLINE_JOINER_SESSION_TIMEOUT: '6s',
      DRIFTLINE_FEATURE_VIEWS: viewsFile,
      DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('rollout'),
      DRIFTLINE_MODEL_SERVER_PORT: String(await freePort()),
      DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR: dir,
      DRIFTLINE_PROMOTION_POLICY: policyFile,
      DRIFTLINE_MODEL_CONTROLLER_INTERVAL: '500ms',
      DRIFTLINE_MODEL_CONTROLLER_MAX_PAIRS: '5000',
    };
    base = `http://127.0.0.1:${env.DRIFTLINE_MODEL_SERVER_PORT}`;
    warehouse = await openWarehouse({ mode: 'embedded', path: env.DRIFTLINE_CLICKHOUSE_PATH, database });
    // v1 serves both models (promoted directly, no stage record); the candidates enter shadow as the
    // trainer's staged rollout records them. Nothing publishes SHADOW: the controller's start does.
    await publishModels([promoted('fraud', 'v1'), promoted('churn', 'v1')]);
    const now = Date.now();
    await warehouse.transitions.record([
      ...gate('fraud', 'v2', 'v1', now),
      ...gate('fraud', 'v3', 'v1', now),
      ...gate('churn', 'v2', 'v1', now),
    ]);
    labels = await createProducer(kafkaFor(stack.kafkaBrokers));
    runner = await startRunner({ services, env });
    await eventually(
      async () =>
        (
          await fetch(`${base}/v1/models/fraud:predict`, {
            method: 'POST',
            body: JSON.stringify({ entity_id: 'x', features: { f0: 1 } }),
          })
        ).status === 200
          ? true
          : undefined,
      60_000,
      200,
    );
    traffic = drive();
  });

  afterAll(async () => {
    stop = true;
    await traffic.catch(() => {});
    await labels?.disconnect();
    await runner?.stop();
    await warehouse?.close();
  });

  it('takes the better candidate through shadow and canary to production and retires the old version; rejects the worse one', async () => {
    const started = Date.now();
    const stages = await eventually(
      async () => {
        const s = await stagesOf('fraud');
        return s.includes('v1:production>retired') && s.some((x) => x.startsWith('v3:shadow>')) ? s : undefined;
      },
      90_000,
      300,
    );
    console.info(`fraud rollout in ${Date.now() - started} ms: ${stages.join(', ')}`);
    expect(stages).toEqual(
      expect.arrayContaining([
        'v2:shadow>canary',
        'v2:canary>production',
        'v1:production>retired',
        'v3:shadow>rejected',
      ]),
    );
    const history = await warehouse.transitions.history('fraud');
    const canary = history.find((t) => t.version === 'v2' && t.to_stage === 'canary')!;
    const production = history.find((t) => t.version === 'v2' && t.to_stage === 'production')!;
    expect(canary).toMatchObject({
      decided_by: 'policy:promotion',
      reason: 'evidence',
      canary_share: 0.5,
      previous_version: 'v1',
    });
    expect(production).toMatchObject({ decided_by: 'policy:promotion', previous_version: 'v1' });
    expect(production.at).toBeGreaterThanOrEqual(canary.at);
    expect(JSON.parse(production.evidence)).toMatchObject({ test: 'prpl_eb_confidence_sequence', bar: 0 });
    expect(JSON.parse(production.evidence).lower).toBeGreaterThan(0);
    // The server follows: v2 answers everything now, canaries answered on the way.
    await eventually(async () => (answered.fraud!.at(-1) === 'v2:production' ? true : undefined), 20_000, 100);
    expect(answered.fraud).toContain('v2:canary');
    expect(answered.fraud!.every((a) => !a.startsWith('v3:'))).toBe(true);

    // models.v1 has every transition, in order per model (SHADOW from the controller's start-up).
    const topic = `${prefix}models.v1`;
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.model, topic);
    const kafka = kafkaFor(stack.kafkaBrokers);
    // Every message of the topic (both models' events interleave): read them all once fraud's are in.
    const events = await eventually(
      async () => {
        const count = (await topicOffsets(kafka, topic)).reduce((sum, o) => sum + Number(o.high - o.low), 0);
        const out: ModelEvent[] = [];
        for (const m of await readTopic(kafka, topic, count, 30_000)) out.push(await codec.decode(m.value!));
        return out.filter((e) => e.model === 'fraud').length >= 7 ? out : undefined;
      },
      30_000,
      500,
    );
    const fraud = events.filter((e) => e.model === 'fraud').map((e) => `${e.version}:${e.kind}`);
    expect(fraud).toEqual(
      expect.arrayContaining(['v2:SHADOW', 'v3:SHADOW', 'v2:CANARY', 'v2:PROMOTED', 'v3:REJECTED', 'v1:RETIRED']),
    );
    expect(fraud.indexOf('v2:CANARY')).toBeLessThan(fraud.indexOf('v2:PROMOTED'));
    expect(
      events.find((e) => e.model === 'fraud' && e.kind === 'PROMOTED' && e.version === 'v2')?.previous_version,
    ).toBe('v1');
    expect(failures).toBe(0);
  });

  it('rolls back a production version that degrades after its promotion', async () => {
    const started = Date.now();
    const stages = await eventually(
      async () => {
        const s = await stagesOf('churn');
        return s.includes('v2:production>rolled_back') || s.includes('v1:production>retired') ? s : undefined;
      },
      90_000,
      300,
    );
    console.info(`churn rollout in ${Date.now() - started} ms: ${stages.join(', ')}`);
    expect(stages).toEqual([
      'v2:>candidate',
      'v2:candidate>shadow',
      'v2:shadow>canary',
      'v2:canary>production',
      'v2:production>rolled_back',
    ]);
    const back = (await warehouse.transitions.history('churn', 'v2')).at(-1)!;
    expect(back).toMatchObject({ decided_by: 'policy:rollback', reason: 'evidence', previous_version: 'v1' });
    // The server serves v1 again.
    await eventually(async () => (answered.churn!.at(-1) === 'v1:production' ? true : undefined), 20_000, 100);
    expect(failures).toBe(0);
  });
});
