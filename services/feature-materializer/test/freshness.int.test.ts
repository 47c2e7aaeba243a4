import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Logger, silentLogger } from '@driftline/core';
import { parseFeatureViewsText } from '@driftline/features';
import { createRedisOnlineStore } from '@driftline/online-store/redis';
import { createDriftlineProducer } from '@driftline/sdk';
import { type Runner, startRunner } from '@driftline/service';
import { eventually, freePort, uniqueName } from '@driftline/test-support';
import { createClickHouse } from '@driftline/warehouse';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { featureMaterializer } from '../src/index.js';

const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'freshness-'));

interface Row {
  feature: string;
  scope: string;
  ws: number;
  observed: number;
  bound: number;
  passed: number;
  events: number;
}

describe('feature view freshness from the feature-materializer (real Kafka, registry, Redis, embedded ClickHouse)', () => {
  const cleanup: Array<() => Promise<void>> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn().catch(() => {});
  });

  /** The materializer on views `viewsText` (1 s freshness windows), and an SDK on its topics. */
  async function start(viewsText: string, env: Record<string, string>, logger: Logger = silentLogger) {
    const viewsPath = join(dir, `${uniqueName('views')}.yaml`);
    writeFileSync(viewsPath, viewsText);
    const prefix = `${uniqueName('fresh')}.`;
    const runner: Runner = await startRunner({
      services: [featureMaterializer] as never,
      logger,
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_SCHEMA_REGISTRY_URL: stack.schemaRegistryUrl,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_TOPIC_PARTITIONS: '1',
        DRIFTLINE_FEATURE_VIEWS: viewsPath,
        DRIFTLINE_REDIS_URL: stack.redisUrl,
        DRIFTLINE_MATERIALIZER_GROUP: uniqueName('materializer'),
        DRIFTLINE_FRESHNESS_WINDOW: '1s',
        ...env,
      },
    });
    cleanup.push(() => runner.stop());
    const sdk = await createDriftlineProducer({
      kafka: { brokers: stack.kafkaBrokers, clientId: 'test-sdk', ssl: false },
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      lingerMs: 2,
    });
    cleanup.push(() => sdk.close());
    return { runner, sdk, prefix };
  }

  it('writes the lag of the newest event per view and partition, and fails it once the view goes silent', async () => {
    const database = uniqueName('fresh').replace('-', '_');
    const { sdk, prefix } = await start(
      `views:
  - name: profile
    entity: user_id
    freshness: { max_lag: 3s }
    features: { age: double }
  - name: other
    entity: user_id
    features: { score: double }
`,
      {
        DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('fk'),
        DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'ch'),
        DRIFTLINE_CLICKHOUSE_DATABASE: database,
      },
    );
    const newest = Date.now() - 200;
    await sdk.publishFeatures([
      { view: 'profile', entity_id: 'a', event_time: newest - 1_000, features: { age: 30 } },
      { view: 'profile', entity_id: 'b', event_time: newest, features: { age: 40 } },
      { view: 'other', entity_id: 'a', event_time: newest, features: { score: 1 } },
    ]);

    // The runner opened the same embedded engine in this process: read through it.
    const ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'ch'), database });
    cleanup.push(() => ch.close());
    const read = async () =>
      (
        await ch.select<Row>(
          `SELECT feature, scope, toUnixTimestamp64Milli(window_start) AS ws, observed, bound, passed, events
           FROM ${ch.table('data_quality_windows')} FINAL WHERE expectation = 'freshness' ORDER BY ws`,
        )
      ).map((r) => ({ ...r, ws: Number(r.ws), observed: Number(r.observed), events: Number(r.events) }));
    const fresh = await eventually(async () => {
      const rows = await read();
      return rows.some((r) => r.events === 2) ? rows : undefined;
    }, 30_000);
    const first = fresh.find((r) => r.events === 2)!;
    expect(first).toMatchObject({ feature: 'profile', scope: `${prefix}features.v1/0`, bound: 3_000, passed: 1 });
    // Lag = window end − newest event time, with the window end at a whole second.
    expect(first.observed).toBe(first.ws + 1_000 - newest);
    expect(new Set(fresh.map((r) => r.feature))).toEqual(new Set(['profile'])); // `other` declares no freshness

    // Nothing more is published: the lag grows past the bound, event counts drop to 0.
    const stale = await eventually(async () => {
      const rows = await read();
      return rows.find((r) => r.passed === 0);
    }, 30_000);
    expect(stale.observed).toBeGreaterThan(3_000);
    expect(stale.events).toBe(0);
  });

  it('materializes features while ClickHouse is unreachable at start-up; one warning names it', async () => {
    const viewsText = `views:
  - name: profile
    entity: user_id
    freshness: { max_lag: 3s }
    features: { age: double }
`;
    const keyPrefix = uniqueName('fk');
    const warnings: string[] = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (_obj, msg) => void warnings.push(msg ?? ''),
      child: () => logger,
    };
    // Nothing listens on this port: the connection is refused, as during an outage.
    const { runner, sdk } = await start(
      viewsText,
      {
        DRIFTLINE_FEATURE_KEY_PREFIX: keyPrefix,
        DRIFTLINE_CLICKHOUSE_URL: `http://127.0.0.1:${await freePort()}`,
        DRIFTLINE_CLICKHOUSE_TIMEOUT: '1s',
      },
      logger,
    );
    expect(warnings).toContain('ClickHouse unavailable at start-up: materializing goes on, freshness rows wait for it');
    await sdk.publishFeatures([
      { view: 'profile', entity_id: 'a', event_time: Date.now() - 100, features: { age: 41 } },
    ]);
    const probe = createRedisOnlineStore({ url: stack.redisUrl, tls: false }, { use: 'online-read', keyPrefix });
    cleanup.push(() => probe.close());
    const row = await eventually(async () => probe.read(parseFeatureViewsText(viewsText).get('profile')!, 'a'), 30_000);
    expect(row?.features).toEqual({ age: 41 });
    await eventually(async () => (runner.ready() ? true : undefined), 10_000);
    // The freshness rows are what waits: each window tries ClickHouse again and says so.
    await eventually(async () =>
      warnings.includes('freshness rows not written; next window measures again') ? true : undefined,
    );
  });
});
