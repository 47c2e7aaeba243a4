import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Logger, silentLogger } from '@driftline/core';
import { committedOffsets } from '@driftline/kafka';
import { createRedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { createDriftlineProducer } from '@driftline/sdk';
import { startRunner } from '@driftline/service';
import { eventually, freePort, kafkaFor, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { featureMaterializer } from '../src/index.js';
import { differences, eventLog, offlineState, onlineState, shuffledWithDuplicates, writeViewsFile } from './helpers.js';

const stack = inject('stack');

/**
 * A private redis-server (never the shared one), durable the way an online store that must not lose
 * acknowledged writes is configured: append-only file fsynced on every write. Killing it with
 * SIGKILL is a crash; restarting it on the same port and directory replays the AOF.
 */
function startRedis(
  port: number,
  dir: string,
  extra: readonly string[] = [],
): { child: ChildProcess; exit: Promise<unknown> } {
  const child = spawn(
    'redis-server',
    [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--appendonly',
      'yes',
      '--appendfsync',
      'always',
      '--save',
      '',
      ...extra,
    ],
    { stdio: 'ignore' },
  );
  return { child, exit: new Promise((resolve) => child.once('exit', resolve)) };
}

describe('feature-materializer while Redis is down', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  it('backs off, commits nothing past Redis, and resumes with nothing lost after a Redis crash and restart', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'driftline-redis-'));
    let redisProcess = startRedis(port, dir);
    cleanup.push(async () => {
      redisProcess.child.kill('SIGKILL');
      await redisProcess.exit;
      rmSync(dir, { recursive: true, force: true });
    });
    const url = `redis://127.0.0.1:${port}`;
    const keyPrefix = uniqueName('fk');
    // It reconnects by itself across the crash (every 50 ms).
    const probe = createRedisOnlineStore(
      { url, tls: false },
      { use: 'online-read', keyPrefix, policy: { reconnectMaxDelayMs: 50 } },
    );
    cleanup.push(() => probe.close());
    await waitReady(probe.client);

    const prefix = `${uniqueName('outage')}.`;
    const group = uniqueName('materializer');
    const runner = await startRunner({
      services: [featureMaterializer as never],
      logger: silentLogger,
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_TOPIC_PARTITIONS: '3',
        DRIFTLINE_FEATURE_VIEWS: writeViewsFile(),
        DRIFTLINE_REDIS_URL: url,
        DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
        DRIFTLINE_MATERIALIZER_GROUP: group,
        DRIFTLINE_MATERIALIZER_MAX_BYTES_PER_PARTITION: '8192',
        DRIFTLINE_MATERIALIZER_BACKOFF_MAX_MS: '800',
      },
    });
    cleanup.push(() => runner.stop());
    const sdk = await createDriftlineProducer({
      kafka: { brokers: stack.kafkaBrokers, clientId: 'test-sdk', ssl: false },
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
    });
    cleanup.push(() => sdk.close());
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${prefix}features.v1`;
    const committed = async () =>
      [...(await committedOffsets(kafka, `${prefix}${group}`, topic)).values()].reduce(
        (a, b) => a + (b > 0n ? b : 0n),
        0n,
      );

    const log = eventLog(4_000, 50, 21);
    const delivery = shuffledWithDuplicates(log, 22);
    const half = Math.floor(delivery.length / 2);
    await sdk.publishFeatures(delivery.slice(0, half));
    await sdk.flush();
    await eventually(async () => ((await committed()) > 0n ? true : undefined), 30_000, 20);

    // Crash Redis mid-stream, keep producing while it is down.
    redisProcess.child.kill('SIGKILL');
    await redisProcess.exit;
    await sdk.publishFeatures(delivery.slice(half));
    await sdk.flush();
    await eventually(async () => (runner.ready() ? undefined : true), 10_000, 50);
    const duringOutage = await committed();
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await committed()).toBe(duringOutage); // nothing committed while the sink is down
    expect(duringOutage).toBeLessThan(BigInt(delivery.length));
    const metrics = await runner.context.registry.getSingleMetricAsString('driftline_records_failed_total');
    expect(metrics).toMatch(/driftline_records_failed_total\{[^}]*\} [1-9]/);

    redisProcess = startRedis(port, dir);
    await eventually(async () => ((await committed()) === BigInt(delivery.length) ? true : undefined), 40_000, 100);
    await eventually(async () => (runner.ready() ? true : undefined), 10_000, 50);
    const expected = offlineState(log);
    await waitReady(probe.client);
    expect(differences(expected, await onlineState(probe, expected)).slice(0, 3)).toEqual([]);
  });

  it('starts before its Redis does, and warns once Redis answers with an evicting policy', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'driftline-redis-'));
    const warnings: string[] = [];
    const logger: Logger = { ...silentLogger, warn: (_obj, msg) => void warnings.push(msg ?? ''), child: () => logger };
    const runner = await startRunner({
      services: [featureMaterializer as never],
      logger,
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_TOPIC_PREFIX: `${uniqueName('evict')}.`,
        DRIFTLINE_TOPIC_PARTITIONS: '1',
        DRIFTLINE_FEATURE_VIEWS: writeViewsFile(),
        DRIFTLINE_REDIS_URL: `redis://127.0.0.1:${port}`,
        DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('fk'),
        DRIFTLINE_MATERIALIZER_GROUP: uniqueName('materializer'),
      },
    });
    cleanup.push(() => runner.stop());
    expect(warnings.filter((w) => w.includes('durability'))).toEqual([]);
    const redis = startRedis(port, dir, ['--maxmemory-policy', 'allkeys-lru']);
    cleanup.push(async () => {
      redis.child.kill('SIGKILL');
      await redis.exit;
      rmSync(dir, { recursive: true, force: true });
    });
    const line = await eventually(async () => warnings.find((w) => w.includes('maxmemory-policy')), 20_000);
    expect(line).toBe(
      'Redis durability of the online feature store: maxmemory-policy is allkeys-lru, expected noeviction: under memory pressure Redis deletes online features: entities lose their features (served as missing until their next event; then the aggregates of a windowed view count only the events kept since, until its longest window has passed), without an error',
    );
  });
});
