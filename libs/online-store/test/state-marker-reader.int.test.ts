import { rmSync } from 'node:fs';
import { createMetricsRegistry } from '@driftline/observability';
import { eventually } from '@driftline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisClient, waitReady, watchFeaturesStateMarker } from '../src/redis/index.js';
import { privateRedis, recordingLogger } from './support.js';

describe('a reader watching the materializer state marker (private redis-server, found by a review)', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  /** A redis-server of its own and a client of `use` created now (not waited for). */
  async function privateClient(use: 'tooling' | 'online-read') {
    const s = await privateRedis(['--save', '', '--appendonly', 'no']);
    cleanup.push(() => {
      s.process.kill('SIGKILL');
      rmSync(s.dir, { recursive: true, force: true });
    });
    const redis = createRedisClient({ url: s.url, tls: false }, use);
    redis.on('error', () => {});
    cleanup.push(() => redis.disconnect());
    return redis;
  }

  it('gauge 0 with the marker; after FLUSHDB 1 within the check period, one warning; back to 0 when rewritten', async () => {
    // Its own server: FLUSHDB on the shared one would wipe every other test's keys.
    const redis = await privateClient('tooling');
    await waitReady(redis, 10_000);
    const marker = 'dl:state-marker:features';
    await redis.set(marker, '2026-01-01T00:00:00.000Z');

    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const warnings: Array<{ obj: object; msg?: string }> = [];
    const intervalMs = 200;
    const reader = watchFeaturesStateMarker(
      redis,
      {
        keyPrefix: 'dl',
        reader: 'test',
        consequence: 'reads answer not found',
        logger: recordingLogger('warn', warnings),
        registry,
      },
      intervalMs,
    );
    cleanup.push(() => reader.stop());
    const missing = async () =>
      (await registry.getSingleMetric('driftline_online_store_state_missing')?.get())?.values.find(
        (v) => v.labels.store === 'features',
      )?.value;

    expect(await eventually(async () => (await missing()) === 0 || undefined, 5_000)).toBe(true);
    expect(warnings).toEqual([]);

    // Redis restarted empty (or flushed): the reader tells within one check period.
    await redis.flushdb();
    const flushedAt = Date.now();
    await eventually(async () => (await missing()) === 1 || undefined, 10_000);
    expect(Date.now() - flushedAt).toBeLessThan(5_000); // a few check periods on a loaded machine, not never
    // Several checks later: still one warning, naming the marker and the likely causes.
    await new Promise((r) => setTimeout(r, intervalMs * 4));
    expect(warnings).toHaveLength(1);
    expect(warnings[0]?.obj).toMatchObject({ store: 'features', marker });
    expect(warnings[0]?.msg).toMatch(
      /^the features state marker is missing in Redis: reads answer not found\. .*DRIFTLINE_FEATURE_KEY_PREFIX/,
    );
    // The reader never writes the marker itself: that is the materializer's decision.
    expect(await redis.exists(marker)).toBe(0);

    // The materializer writes it again: gauge 0.
    await redis.set(marker, '2026-01-01T00:10:00.000Z');
    await eventually(async () => (await missing()) === 0 || undefined, 5_000);
    // Rewritten between two checks (a loss the reader did not see missing): one more warning.
    await redis.set(marker, '2026-01-01T00:20:00.000Z');
    await eventually(async () => (warnings.length === 2 ? true : undefined), 5_000);
    expect(warnings[1]?.msg).toMatch(/written again since the last check: Redis lost the features state/);
    expect(await missing()).toBe(0);
  });

  it('checks as soon as a fresh client is ready, not at the second check 10 s later (found by a review)', async () => {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    // A client created just now, still connecting, as the services hand it over. Before, the first
    // GET failed at once ("Stream isn't writeable": no offline queue) and the gauge was absent
    // until the next check.
    const redis = await privateClient('online-read');
    const startedAt = Date.now();
    const reader = watchFeaturesStateMarker(
      redis,
      {
        keyPrefix: 'dl',
        reader: 'test',
        consequence: 'reads answer not found',
        logger: recordingLogger('warn', []),
        registry,
      },
      60_000,
    );
    cleanup.push(() => reader.stop());
    const missing = async () =>
      (await registry.getSingleMetric('driftline_online_store_state_missing')?.get())?.values[0]?.value;
    await eventually(async () => ((await missing()) === 1 ? true : undefined), 5_000, 20);
    expect(Date.now() - startedAt).toBeLessThan(10_000); // the first check, not the next (60 s); slack for a loaded run
  });

  it('a reader that does not read the store reports nothing; once it reads, the missing marker (found by a review)', async () => {
    const redis = await privateClient('tooling');
    await waitReady(redis, 10_000);
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const warnings: Array<{ obj: object; msg?: string }> = [];
    let reads = 0;
    const reader = watchFeaturesStateMarker(
      redis,
      {
        keyPrefix: 'dl',
        reader: 'test',
        consequence: 'reads answer not found',
        logger: recordingLogger('warn', warnings),
        registry,
        storeReads: () => reads,
      },
      100,
    );
    cleanup.push(() => reader.stop());
    const missing = async () =>
      (await registry.getSingleMetric('driftline_online_store_state_missing')?.get())?.values[0]?.value;
    // No marker, no reads (a model server whose requests carry every feature): 0, no warning.
    await new Promise((r) => setTimeout(r, 600));
    expect(await missing()).toBe(0);
    expect(warnings).toEqual([]);
    reads++;
    await eventually(async () => ((await missing()) === 1 ? true : undefined), 5_000, 20);
    expect(warnings).toHaveLength(1);
  });

  it('readers of one process keep a series each: an idle reader does not hide a missing marker (found by a review)', async () => {
    // `driftline run all`: the services share one registry. Before, an idle model server's 0 and the
    // feature-api's 1 took turns in one series, and the alert's 5 minutes never held.
    const redis = await privateClient('tooling');
    await waitReady(redis, 10_000);
    const registry = createMetricsRegistry({ service: 'all', defaultMetrics: false });
    const common = {
      keyPrefix: 'dl',
      consequence: 'reads answer not found',
      logger: recordingLogger('warn', []),
      registry,
    };
    const idle = watchFeaturesStateMarker(redis, { ...common, reader: 'model-server', storeReads: () => 0 }, 50);
    const reading = watchFeaturesStateMarker(redis, { ...common, reader: 'feature-api' }, 50);
    cleanup.push(() => idle.stop());
    cleanup.push(() => reading.stop());
    const series = async () =>
      Object.fromEntries(
        ((await registry.getSingleMetric('driftline_online_store_state_missing')?.get())?.values ?? []).map((v) => [
          String(v.labels.reader),
          v.value,
        ]),
      );
    await eventually(async () => ((await series())['feature-api'] === 1 ? true : undefined), 5_000, 20);
    // Many checks of both later, the reading reader's series still says missing.
    for (let i = 0; i < 10; i++) {
      await new Promise((r) => setTimeout(r, 30));
      expect(await series()).toEqual({ 'model-server': 0, 'feature-api': 1 });
    }
  });
});
