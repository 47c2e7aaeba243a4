import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SchemaRegistryCodec } from '@driftline/codec';
import { silentLogger } from '@driftline/core';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { committedOffsets, createProducer } from '@driftline/kafka';
import { createRedisOnlineStore, waitReady } from '@driftline/online-store/redis';
import { contracts, type PredictionEvent } from '@driftline/schemas';
import { startRunner } from '@driftline/service';
import { eventually, freePort, kafkaFor, removeTree, uniqueName } from '@driftline/test-support';
import { createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { skewMonitorService } from '../src/service.js';

const stack = inject('stack');
const VIEWS_YAML = 'views:\n  - name: profile\n    entity: user_id\n    features: { age: double }\n';
const T0 = Math.floor((Date.now() - 30 * 60_000) / 60_000) * 60_000;

/** A private redis-server (never the shared one) whose AOF survives a SIGKILL: a crash, then the same rows. */
function startRedis(port: number, dir: string): { child: ChildProcess; exit: Promise<unknown> } {
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--appendonly', 'yes'];
  const child = spawn('redis-server', [...args, '--appendfsync', 'always', '--save', ''], { stdio: 'ignore' });
  return { child, exit: new Promise((resolve) => child.once('exit', resolve)) };
}

describe('skew-monitor while Redis is down', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  it('commits nothing while the store cannot be read, then counts every prediction exactly once', async () => {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'skew-redis-'));
    let redis = startRedis(port, dir);
    cleanup.push(async () => {
      redis.child.kill('SIGKILL');
      await redis.exit;
      await removeTree(dir);
    });
    const url = `redis://127.0.0.1:${port}`;
    const keyPrefix = uniqueName('skew').replaceAll('-', '_');
    const writer = createRedisOnlineStore({ url, tls: false }, { use: 'online-write', keyPrefix });
    cleanup.push(() => writer.close());
    await waitReady(writer.client);
    const views = parseFeatureViewsText(VIEWS_YAML);
    await writer.write(
      planWrites(
        Array.from({ length: 10 }, (_, u) =>
          validateFeatureEvent(views, {
            event_id: `e${u}`,
            view: 'profile',
            entity_id: `u${u}`,
            event_time: T0 - 1_000,
            features: { age: u },
          }),
        ),
      ),
    );

    const prefix = `${uniqueName('skew-outage')}.`;
    const database = uniqueName('skew').replaceAll('-', '_');
    const chPath = mkdtempSync(join(tmpdir(), 'skew-outage-ch-'));
    const viewsFile = join(dir, 'views.yaml');
    writeFileSync(viewsFile, VIEWS_YAML);
    const runner = await startRunner({
      services: [skewMonitorService as never],
      logger: silentLogger,
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
        DRIFTLINE_REDIS_URL: url,
        DRIFTLINE_FEATURE_VIEWS: viewsFile,
        DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_TOPIC_PARTITIONS: '1',
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_CLICKHOUSE_DATABASE: database,
        DRIFTLINE_CLICKHOUSE_PATH: chPath,
        DRIFTLINE_SKEW_SAMPLE_RATE: '1',
        DRIFTLINE_SKEW_WINDOW: '1m',
      },
    });
    cleanup.push(() => runner.stop());
    const ch = await createClickHouse({ mode: 'embedded', path: chPath, database });
    await migrate(ch, migrations);
    const compared = async () => {
      const [row] = await ch.select<{ n: number }>(
        `SELECT sum(compared) AS n FROM ${ch.table('skew_windows')} FINAL WHERE feature = 'age'`,
      );
      return Number(row?.n ?? 0);
    };

    const topic = `${prefix}predictions.v1`;
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl }).forTopic(contracts.prediction, topic);
    const producer = await createProducer(kafkaFor(stack.kafkaBrokers));
    cleanup.push(() => producer.disconnect());
    const send = async (from: number, n: number) => {
      const messages = [];
      for (let i = from; i < from + n; i++) {
        const e: PredictionEvent = {
          prediction_id: `p${i}`,
          model: 'fraud',
          model_version: 'v1',
          entity_id: `u${i % 10}`,
          event_time: T0 + i * 100,
          features: { age: i % 10 },
          prediction: 0.5,
          predicted_class: null,
          role: 'production',
          scores: null,
        };
        messages.push({ key: e.prediction_id, value: await codec.encode(e) });
      }
      await producer.send(topic, messages);
    };
    const kafka = kafkaFor(stack.kafkaBrokers);
    const committed = async () =>
      [...(await committedOffsets(kafka, `${prefix}skew-monitor`, topic)).values()].reduce(
        (a, b) => a + (b > 0n ? b : 0n),
        0n,
      );

    await send(0, 100);
    await eventually(async () => ((await compared()) === 100 ? true : undefined), 30_000, 100);
    await eventually(async () => ((await committed()) === 100n ? true : undefined), 30_000, 100);

    // Redis crashes; predictions keep coming.
    redis.child.kill('SIGKILL');
    await redis.exit;
    await send(100, 100);
    await eventually(async () => (runner.ready() ? undefined : true), 15_000, 50);
    await new Promise((r) => setTimeout(r, 3_000));
    expect(await committed()).toBe(100n); // nothing committed while the store cannot be read
    expect(await compared()).toBe(100); // nothing counted either
    const failed = await runner.context.registry.getSingleMetricAsString('driftline_records_failed_total');
    expect(failed).toMatch(/driftline_records_failed_total\{[^}]*\} [1-9]/);

    redis = startRedis(port, dir);
    await eventually(async () => ((await committed()) === 200n ? true : undefined), 40_000, 100);
    expect(await compared()).toBe(200);
    const [row] = await ch.select<{ mismatched: number; newer: number }>(
      `SELECT sum(mismatched) AS mismatched, sum(newer_row) AS newer FROM ${ch.table('skew_windows')} FINAL`,
    );
    expect({ mismatched: Number(row!.mismatched), newer: Number(row!.newer) }).toEqual({ mismatched: 0, newer: 0 });
    await eventually(async () => (runner.ready() ? true : undefined), 10_000, 50);
  });
});
