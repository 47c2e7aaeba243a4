import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { afterEach, describe, expect, it } from 'vitest';
import { type FeatureRow, ROW_EVENT_ID, ROW_TIME, rowKey, v1RowKey } from '../src/index.js';
import { createRedisOnlineStore, waitReady } from '../src/redis/index.js';
import { privateRedisWithTooling } from './support.js';

// A batch read was one MGET per view whatever the rows weigh: 1,000 rows of 8 × 64 KiB strings
// made one 512 MB reply, past the 2 s read timeout on every retry, each attempt keeping Redis from
// every other client for ~1 s, and the skew monitor's partition never moved again (a review).
// `readBytesPerCall` (the skew monitor's) reads such rows in commands of a bounded reply.
describe('batch reads of large rows with readBytesPerCall', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('reads 200 rows of 512 KB in replies of at most about 1 MiB', async () => {
    const { server, tooling } = await privateRedisWithTooling(['--save', '', '--appendonly', 'no'], cleanup);
    const features = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`s${i}`, 'string']));
    const views = parseFeatureViewsText(
      `views:\n  - name: v\n    entity: user_id\n    features: ${JSON.stringify(features)}\n`,
    );
    const view = views.get('v')!;
    const keyPrefix = 'big';
    const writer = createRedisOnlineStore({ url: server.url, tls: false }, { use: 'online-write', keyPrefix });
    cleanup.push(() => writer.close());
    await waitReady(writer.client, 10_000);
    const big = 'a'.repeat(65_534); // with its name's 2 characters: the most a string may hold
    const t = Date.now() - 1_000;
    await writer.write(
      planWrites([
        validateFeatureEvent(views, {
          event_id: 'e0',
          view: 'v',
          entity_id: 'u0',
          event_time: t,
          features: Object.fromEntries(Object.keys(features).map((f) => [f, `${f}${big}`])),
        }),
      ]),
    );
    const n = 200;
    for (let u = 1; u < n; u++) await tooling.copy(`${keyPrefix}:v2:{v:u0}`, `${keyPrefix}:v2:{v:u${u}}`);
    // Another type at a row key: its STRLEN fails (WRONGTYPE), and MGET answers it absent as before.
    await tooling.hset(`${keyPrefix}:v2:{v:damaged}`, 'x', '1');

    const reader = createRedisOnlineStore(
      { url: server.url, tls: false, readTimeoutMs: 500 },
      {
        use: 'online-read',
        keyPrefix,
        readV1: false,
        readBytesPerCall: 1 << 20,
      },
    );
    cleanup.push(() => reader.close());
    await waitReady(reader.client, 10_000);

    const entities = Array.from({ length: n }, (_, u) => `u${u}`);
    const rows = await reader.readBatch([
      { view, entities: [...entities, 'absent', 'damaged', 'u7'], features: ['s0'] },
      { view, entities: ['u3', 'absent'], features: ['s1'] },
    ]);

    expect(rows[0]).toHaveLength(n + 3);
    for (let u = 0; u < n; u++) expect(rows[0]![u]?.features).toEqual({ s0: `s0${big}` });
    expect(rows[0]!.slice(n)).toEqual([undefined, undefined, { ...rows[0]![7] }]);
    expect(rows[1]).toEqual([{ ...rows[0]![3], features: { s1: `s1${big}` } }, undefined]);
    // The largest reply Redis built for a client lately (its output buffer): 100 MB in one MGET before.
    const peak = async () => Number(/client_recent_max_output_buffer:(\d+)/.exec(await tooling.info('clients'))?.[1]);
    expect(await peak()).toBeGreaterThan(500_000);
    expect(await peak()).toBeLessThan(2 << 20);

    // By default too (1 MiB), for more rows than one script call sizes (a pipeline of STRLEN then).
    const plain = createRedisOnlineStore(
      { url: server.url, tls: false },
      { use: 'online-read', keyPrefix, readV1: false },
    );
    cleanup.push(() => plain.close());
    await waitReady(plain.client, 10_000);
    const absent = Array.from({ length: 1_000 }, (_, i) => `absent${i}`);
    const many = await plain.readBatch([{ view, entities: [...absent, ...entities, 'damaged'], features: ['s2'] }]);
    expect(many[0]!.slice(0, 1_000).every((row) => row === undefined)).toBe(true);
    for (let u = 0; u < n; u++) expect(many[0]![1_000 + u]?.features).toEqual({ s2: `s2${big}` });
    expect(many[0]![1_000 + n]).toBeUndefined();
    expect(await peak()).toBeLessThan(2 << 20);
  }, 60_000);

  // The layout-v1 fallback was not bounded: entities absent in v2 were read in one script call
  // (HMGET of every v1 hash) per request: 200 hashes of 8 × 65 KB were one 105 MB reply (2 s), 320
  // past the skew monitor's 2 s read timeout on every retry (a review). Their hashes are now sized
  // first and read in calls of a bounded reply too.
  it('reads 200 layout-v1 rows of 520 KB in replies of at most about 1 MiB', async () => {
    const { server, tooling } = await privateRedisWithTooling(['--save', '', '--appendonly', 'no'], cleanup);
    const features = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`s${i}`, 'string']));
    const views = parseFeatureViewsText(
      `views:\n  - name: v\n    entity: user_id\n    features: ${JSON.stringify(features)}\n`,
    );
    const view = views.get('v')!;
    const keyPrefix = 'old';
    const v1 = (entity: string) => v1RowKey(rowKey(keyPrefix, 'v', entity));
    const big = 'b'.repeat(65_000);
    const t = Date.now() - 1_000;
    await tooling.hset(v1('u0'), {
      [ROW_TIME]: String(t),
      [ROW_EVENT_ID]: 'e0',
      ...Object.fromEntries(Object.keys(features).map((f) => [f, `${f}${big}`])),
    });
    const n = 200;
    for (let u = 1; u < n; u++) await tooling.copy(v1('u0'), v1(`u${u}`));
    // Not a row at a v1 key (damaged: absent, reported); a small v2 row.
    await tooling.set(v1('damaged'), 'hello');
    await tooling.set(
      rowKey(keyPrefix, 'v', 'fresh'),
      JSON.stringify({ [ROW_TIME]: String(t), [ROW_EVENT_ID]: 'f', s0: 'x' }),
    );

    // Rows as `eventId feature=length …`, absent features left out (a failed comparison must not print megabytes).
    const shape = (row: FeatureRow | undefined) =>
      row === undefined
        ? '-'
        : [
            row.eventTime === t ? row.eventId : `${row.eventId}@${row.eventTime}`,
            ...Object.entries(row.features)
              .filter(([, v]) => v !== null)
              .map(([f, v]) => `${f}=${String(v).length}`),
          ].join(' ');
    const entities = Array.from({ length: n }, (_, u) => `u${u}`);
    const full = `e0 ${Object.keys(features)
      .map((f) => `${f}=65002`)
      .join(' ')}`;
    for (const entitiesPerCall of [100, 1]) {
      const corrupt: string[] = [];
      const reader = createRedisOnlineStore(
        { url: server.url, tls: false, readTimeoutMs: 2_000 },
        {
          use: 'online-read',
          keyPrefix,
          entitiesPerCall,
          readBytesPerCall: 1 << 20,
          onCorruptRow: (key) => corrupt.push(key),
        },
      );
      cleanup.push(() => reader.close());
      await waitReady(reader.client, 10_000);
      const rows = await reader.readBatch([
        { view, entities: [...entities, 'absent', 'damaged', 'fresh', 'u7'] },
        { view, entities: ['u3', 'absent', 'fresh'], features: ['s1', 's0'] },
      ]);
      expect(rows.map((r) => r.map(shape))).toEqual([
        [...entities.map(() => full), '-', '-', 'f s0=1', full],
        ['e0 s1=65002 s0=65002', '-', 'f s0=1'],
      ]);
      expect(rows[0]![3]!.features.s5).toBe(`s5${big}`);
      expect(rows[1]![0]!.features.s1).toBe(`s1${big}`);
      expect(corrupt).toEqual([v1('damaged')]);
      // The largest reply Redis built for a client lately: 105 MB in one script call before.
      const info = await tooling.info('clients');
      const peak = Number(/client_recent_max_output_buffer:(\d+)/.exec(info)?.[1]);
      expect(peak).toBeGreaterThan(500_000);
      expect(peak).toBeLessThan(2 << 20);
    }
  }, 120_000);
  // A view of numbers is read without sizing (its rows cannot weigh much as written now); rows
  // holding fields of an older definition of the view can: once one is seen, the view is sized.
  it('sizes the batches of a numeric view once a row larger than the view allows was read', async () => {
    const { server, tooling } = await privateRedisWithTooling(['--save', '', '--appendonly', 'no'], cleanup);
    const views = parseFeatureViewsText('views:\n  - name: num\n    entity: user_id\n    features: { a: double }\n');
    const view = views.get('num')!;
    const keyPrefix = 'num';
    const t = Date.now() - 1_000;
    // Written under an older definition that had a string feature `old`.
    const stale = JSON.stringify({ [ROW_TIME]: String(t), [ROW_EVENT_ID]: 'e', a: '1', old: 'o'.repeat(600_000) });
    for (let u = 0; u < 3; u++) await tooling.set(rowKey(keyPrefix, 'num', `u${u}`), stale);
    const reader = createRedisOnlineStore(
      { url: server.url, tls: false },
      { use: 'online-read', keyPrefix, readV1: false },
    );
    cleanup.push(() => reader.close());
    await waitReady(reader.client, 10_000);
    // Script calls Redis ran (EVAL the first time on a connection, EVALSHA after).
    const scripts = async () => {
      const stats = await tooling.info('commandstats');
      const calls = (command: string) => Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
      return calls('eval') + calls('evalsha');
    };
    const read = () => reader.readBatch([{ view, entities: ['u0', 'u1', 'u2'] }]);
    const expected = Array.from({ length: 3 }, () => ({ eventTime: t, eventId: 'e', features: { a: 1 } }));
    expect(await read()).toEqual([expected]);
    expect(await scripts()).toBe(0); // one MGET, unsized
    expect(await read()).toEqual([expected]);
    expect(await scripts()).toBe(1); // sized (and read) by the script call
  }, 60_000);
});
