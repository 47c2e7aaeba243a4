import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createProducer } from '@driftline/kafka';
import { createRedisClient } from '@driftline/online-store/redis';
import { contracts, type PredictionEvent } from '@driftline/schemas';
import { eventually, kafkaFor, removeTree, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { startJoiner } from './fixtures/runner.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'lj-state-loss-'));

describe('label-joiner: Redis losing the join state while it runs', () => {
  const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'lj-state-loss' });
  afterAll(async () => {
    redis.disconnect();
    await removeTree(dir);
  });

  it('is reported at the next batch: one error count, the marker written again, joining goes on', async () => {
    const prefix = `${uniqueName('ljloss')}.`;
    const keyPrefix = `${prefix}:`;
    const runner = await startJoiner(stack, prefix, `ljloss_${prefix.slice(7, 15).replaceAll('-', '')}`, dir, {
      DRIFTLINE_TOPIC_PARTITIONS: '1',
      DRIFTLINE_LOG_LEVEL: 'fatal',
      DRIFTLINE_JOINER_MAX_LABEL_DELAY: '1h',
    });
    try {
      const marker = `${keyPrefix}state-marker:join`;
      expect(await redis.exists(marker)).toBe(1);
      const topic = `${prefix}${contracts.prediction.defaultTopic}`;
      const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
      const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
      const predict = async (id: string) => {
        const event: PredictionEvent = {
          prediction_id: id,
          model: 'fraud',
          model_version: 'v1',
          entity_id: 'e',
          event_time: Date.now(),
          features: {},
          prediction: 0.5,
          predicted_class: null,
        };
        await producer.send(topic, [{ key: id, value: await codec.encode(event) }]);
      };
      const keys = async () => {
        const found: string[] = [];
        let cursor = '0';
        do {
          const [next, page] = await redis.scan(cursor, 'MATCH', `${keyPrefix}*`, 'COUNT', 1_000);
          cursor = next;
          found.push(...page);
        } while (cursor !== '0');
        return found;
      };
      await predict('p-1');
      await eventually(async () => ((await keys()).some((k) => k.endsWith('pending')) ? true : undefined), 30_000);
      // Redis loses the deployment's state (the shared test Redis: its keys, not a FLUSHALL).
      await redis.unlink(...(await keys()));
      await predict('p-2');
      const metrics = async () => (await fetch(`http://127.0.0.1:${runner.httpPort}/metrics`)).text();
      const lost = await eventually(async () => {
        const line = (await metrics()).split('\n').find((l) => l.startsWith('driftline_redis_state_lost_total{'));
        return line?.endsWith(' 1') === true ? line : undefined;
      }, 30_000);
      expect(lost).toMatch(/store="join"/);
      expect(await redis.exists(marker)).toBe(1);
      // The state written after the loss is kept: p-2 is pending again.
      expect((await keys()).some((k) => k.endsWith('pending'))).toBe(true);
      await producer.disconnect();
    } finally {
      await runner.stop();
    }
  });
});
