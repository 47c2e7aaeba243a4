import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer, ensureTopics } from '@driftline/kafka';
import { contracts, type ModelEvent } from '@driftline/schemas';
import { freePort, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { writeVersion } from './fixtures.js';
import { startServer } from './stack-fixtures.js';

const stack = inject('stack');

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
    let time = Date.now() - 1_000_000;
    const event = (model: string, kind: ModelEvent['kind'], version: string, extra: Partial<ModelEvent> = {}) =>
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
        ...extra,
      }) satisfies ModelEvent;
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
