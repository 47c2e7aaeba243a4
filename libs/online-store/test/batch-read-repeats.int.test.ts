import { planWrites, validateFeatureEvent } from '@driftline/features';
import { eventually, uniqueName } from '@driftline/test-support';
import { afterAll, describe, expect, inject, it } from 'vitest';
import { rowKey } from '../src/index.js';
import { createRedisClient, createRedisOnlineStore, waitReady } from '../src/redis/index.js';
import { contractViews } from './contract.js';

const stack = inject('stack');
const config = { url: stack.redisUrl, tls: false };
const tooling = createRedisClient(config, 'tooling', { name: 'online-store-repeats-test' });
afterAll(() => tooling.disconnect());

const profile = contractViews.get('profile')!;

// Found by a review: a batch naming one entity 1,000 times sent an MGET of 1,000 copies of its key
// (64 MB from Redis for one row holding a 64 KB string), for any client able to send a 20 KB body.
describe('readBatch of repeated entities (real Redis)', () => {
  it('reads each distinct key once per call and returns every repeat, in order', async () => {
    const keyPrefix = uniqueName('osrep');
    const store = createRedisOnlineStore(config, { use: 'online-write', keyPrefix });
    await waitReady(store.client);
    // MONITOR sees every command Redis runs, in order: what the store really sent.
    const monitor = await tooling.duplicate().monitor();
    const seen: string[][] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (args.some((a) => a.startsWith(`${keyPrefix}:`))) seen.push(args);
    });
    try {
      const t = Date.now();
      const big = 'z'.repeat(65_536);
      await store.write(
        planWrites([
          validateFeatureEvent(contractViews, {
            event_id: 'e-big',
            view: 'profile',
            entity_id: 'big',
            event_time: t,
            features: { age: 1, country: big },
          }),
          validateFeatureEvent(contractViews, {
            event_id: 'e-small',
            view: 'profile',
            entity_id: 'small',
            event_time: t,
            features: { age: 2, country: 'fr' },
          }),
        ]),
      );
      // Redis runs commands one at a time and MONITOR streams them in that order, but late: once a
      // sentinel GET shows, every command before it has shown too. One before the read, so the
      // write's commands (its script reads the rows it replaces) are not counted as the read's: a
      // fresh-clone run under load saw them arrive after the read began (big 2, small 2).
      let sentinels = 0;
      const synced = async () => {
        const sentinel = `${keyPrefix}:sentinel:${sentinels++}`;
        await tooling.get(sentinel);
        await eventually(async () => (seen.some((a) => a.includes(sentinel)) ? true : undefined), 10_000, 20);
      };
      const commandsAfter = async (read: () => Promise<unknown>) => {
        await synced();
        seen.length = 0;
        const result = await read();
        await synced();
        return { result, commands: seen.filter((a) => !a.some((x) => x.startsWith(`${keyPrefix}:sentinel:`))) };
      };

      const entities = [...Array.from({ length: 1_000 }, () => 'big'), 'small', 'missing', 'big', 'missing'];
      const { result, commands } = await commandsAfter(() =>
        store.readBatch([{ view: profile, entities, features: ['age', 'country'] }]),
      );
      // Row reads (MGET/GET); the missing one is read again after its layout-v1 hash (readV1).
      const keysRead = commands.flatMap((a) => (['mget', 'get'].includes(a[0]!.toLowerCase()) ? a.slice(1) : []));
      const reads = (e: string) => keysRead.filter((k) => k === rowKey(keyPrefix, 'profile', e)).length;
      expect({ big: reads('big'), small: reads('small'), missing: reads('missing') }).toEqual({
        big: 1,
        small: 1,
        missing: 2,
      });
      // And no command names a key twice (the defect: one MGET of 1,000 copies of a key).
      for (const c of commands.filter((a) => ['mget', 'get'].includes(a[0]!.toLowerCase()))) {
        expect(new Set(c.slice(1)).size, c[0]).toBe(c.length - 1);
      }

      const rows = result as Awaited<ReturnType<typeof store.readBatch>>;
      expect(rows).toHaveLength(1);
      const got = rows[0]!;
      expect(got).toHaveLength(entities.length);
      const bigRow = { eventTime: t, eventId: 'e-big', features: { age: 1, country: big } };
      const smallRow = { eventTime: t, eventId: 'e-small', features: { age: 2, country: 'fr' } };
      entities.forEach((e, i) => {
        expect(got[i]).toEqual(e === 'big' ? bigRow : e === 'small' ? smallRow : undefined);
      });
      // Each repeat is a row of its own: changing one leaves the others as read.
      got[0]!.features.age = 99;
      expect(got[1]!.features.age).toBe(1);
      expect(got[1002]!.features.age).toBe(1);

      // The same answers as reading each entity alone.
      for (const e of ['big', 'small', 'missing']) {
        expect(
          (await store.readBatch([{ view: profile, entities: [e], features: ['age', 'country'] }]))[0]![0],
        ).toEqual(e === 'big' ? bigRow : e === 'small' ? smallRow : undefined);
      }
    } finally {
      monitor.disconnect();
      await store.close();
      store.client.disconnect();
      const keys = await tooling.keys(`${keyPrefix}:*`);
      if (keys.length > 0) await tooling.unlink(...keys);
    }
  }, 60_000);
});
