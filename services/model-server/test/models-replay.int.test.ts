import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { silentLogger } from '@driftline/core';
import { parseFeatureViewsText } from '@driftline/features';
import { createProducer, ensureTopics, startConsumer } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { MAX_ENDED, MAX_PRODUCTIONS, MAX_SHADOWS, MAX_WATCHED } from '@driftline/policy';
import { contracts, type ModelEvent } from '@driftline/schemas';
import { syntheticModelJson } from '@driftline/scoring/bench';
import { eventually, freePort, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { modelsFollower } from '../src/models-follower.js';
import { ServingTable } from '../src/serving.js';
import { createStageApplier } from '../src/stage-retry.js';
import { buildVersion } from '../src/version.js';
import { FEATURES, VIEWS_YAML, writeVersion } from './fixtures.js';
import { startServer } from './stack-fixtures.js';

const stack = inject('stack');

/** models.v1 events one millisecond apart from `start`, with `fields` of their own. */
function eventsFrom(start: number, fields: (model: string, version: string) => Partial<ModelEvent> = () => ({})) {
  let time = start;
  return (model: string, kind: ModelEvent['kind'], version: string, extra: Partial<ModelEvent> = {}) =>
    ({
      model,
      version,
      kind,
      event_time: time++,
      request_id: null,
      metrics: {},
      artifact_uri: '',
      reference_uri: null,
      decided_by: 'policy:promotion',
      ...fields(model, version),
      ...extra,
    }) satisfies ModelEvent;
}

describe('model server: the start-up replay of a models.v1 longer than one fetch (found by a review)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'models-replay-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is applied once, read to its end: ready only then, never an old production, the right version watched', async () => {
    for (const [version, seed] of [
      ['v1', 1],
      ['v2', 2],
      ['v3', 3],
    ] as const)
      writeVersion(dir, 'fraud', version, seed, 200, 6);
    const prefix = `${uniqueName('replay')}.`;
    const topic = `${prefix}models.v1`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.model, topic);
    const event = eventsFrom(Date.now() - 1_000_000);
    // fraud's v1, then over 1 MB of other models' history (more than one fetch), then v2 and v3.
    const history: ModelEvent[] = [
      event('fraud', 'PROMOTED', 'v1'),
      ...Array.from({ length: 150 }, (_, i) =>
        event(`other${i % 7}`, 'TRAINED', `x${i}`, { reason: 'r'.repeat(10_000) }),
      ),
      event('fraud', 'SHADOW', 'v2'),
      event('fraud', 'CANARY', 'v2', { canary_share: 0.1 }),
      event('fraud', 'PROMOTED', 'v2', { previous_version: 'v1' }),
      event('fraud', 'RETIRED', 'v1'),
      event('fraud', 'SHADOW', 'v3'),
      event('fraud', 'CANARY', 'v3', { canary_share: 0.1 }),
      event('fraud', 'PROMOTED', 'v3', { previous_version: 'v2' }),
    ];
    const producer = await createProducer(kafka);
    for (const e of history) await producer.send(topic, [{ key: e.model, value: await codec.encode(e) }]);
    await producer.disconnect();
    const port = await freePort();
    const base = `http://127.0.0.1:${port}`;

    // Health and answers while it starts, until it answers.
    const seen: string[] = [];
    let polling = true;
    const poll = (async () => {
      while (polling) {
        try {
          const health = (await fetch(`${base}/healthz`)).status;
          const answer = await fetch(`${base}/v1/models/fraud:predict`, {
            method: 'POST',
            body: JSON.stringify({ entity_id: 'u1', features: { f3: 1 } }),
          });
          const body = (await answer.json()) as { version?: string };
          const line = `healthz ${health} predict ${answer.status} ${body.version ?? ''}`.trim();
          if (seen.at(-1) !== line) seen.push(line);
          if (answer.status === 200) return;
        } catch {
          // not listening yet
        }
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
    })();
    const runner = await startServer(stack, dir, prefix, port, {
      DRIFTLINE_LOG_LEVEL: 'error',
      DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('k'),
    });
    try {
      await Promise.race([poll, new Promise((resolve) => setTimeout(resolve, 60_000))]);
      polling = false;
      // Never healthy while it could not answer (it answered 404 "unknown model" before), never an
      // older production; the first answer is v3's.
      expect(seen.filter((l) => l.startsWith('healthz 200') && !l.includes('predict 200'))).toEqual([]);
      expect(seen.filter((l) => !l.endsWith('predict 503') && !l.endsWith('predict 200 v3'))).toEqual([]);
      expect(seen.at(-1)).toMatch(/predict 200 v3$/);
      // The version v3 replaced is watched (scored as a shadow), as the controller watches it: not v1.
      const { models } = (await (await fetch(`${base}/v1/models`)).json()) as {
        models: Array<{ model: string; production: string; shadows: string[] }>;
      };
      expect(models.find((m) => m.model === 'fraud')).toMatchObject({ production: 'v3', shadows: ['v2'] });
    } finally {
      polling = false;
      await runner.stop();
    }
  });
});

