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
import { describe, expect, inject, it, type TestContext } from 'vitest';
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

/** `fn` run when the test of `ctx` ends, the last registered first; a failure of it ignored. */
function atEnd(ctx: TestContext, fn: () => Promise<void>): void {
  ctx.onTestFinished(() => fn().catch(() => {}));
}

// Concurrent: every test has its own topics, group, feature key prefix and ClickHouse database (the
// embedded engine is the process's one), and stops what it started when it ends; most of their time
// is waiting for windows, group joins and rebalances.
describe.concurrent('feature view freshness from the feature-materializer (real Kafka, registry, Redis, embedded ClickHouse)', () => {
  /** The materializer on views `viewsText` (1 s freshness windows), and an SDK on its topics. */
  async function start(
    ctx: TestContext,
    viewsText: string,
    env: Record<string, string>,
    logger: Logger = silentLogger,
  ) {
    const viewsPath = join(dir, `${uniqueName('views')}.yaml`);
    writeFileSync(viewsPath, viewsText);
    const prefix = `${uniqueName('fresh')}.`;
    const runnerEnv = {
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
    };
    const runner = await startMaterializer(ctx, runnerEnv, logger);
    const sdk = await createDriftlineProducer({
      kafka: { brokers: stack.kafkaBrokers, clientId: 'test-sdk', ssl: false },
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      lingerMs: 2,
    });
    atEnd(ctx, () => sdk.close());
    return { runner, sdk, prefix, env: runnerEnv };
  }

  /** One more materializer (another instance, or a restart) on `env`, stopped after the test. */
  async function startMaterializer(
    ctx: TestContext,
    env: Record<string, string>,
    logger: Logger = silentLogger,
  ): Promise<Runner> {
    const runner = await startRunner({ services: [featureMaterializer] as never, logger, env });
    atEnd(ctx, () => runner.stop());
    return runner;
  }

  /** The runner's `driftline_feature_view_lag_seconds` of `view`, undefined without a series. */
  async function lagGauge(runner: Runner, view: string): Promise<number | undefined> {
    const text = await (await fetch(`http://127.0.0.1:${runner.httpPort}/metrics`)).text();
    const line = text.split('\n').find((l) => l.startsWith(`driftline_feature_view_lag_seconds{view="${view}"`));
    return line === undefined ? undefined : Number(line.split(' ').pop());
  }

  const PROFILE_VIEWS = `views:
  - name: profile
    entity: user_id
    freshness: { max_lag: 3s }
    features: { age: double }
`;

  it('writes the lag of the newest event per view and partition, and fails it once the view goes silent', async (ctx) => {
    const database = uniqueName('fresh').replace('-', '_');
    const { runner, sdk, prefix } = await start(
      ctx,
      `views:
  - name: profile
    entity: user_id
    freshness: { max_lag: 8s }
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
    // The start returns once the group is joined: the events are newer than the assignment, so
    // the lag is exact (an event older than it counts from the assignment). No event, no series.
    await eventually(async () => (runner.ready() ? true : undefined), 30_000);
    expect(await lagGauge(runner, 'profile')).toBeUndefined();
    const newest = Date.now();
    await sdk.publishFeatures([
      { view: 'profile', entity_id: 'a', event_time: newest - 1_000, features: { age: 30 } },
      { view: 'profile', entity_id: 'b', event_time: newest, features: { age: 40 } },
      { view: 'other', entity_id: 'a', event_time: newest, features: { score: 1 } },
    ]);

    // The runner opened the same embedded engine in this process: read through it.
    const ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'ch'), database });
    atEnd(ctx, () => ch.close());
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
    expect(first).toMatchObject({ feature: 'profile', scope: `${prefix}features.v1/0`, bound: 8_000, passed: 1 });
    // Lag = window end − newest event time, with the window end at a whole second.
    expect(first.observed).toBe(first.ws + 1_000 - newest);
    expect(new Set(fresh.map((r) => r.feature))).toEqual(new Set(['profile'])); // `other` declares no freshness

    // Nothing more is published: the lag grows past the bound, event counts drop to 0. (The bound is
    // 8 s: at 3 s a fresh clone at load 17 processed the events later than that, the first row failed.)
    const stale = await eventually(async () => {
      const rows = await read();
      return rows.find((r) => r.passed === 0);
    }, 30_000);
    expect(stale.observed).toBeGreaterThan(8_000);
    expect(stale.events).toBe(0);
  });

  /** Samples `probe` every 250 ms for `ms`: the values seen (undefined: no series). */
  async function sample<T>(ms: number, probe: () => Promise<T>): Promise<T[]> {
    const seen: T[] = [];
    for (const until = Date.now() + ms; Date.now() < until; ) {
      seen.push(await probe());
      await new Promise((r) => setTimeout(r, 250));
    }
    return seen;
  }

  const TWO_VIEWS = `views:
  - name: profile
    entity: user_id
    freshness: { max_lag: 3s }
    features: { age: double }
  - name: busy
    entity: user_id
    freshness: { max_lag: 3s }
    features: { n: double }
`;

  it('after a restart, a view not seen since has no row and no gauge series: absence is what to alert on (found by a review)', async (ctx) => {
    // Reporting every view on every assigned partition from the assignment was wrong: views share a
    // topic and need not reach every partition, so a healthy view failed max_lag for ever there.
    // What it made visible (a view whose producer died before the restart) is now an absent series.
    const database = uniqueName('fresh').replace('-', '_');
    const { runner, sdk, env } = await start(ctx, TWO_VIEWS, {
      DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('fk'),
      DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'ch'),
      DRIFTLINE_CLICKHOUSE_DATABASE: database,
    });
    await sdk.publishFeatures([
      { view: 'profile', entity_id: 'a', event_time: Date.now(), features: { age: 30 } },
      { view: 'busy', entity_id: 'a', event_time: Date.now(), features: { n: 1 } },
    ]);
    await eventually(async () => ((await lagGauge(runner, 'profile')) === undefined ? undefined : true), 30_000);
    await runner.stop();
    // The same group; from now on only `busy` is published: the new instance sees no `profile` event.
    const restarted = await startMaterializer(ctx, env);
    const startedAt = Date.now();
    const publishing = setInterval(() => {
      void sdk.publishFeatures([{ view: 'busy', entity_id: 'a', event_time: Date.now(), features: { n: 1 } }]);
    }, 300);
    atEnd(ctx, async () => clearInterval(publishing));
    await eventually(async () => ((await lagGauge(restarted, 'busy')) === undefined ? undefined : true), 30_000);
    // Past max_lag and a few windows: `busy` is reported healthy, `profile` not at all.
    const seen = await sample(5_000, async () => [
      await lagGauge(restarted, 'busy'),
      await lagGauge(restarted, 'profile'),
    ]);
    clearInterval(publishing);
    expect(seen.every(([busy]) => busy !== undefined && busy <= 3)).toBe(true);
    expect(seen.map(([, profile]) => profile).filter((v) => v !== undefined)).toEqual([]);
    const ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'ch'), database });
    atEnd(ctx, () => ch.close());
    const rows = await ch.select<{ feature: string; passed: number }>(
      `SELECT feature, passed FROM ${ch.table('data_quality_windows')} FINAL
       WHERE expectation = 'freshness' AND window_start >= fromUnixTimestamp64Milli({t:Int64})`,
      { t: startedAt },
    );
    expect(rows.length).toBeGreaterThan(0);
    expect(new Set(rows.map((r) => r.feature))).toEqual(new Set(['busy']));
  });

  it("after a rebalance, the old owner's gauge series is removed, not frozen; the partition assigned back, still silent, fails from that assignment (found by a review)", async (ctx) => {
    // kafkajs' round robin gives the only partition to the member whose id sorts first: `aa-…` joining later.
    const {
      runner: a,
      sdk,
      env,
    } = await start(ctx, PROFILE_VIEWS, {
      DRIFTLINE_FEATURE_KEY_PREFIX: uniqueName('fk'),
      DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'ch'),
      DRIFTLINE_CLICKHOUSE_DATABASE: uniqueName('fresh').replace('-', '_'),
      DRIFTLINE_KAFKA_CLIENT_ID: 'zz-first',
    });
    const eventTime = Date.now();
    await sdk.publishFeatures([{ view: 'profile', entity_id: 'a', event_time: eventTime, features: { age: 30 } }]);
    await eventually(async () => ((await lagGauge(a, 'profile')) === undefined ? undefined : true), 30_000);
    const b = await startMaterializer(ctx, { ...env, DRIFTLINE_KAFKA_CLIENT_ID: 'aa-second' });
    // Before: A kept its last value (under the bound) for good. B never sees an event: no series.
    await eventually(async () => ((await lagGauge(a, 'profile')) === undefined ? true : undefined), 30_000);
    const onB = await sample(2_500, () => lagGauge(b, 'profile'));
    expect(onB.filter((v) => v !== undefined)).toEqual([]);
    // B leaves: the partition, which carried the view on A, comes back to A and is still silent.
    const backAt = Date.now();
    await b.stop();
    const lag = await eventually(async () => {
      const seconds = await lagGauge(a, 'profile');
      return seconds !== undefined && seconds > 3 ? seconds : undefined;
    }, 30_000);
    // Counted from the new assignment: a lower bound of the true lag (since the event).
    expect(lag).toBeLessThan((Date.now() - eventTime) / 1000);
    expect(lag).toBeLessThanOrEqual((Date.now() - backAt) / 1000 + 1);
  });

  it('materializes features while ClickHouse is unreachable at start-up; one warning names it', async (ctx) => {
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
      ctx,
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
    atEnd(ctx, () => probe.close());
    const row = await eventually(async () => probe.read(parseFeatureViewsText(viewsText).get('profile')!, 'a'), 30_000);
    expect(row?.features).toEqual({ age: 41 });
    await eventually(async () => (runner.ready() ? true : undefined), 10_000);
    // The freshness rows are what waits: each window tries ClickHouse again and says so.
    await eventually(async () =>
      warnings.includes('freshness rows not written; next window measures again') ? true : undefined,
    );
  });
});
