import { type ChildProcess, spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { committedOffsets } from '@driftline/kafka';
import { createRedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { createDriftlineProducer } from '@driftline/sdk';
import { eventually, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import {
  differences,
  eventLog,
  offlineState,
  onlineState,
  rng,
  shuffledWithDuplicates,
  writeViewsFile,
} from './helpers.js';

const stack = inject('stack');
const repoRoot = fileURLToPath(new URL('../../..', import.meta.url));

function spawnMaterializer(env: Record<string, string>): {
  child: ChildProcess;
  ready: Promise<void>;
  exit: Promise<number | null>;
} {
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=source', 'services/feature-materializer/test/fixtures/materializer-process.ts'],
    { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => d.toString().includes('ready') && resolve());
    child.once('exit', (code) => reject(new Error(`materializer exited early (${code})`)));
  });
  const exit = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, ready, exit };
}

describe('feature-materializer killed at random points', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  it('SIGKILLed mid-stream and restarted, it ends in the offline last-write-wins state', async () => {
    const prefix = `${uniqueName('crash')}.`;
    const keyPrefix = uniqueName('fk');
    const group = uniqueName('materializer'); // after the topic prefix
    const topic = `${prefix}features.v1`;
    const env = {
      DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
      DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
      DRIFTLINE_HTTP_PORT: '0',
      DRIFTLINE_LOG_LEVEL: 'silent',
      DRIFTLINE_TOPIC_PREFIX: prefix,
      DRIFTLINE_TOPIC_PARTITIONS: '3',
      DRIFTLINE_FEATURE_VIEWS: writeViewsFile(),
      DRIFTLINE_REDIS_URL: stack.redisUrl,
      DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
      DRIFTLINE_MATERIALIZER_GROUP: group,
      DRIFTLINE_MATERIALIZER_CONCURRENCY: '3',
      // Small fetches: many small batches, so a kill lands between and inside them.
      DRIFTLINE_MATERIALIZER_MAX_BYTES_PER_PARTITION: '4096',
      DRIFTLINE_MATERIALIZER_SESSION_TIMEOUT_MS: '6000',
    };
    const store = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-read', keyPrefix });
    cleanup.push(() => store.close());
    await waitReady(store.client);
    const log = eventLog(6_000, 60, 7);
    const expected = offlineState(log);

    // Each killed run gets its share of the (shuffled, duplicated) log while it consumes, and is SIGKILLed at a
    // random point once it has committed something new: mid-batch, between pipeline and commit, anywhere.
    const random = rng(99);
    const kafka = kafkaFor(stack.kafkaBrokers);
    const delivery = shuffledWithDuplicates(log, 8);
    const rounds = 2;
    const chunk = Math.ceil(delivery.length / rounds);
    for (let round = 0; round < rounds; round++) {
      const run = spawnMaterializer(env);
      cleanup.push(async () => {
        run.child.kill('SIGKILL');
      });
      await run.ready;
      const before = await committedTotal();
      const sdk = await createDriftlineProducer({
        kafka: { brokers: stack.kafkaBrokers, clientId: 'test-sdk', ssl: false },
        registry: { url: stack.schemaRegistryUrl },
        topicPrefix: prefix,
      });
      await sdk.publishFeatures(delivery.slice(round * chunk, (round + 1) * chunk));
      await sdk.close();
      await eventually(async () => ((await committedTotal()) > before ? true : undefined), 30_000, 20);
      await new Promise((r) => setTimeout(r, Math.floor(random() * 300)));
      run.child.kill('SIGKILL');
      await run.exit;
    }
    const last = spawnMaterializer(env);
    await last.ready;
    await eventually(
      async () => ((await committedTotal()) === BigInt(delivery.length) ? true : undefined),
      60_000,
      200,
    );
    last.child.kill('SIGTERM');
    expect(await last.exit).toBe(0);
    expect(differences(expected, await onlineState(store, expected)).slice(0, 3)).toEqual([]);

    async function committedTotal(): Promise<bigint> {
      const offsets = await committedOffsets(kafka, `${prefix}${group}`, topic).catch(() => new Map<number, bigint>());
      return [...offsets.values()].reduce((a, b) => a + (b > 0n ? b : 0n), 0n);
    }
  });
});