describe('model server: the start-up replay of a long models.v1 is held folded, not event by event (found by a review)', () => {
  it('holds stages bounded per model while it reads, and applies what every event said', async () => {
    // models.v1 is kept for good (retention -1, not compacted): every stage move of every version
    // of every model. 2 models x 1,500 versions, each trained, shadowed, promoted over the one
    // before, which is retired: 11,998 events, read from the real topic through the registry. Held
    // until the end (before), the follower kept every decoded event (~0.8 KB each); folded, at most
    // MAX_ENDED ended and MAX_PRODUCTIONS production versions per model.
    const topic = `${uniqueName('replay-held')}.models.v1`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [
      { topic, partitions: 1 },
      { topic: `${topic}.dlq`, partitions: 1 },
    ]);
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.model, topic);
    const event = eventsFrom(Date.now() - 10_000_000, (model, version) => ({
      metrics: { auc: 0.91, log_loss: 0.23 },
      artifact_uri: `file:///artifacts/${model}/${version}/model.json`,
      reason: 'promoted: the sequential test decided on paired labels',
    }));
    const history: ModelEvent[] = [];
    for (let v = 1; v <= 1_500; v++) {
      for (const model of ['fraud', 'churn']) {
        history.push(event(model, 'TRAINED', `v${v}`), event(model, 'SHADOW', `v${v}`));
        history.push(event(model, 'PROMOTED', `v${v}`, v > 1 ? { previous_version: `v${v - 1}` } : {}));
        if (v > 1) history.push(event(model, 'RETIRED', `v${v - 1}`));
      }
    }
    const producer = await createProducer(kafka);
    for (let i = 0; i < history.length; i += 500) {
      const batch = history.slice(i, i + 500);
      await producer.send(
        topic,
        await Promise.all(batch.map(async (e) => ({ key: e.model, value: await codec.encode(e) }))),
      );
    }

    const table = new ServingTable({
      views: parseFeatureViewsText(VIEWS_YAML),
      canaries: new Map(),
      shadows: new Map(),
      logger: silentLogger,
      load: async (model, version) =>
        buildVersion(model, version, syntheticModelJson(3, 5, 3, 4), { features: FEATURES }),
    });
    const applier = createStageApplier({
      apply: (m, e, replayed, from) => table.apply(m, e, replayed, from),
      follows: (m) => table.follows(m),
      logger: silentLogger,
    });
    const follower = modelsFollower((m, e, replay) => applier.apply(m, e, replay), {
      admit: (m, e) => applier.admit(m, e),
    });
    const handle = await startConsumer<ModelEvent>({
      kafka,
      groupId: uniqueName('replay-held'),
      topics: [topic],
      producer,
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
      fromBeginning: true,
      ephemeral: true,
      processor: {
        decode: (r) => codec.decode(r.value),
        process: (items, context) => follower.process(items, context),
      },
    });
    try {
      await eventually(async () => ((await handle.positions()).every((p) => p.caughtUp) ? true : undefined), 60_000);
      const held = follower.held();
      expect(held).toMatchObject({ models: 2, events: history.length });
      // Bounded per model, whatever the length of its history (before: `entries` = every event held).
      const perModel = MAX_ENDED + MAX_PRODUCTIONS + 2 * (2 + MAX_SHADOWS + MAX_WATCHED);
      expect(held.entries).toBeLessThanOrEqual(2 * perModel);
      expect(await follower.finishReplay()).toBe(2);
      expect(follower.held()).toEqual({ models: 0, events: 0, entries: 0 });
      // What every event said: the newest production serves, the one it replaced (retired) is not watched.
      expect(table.describe().sort((a, b) => a.model.localeCompare(b.model))).toEqual([
        { model: 'churn', production: 'v1500', shadows: [] },
        { model: 'fraud', production: 'v1500', shadows: [] },
      ]);
    } finally {
      applier.stop();
      await handle.stop();
      await producer.disconnect();
    }
  }, 120_000);
});
