import { rmSync } from 'node:fs';
import { createMetricsRegistry } from '@driftline/observability';
import { eventually } from '@driftline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisClient, type RedisClient, waitReady, watchStateMarker } from '../src/redis/index.js';
import { privateRedis, recordingLogger } from './support.js';

describe('state marker: Redis losing a service state is reported (real redis-server)', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function server(port?: number) {
    const s = await privateRedis(['--save', '', '--appendonly', 'no'], port);
    cleanup.push(() => {
      s.process.kill('SIGKILL');
      rmSync(s.dir, { recursive: true, force: true });
    });
    return s;
  }

  async function client(url: string): Promise<RedisClient> {
    const redis = createRedisClient({ url, tls: false }, 'tooling');
    redis.on('error', () => {}); // refused while the server (re)starts
    cleanup.push(() => redis.disconnect());
    await waitReady(redis, 10_000);
    return redis;
  }

  function watch(redis: RedisClient, state: { consumed: boolean; held: boolean }, intervalMs = 100) {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const errors: Array<{ obj: object; msg?: string }> = [];
    const started = watchStateMarker(
      redis,
      {
        key: 'svc:state-marker',
        store: 'join',
        consumedBefore: async () => state.consumed,
        stateExists: async () => state.held,
        recovery: 'replay it',
        logger: recordingLogger('error', errors),
        registry,
      },
      intervalMs,
    ).then((w) => {
      cleanup.push(() => w.stop());
      return w;
    });
    const lost = async () =>
      (await registry.getSingleMetric('driftline_redis_state_lost_total')?.get())?.values[0]?.value ?? 0;
    return { started, errors, lost };
  }

  it('a first start writes the marker; a restart keeps it; a loss at start-up is reported once', async () => {
    const s = await server();
    const redis = await client(s.url);
    const first = watch(redis, { consumed: false, held: false });
    expect((await first.started).atStart).toBe('fresh');
    expect(await redis.exists('svc:state-marker')).toBe(1);
    const again = watch(redis, { consumed: true, held: true });
    expect((await again.started).atStart).toBe('kept');
    // The state and its marker gone while the service was down, its group having committed offsets.
    await redis.flushall();
    const after = watch(redis, { consumed: true, held: false });
    expect((await after.started).atStart).toBe('lost');
    expect(await after.lost()).toBe(1);
    expect(after.errors[0]?.msg).toMatch(
      /^Redis lost the join state \(its marker key was missing at start-up.*: replay it$/,
    );
  });

  it('state written by a version without markers is adopted, not reported', async () => {
    const s = await server();
    const redis = await client(s.url);
    const w = watch(redis, { consumed: true, held: true });
    expect((await w.started).atStart).toBe('adopted');
    expect(await w.lost()).toBe(0);
  });

  it('an empty restart of Redis while running is reported once, by one of two instances', async () => {
    const s = await server();
    const redis = await client(s.url);
    const a = watch(redis, { consumed: false, held: false });
    const b = watch(await client(s.url), { consumed: false, held: false });
    await a.started;
    await b.started;
    await redis.set('svc:some-state', 'x');
    // Killed and started again on the same port without persistence: everything is gone.
    s.process.kill('SIGKILL');
    await new Promise((resolve) => s.process.once('exit', resolve));
    await server(s.port);
    await eventually(async () => ((await a.lost()) + (await b.lost()) >= 1 ? true : undefined), 15_000, 100);
    await new Promise((resolve) => setTimeout(resolve, 500)); // both instances checked again meanwhile
    expect((await a.lost()) + (await b.lost())).toBe(1);
    expect([...a.errors, ...b.errors].map((l) => l.msg)).toEqual([
      'Redis lost the join state (its marker key was missing while running): replay it',
    ]);
    expect(await redis.exists('svc:state-marker')).toBe(1);
  });

  it('a start-up check that fails writes nothing: the next attempt still reports the loss (found by a review)', async () => {
    const s = await server();
    const redis = await client(s.url);
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const errors: Array<{ obj: object; msg?: string }> = [];
    const options = {
      key: 'svc:state-marker',
      store: 'join',
      stateExists: async () => false,
      recovery: 'replay it',
      logger: recordingLogger('error', errors),
      registry,
    };
    // Redis came back empty, Kafka is not there yet: the look-up of the group's offsets fails.
    await expect(
      watchStateMarker(redis, {
        ...options,
        consumedBefore: async () => {
          throw new Error('kafka: connection refused');
        },
      }),
    ).rejects.toThrow(/connection refused/);
    expect(await redis.exists('svc:state-marker')).toBe(0);
    const retry = await watchStateMarker(redis, { ...options, consumedBefore: async () => true });
    cleanup.push(() => retry.stop());
    expect(retry.atStart).toBe('lost');
  });

  it('an instance that checks before each batch reports a loss before writing: one starting later finds the marker', async () => {
    const s = await server();
    const redis = await client(s.url);
    const a = watch(redis, { consumed: false, held: false }, 60_000);
    const running = await a.started;
    await redis.flushall(); // the state and the marker gone while A runs
    await running.check(); // A's next batch, before it writes
    await redis.set('svc:some-state', 'written after the loss');
    const b = watch(redis, { consumed: true, held: true });
    expect((await b.started).atStart).toBe('kept');
    expect((await a.lost()) + (await b.lost())).toBe(1);
  });
});
