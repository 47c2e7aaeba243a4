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
      // A read timeout for a loaded run (at 2 s a call of ~1 MiB timed out in a fresh clone at a load
      // average of 25); the bound on each reply is the peak checked below.
      const reader = createRedisOnlineStore(
        { url: server.url, tls: false, readTimeoutMs: 10_000 },
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
  // A view of numbers was read without sizing the first time (its rows cannot weigh much as
  // written now), and sized only once a row larger than it allows was seen; rows holding fields of
  // an older definition of the view can be large: 400 rows of 512 KB were one 205 MB reply on the
  // first read (a review). A view is now sized until a sized read found its rows within bounds.
  it('sizes the first batches of a numeric view, and all of them once its rows are found larger than it allows', async () => {
    const { server, tooling } = await privateRedisWithTooling(['--save', '', '--appendonly', 'no'], cleanup);
    const views = parseFeatureViewsText('views:\n  - name: num\n    entity: user_id\n    features: { a: double }\n');
    const view = views.get('num')!;
    const keyPrefix = 'num';
    const t = Date.now() - 1_000;
    // Written under an older definition that had a string feature `old`.
    const stale = JSON.stringify({ [ROW_TIME]: String(t), [ROW_EVENT_ID]: 'e', a: '1', old: 'o'.repeat(512_000) });
    const n = 20;
    for (let u = 0; u < n; u++) await tooling.set(rowKey(keyPrefix, 'num', `u${u}`), stale);
    const reader = createRedisOnlineStore(
      { url: server.url, tls: false },
      { use: 'online-read', keyPrefix, readV1: false },
    );
    cleanup.push(() => reader.close());
    await waitReady(reader.client, 10_000);
    const peak = async () => Number(/client_recent_max_output_buffer:(\d+)/.exec(await tooling.info('clients'))?.[1]);
    const entities = Array.from({ length: n }, (_, u) => `u${u}`);
    const read = (maxRowBytes?: number) =>
      reader.readBatch([{ view, entities }], maxRowBytes === undefined ? {} : { maxRowBytes });
    // 10 MB of rows: refused before any is read, every time (the first read was one MGET before).
    for (let i = 0; i < 2; i++) {
      await expect(read(4 << 20)).rejects.toMatchObject({ code: 'BAD_REQUEST' });
      expect(await peak()).toBeLessThan(64 << 10);
    }
    const rows = await read();
    expect(rows[0]!.map((row) => row?.features)).toEqual(entities.map(() => ({ a: 1 })));
    // Read in replies of about 1 MiB (one 10 MB MGET before; Redis samples its clients' buffers,
    // so a read this short may leave no trace: an upper bound only).
    expect(await peak()).toBeLessThan(2 << 20);
    await tooling.config('RESETSTAT');
    await read();
    const stats = await tooling.info('commandstats');
    expect(stats).toMatch(/cmdstat_evalsha:calls=1,/); // still sized
  }, 60_000);

  // The worst-case estimate of a row of ten doubles (~2.1 KB: a 256-character event id counted as
  // if every character were escaped) let only ~500 rows take the one-MGET path: a 1,000-entity
  // batch (the feature API's and the model server's maximum) went through the sizing script, 11
  // times Redis's time per call (a review). Sized once, the view's batches fit by the rows seen.
  it('reads a 1,000-row batch of a numeric view in one MGET once the view was sized', async () => {
    const { server, tooling } = await privateRedisWithTooling(['--save', '', '--appendonly', 'no'], cleanup);
    const features = Object.fromEntries(Array.from({ length: 10 }, (_, i) => [`f${i}`, 'double']));
    const views = parseFeatureViewsText(
      `views:\n  - name: n\n    entity: user_id\n    features: ${JSON.stringify(features)}\n`,
    );
    const view = views.get('n')!;
    const keyPrefix = 'many';
    const writer = createRedisOnlineStore({ url: server.url, tls: false }, { use: 'online-write', keyPrefix });
    cleanup.push(() => writer.close());
    await waitReady(writer.client, 10_000);
    const n = 1_000;
    const t = Date.now() - 1_000;
    await writer.write(
      planWrites(
        Array.from({ length: n }, (_, u) =>
          validateFeatureEvent(views, {
            event_id: `e-${u}-abcdef`,
            view: 'n',
            entity_id: `user-${u}`,
            event_time: t,
            features: Object.fromEntries(Object.keys(features).map((f, i) => [f, u * 1.2345 + i])),
          }),
        ),
      ),
    );
    const reader = createRedisOnlineStore({ url: server.url, tls: false }, { use: 'online-read', keyPrefix });
    cleanup.push(() => reader.close());
    await waitReady(reader.client, 10_000);
    const entities = Array.from({ length: n }, (_, u) => `user-${u}`);
    const calls = (stats: string, command: string) =>
      Number(new RegExp(`cmdstat_${command}:calls=(\\d+)`).exec(stats)?.[1] ?? 0);
    const first = await reader.readBatch([{ view, entities }], { maxRowBytes: 32 << 20 });
    expect(first[0]!.every((row) => row !== undefined)).toBe(true);
    await tooling.config('RESETSTAT');
    for (let i = 0; i < 3; i++) {
      const rows = await reader.readBatch([{ view, entities }], { maxRowBytes: 32 << 20 });
      expect(rows[0]![999]?.features.f9).toBe(999 * 1.2345 + 9);
    }
    const stats = await tooling.info('commandstats');
    expect({
      mget: calls(stats, 'mget'),
      scripts: calls(stats, 'evalsha') + calls(stats, 'eval'),
      strlen: calls(stats, 'strlen'),
    }).toEqual({ mget: 3, scripts: 0, strlen: 0 });
  }, 60_000);

  // The layout-v1 fallback was bounded only when readBytesPerCall was given (the feature API and
  // the model server do not), and maxRowBytes did not count v1 rows: 400 v1 rows of 520 KB were
  // one 211 MB reply (a review). Bounded by default now, and counted.
  it('reads layout-v1 rows within the default bound and counts them against maxRowBytes', async () => {
    const { server, tooling } = await privateRedisWithTooling(['--save', '', '--appendonly', 'no'], cleanup);
    const features = Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`s${i}`, 'string']));
    const views = parseFeatureViewsText(
      `views:\n  - name: v\n    entity: user_id\n    features: ${JSON.stringify(features)}\n`,
    );
    const view = views.get('v')!;
    const keyPrefix = 'v1d';
    const v1 = (entity: string) => v1RowKey(rowKey(keyPrefix, 'v', entity));
    const big = 'b'.repeat(65_000);
    const t = Date.now() - 1_000;
    const n = 20;
    for (let u = 0; u < n; u++) {
      await tooling.hset(v1(`u${u}`), {
        [ROW_TIME]: String(t),
        [ROW_EVENT_ID]: `e${u}`,
        ...Object.fromEntries(Object.keys(features).map((f) => [f, big])),
      });
    }
    const reader = createRedisOnlineStore({ url: server.url, tls: false }, { use: 'online-read', keyPrefix });
    cleanup.push(() => reader.close());
    await waitReady(reader.client, 10_000);
    const peak = async () => Number(/client_recent_max_output_buffer:(\d+)/.exec(await tooling.info('clients'))?.[1]);
    const entities = Array.from({ length: n }, (_, u) => `u${u}`);
    // 10.4 MB of v1 fields: refused before any hash is read (read whole before).
    await expect(reader.readBatch([{ view, entities }], { maxRowBytes: 4 << 20 })).rejects.toMatchObject({
      code: 'BAD_REQUEST',
    });
    expect(await peak()).toBeLessThan(64 << 10);
    const rows = await reader.readBatch([{ view, entities: [...entities, 'absent'] }]);
    expect(rows[0]!.map((row) => row?.eventId)).toEqual([...entities.map((_, u) => `e${u}`), undefined]);
    expect(rows[0]![7]!.features.s3).toBe(big);
    // In replies of about 1 MiB (one 10 MB script reply before; an upper bound only, as above).
    expect(await peak()).toBeLessThan(2 << 20);
  }, 60_000);
});
