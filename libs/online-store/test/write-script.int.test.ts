import { type EntityWrite, parseFeatureViews, planWrites, validateFeatureEvent } from '@driftline/features';
import type { FeatureEvent } from '@driftline/schemas';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisOnlineStore, type RedisClient, waitReady } from '../src/redis/index.js';
import { contractViews } from './contract.js';
import { privateRedisWithTooling } from './support.js';

// The store frames the write script's calls itself (not through ioredis' defineCommand): EVAL on
// a connection's first call, EVALSHA after, EVAL again after the script cache was emptied. On a
// private redis-server: SCRIPT FLUSH would empty the shared stack's cache under every other test.
describe('the write script on the wire', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function setup(keyPrefix = 'ws') {
    const { server, tooling } = await privateRedisWithTooling(['--save', ''], cleanup);
    const store = createRedisOnlineStore(
      { url: server.url, tls: false },
      { use: 'online-write', keyPrefix, entitiesPerCall: 2 },
    );
    cleanup.push(() => store.close());
    await waitReady(store.client, 10_000);
    return { tooling, store };
  }

  /** Calls of EVAL and EVALSHA the server ran. */
  async function calls(tooling: RedisClient): Promise<{ eval: number; evalsha: number }> {
    const stats = await tooling.info('commandstats');
    const count = (name: string) => Number(new RegExp(`cmdstat_${name}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    return { eval: count('eval'), evalsha: count('evalsha') };
  }

  const spend = contractViews.get('spend')!;
  const profile = contractViews.get('profile')!;
  const validated = (view: string, entity: string, id: string, t: number, features: FeatureEvent['features']) =>
    validateFeatureEvent(contractViews, { event_id: id, view, entity_id: entity, event_time: t, features });

  it('sends the script once per connection, its SHA after, and the script again after a SCRIPT FLUSH', async () => {
    const { tooling, store } = await setup();
    const t = Date.now() - 60_000;
    // Five entities in calls of two: three calls in one pipeline, the first an EVAL.
    const batch = (at: number) =>
      planWrites(Array.from({ length: 5 }, (_, i) => validated('profile', `u${i}`, `e${at}-${i}`, at, { age: i })));
    await store.write(batch(t));
    expect(await calls(tooling)).toEqual({ eval: 1, evalsha: 2 });
    await store.write(batch(t + 1));
    expect(await calls(tooling)).toEqual({ eval: 1, evalsha: 5 });

    await tooling.script('FLUSH');
    const stats = await store.write(batch(t + 2));
    expect(stats.rowsApplied).toBe(5);
    // Every EVALSHA of the pipeline met NOSCRIPT and was sent again, the first one as an EVAL.
    const after = await calls(tooling);
    expect(after.eval).toBe(2);
    expect((await store.read(profile, 'u4'))?.eventTime).toBe(t + 2);
    await store.write(batch(t + 3));
    expect((await calls(tooling)).eval).toBe(2);
    expect((await store.read(profile, 'u4'))?.eventTime).toBe(t + 3);
  });

  it('frames multi-byte event ids, entities, string values and key prefixes by their UTF-8 bytes, windows included', async () => {
    // The service's prefix is ASCII (DRIFTLINE_FEATURE_KEY_PREFIX is checked); the store's is not.
    const { store } = await setup('wsü');
    const t = Date.now() - 60_000;
    const country = '日本 😀 é "q" \\ \u0001';
    await store.write(
      planWrites([
        validated('profile', 'ü 😀', 'ïd-😀', t, { age: 1.5, country, premium: true }),
        validated('spend', 'ü 😀', 'ïd-1', t, { amount: 2, fee: 0.5 }),
        validated('spend', 'ü 😀', 'ïd-2 日本', t + 1, { amount: 3, fee: 0.25 }),
        validated('spend', 'ü 😀', 'ïd-3 😀', t + 2, { amount: 5 }),
      ]),
    );
    expect(await store.read(profile, 'ü 😀')).toEqual({
      eventTime: t,
      eventId: 'ïd-😀',
      features: { age: 1.5, country, premium: true, score: null },
    });
    const row = await store.read(spend, 'ü 😀');
    expect(row?.eventId).toBe('ïd-3 😀');
    expect(row?.features).toMatchObject({ amount: 5, fee: null, amount_count_10m: 3, amount_sum_10m: 10 });
  });

  it('counts every length from the bytes: a value framed short would run the rest as another command (found by a review)', async () => {
    const { tooling, store } = await setup();
    // A double slot holding non-ASCII text (a broken contract: validateFeatureEvent never makes one)
    // whose tail is a whole command: counted by UTF-16 length, Redis ran the SET.
    const views = parseFeatureViews({ views: [{ name: 'p', entity: 'u', features: { note: 'string', x: 'double' } }] });
    const view = views.get('p')!;
    const command = '*3\r\n$3\r\nSET\r\n$6\r\ncanary\r\n$5\r\npwned';
    const value = `${'é'.repeat(command.length + 2)}--${command}`;
    const winner = { view, entity: 'a', eventTime: Date.now() - 1000, eventId: 'e1', values: ['n', value] };
    await store.write([{ view, entity: 'a', winner, windowEvents: [] } as unknown as EntityWrite]);
    expect(await tooling.get('canary')).toBeNull();

    // Long values: bulk heads past the cached ones (4,096 bytes and more), 4-byte characters.
    const long = 'x'.repeat(5_000);
    const emoji = '😀'.repeat(32_768);
    const t = Date.now() - 60_000;
    await store.write(
      planWrites([
        validated('profile', 'long', 'l1', t, { age: 1, country: long }),
        validated('profile', 'emoji', 'm1', t, { age: 2, country: emoji }),
      ]),
    );
    expect((await store.read(profile, 'long'))?.features.country).toBe(long);
    expect((await store.read(profile, 'emoji'))?.features.country).toBe(emoji);
  });

  it('a view defined again under the same name is framed by its own plan, not the old one (found by a review)', async () => {
    const { tooling, store } = await setup();
    const before = parseFeatureViews({ views: [{ name: 'p', entity: 'u', features: { x: 'double' } }] });
    const after = parseFeatureViews({ views: [{ name: 'p', entity: 'u', features: { x: 'string' } }] });
    const t = Date.now() - 60_000;
    const event = (views: typeof before, id: string, at: number, x: number | string) =>
      validateFeatureEvent(views, { event_id: id, view: 'p', entity_id: 'a', event_time: at, features: { x } });
    await store.write(planWrites([event(before, 'e1', t, 1.5)]));
    const command = '*3\r\n$3\r\nSET\r\n$6\r\ncanary\r\n$5\r\npwned';
    const text = `${'é'.repeat(command.length + 2)}--${command}`;
    await store.write(planWrites([event(after, 'e2', t + 1, text)]));
    expect(await tooling.get('canary')).toBeNull();
    expect((await store.read(after.get('p')!, 'a'))?.features.x).toBe(text);
  });
});
