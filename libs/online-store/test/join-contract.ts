// The JoinStore contract (the port lives in libs/join): one suite, run against the in-memory
// model (join-store-memory.test.ts) and the Redis adapter (join-store.int.test.ts). Random
// operation sequences must give exactly the outcomes, emitted rows and counts of the pure model.
import { type Applied, InMemoryJoinStore, type JoinConfig, type JoinStore } from '@driftline/join';
import { seededUniform } from '@driftline/test-support/random';
import { afterEach, describe, expect, it } from 'vitest';

/** Huge TTLs: nothing expires by itself during the suite, only through the scanner. */
export const joinContractConfig: JoinConfig = { maxDelayMs: 1_000, graceMs: 50, tombstoneMs: 3_600_000 };

export interface JoinContractSubject {
  /** A fresh, empty store (its own key space) configured with joinContractConfig. */
  readonly store: JoinStore<Buffer, Buffer>;
  cleanup?(): Promise<void>;
}

const text = (b: Buffer | undefined) => b?.toString('latin1');

export function joinStoreContract(
  name: string,
  create: () => Promise<JoinContractSubject> | JoinContractSubject,
): void {
  describe(`JoinStore contract: ${name}`, () => {
    const subjects: JoinContractSubject[] = [];
    const open = async () => {
      const subject = await create();
      subjects.push(subject);
      return subject.store;
    };
    afterEach(async () => {
      for (const s of subjects.splice(0)) await s.cleanup?.();
    });
    const config = joinContractConfig;

    for (const seed of [11, 12, 13, 14, 15, 16]) {
      it(`random operation sequence, seed ${seed}`, async () => {
        const r = seededUniform(seed);
        const real = await open();
        const model = new InMemoryJoinStore<Buffer, Buffer>(config);
        const ids = Array.from({ length: 25 }, (_, i) => `id-${i}\n"x"`); // ids with awkward bytes
        // Binary payloads with newlines and NULs, to prove the encoding is binary-safe.
        const payload = (tag: string, i: number) => Buffer.from([0, 10, 255, i % 256, ...Buffer.from(`${tag}\n${i}`)]);
        let now = 1_000;
        for (let step = 0; step < 300; step++) {
          now += Math.floor(r() * 40);
          const op = r();
          const id = ids[Math.floor(r() * ids.length)] as string;
          // Batches of 1..5 records, ids may repeat inside a batch (duplicates in one poll).
          const batch = Array.from({ length: 1 + Math.floor(r() * 5) }, (_, n) => {
            const eventTime = Math.floor(r() * 4_000);
            return { id: n === 0 ? id : (ids[Math.floor(r() * ids.length)] as string), eventTime };
          });
          const same = (a: ReadonlyArray<Applied<Buffer, Buffer, string>>, b: typeof a) => {
            expect(
              a.map((x) => x.outcome),
              `step ${step}`,
            ).toEqual(b.map((x) => x.outcome));
            expect(a.map((x) => [text(x.emit?.prediction), text(x.emit?.label), x.emit?.joinedAt])).toEqual(
              b.map((x) => [text(x.emit?.prediction), text(x.emit?.label), x.emit?.joinedAt]),
            );
          };
          if (op < 0.35) {
            const inputs = batch.map((b, n) => ({
              ...b,
              windowKey: `["m","v",${b.eventTime - (b.eventTime % 1000)}]`,
              payload: payload('p', step * 10 + n),
            }));
            same(await real.applyPredictions(inputs, now), await model.applyPredictions(inputs, now));
          } else if (op < 0.75) {
            const inputs = batch.map((b, n) => ({ ...b, payload: payload('l', step * 10 + n) }));
            same(await real.applyLabels(inputs, now), await model.applyLabels(inputs, now));
          } else if (op < 0.85) {
            await real.ackJoined([id], now);
            await model.ackJoined([id], now);
          } else if (op < 0.95) {
            const a = await real.expireDue(now, 5);
            const b = await model.expireDue(now, 5);
            expect(a.cutoff).toBe(b.cutoff);
            expect(a.counts).toEqual(b.counts);
          } else {
            const a = await real.unackedExpired(100);
            const b = await model.unackedExpired(100);
            expect(a.map((x) => [x.id, text(x.prediction), x.expiredAt]).sort()).toEqual(
              b.map((x) => [x.id, text(x.prediction), x.expiredAt]).sort(),
            );
            await real.ackExpired(
              a.map((x) => x.id),
              now,
            );
            await model.ackExpired(
              b.map((x) => x.id),
              now,
            );
          }
        }
        expect(await real.scheduledCount()).toBe(await model.scheduledCount());
        for (const w of new Set([...model.pending.keys(), '["m","v",0]', '["m","v",1000]'])) {
          expect(await real.pendingCount(w)).toBe(await model.pendingCount(w));
        }
        const dirtyA = (await real.dirtyWindows(100)).map((d) => d.key).sort();
        const dirtyB = (await model.dirtyWindows(100)).map((d) => d.key).sort();
        expect(dirtyA).toEqual(dirtyB);
      });
    }

    it('clears a dirty window only when nobody marked it again', async () => {
      const store = await open();
      await store.applyPredictions([{ id: 'a', eventTime: 0, windowKey: 'w', payload: Buffer.from('x') }], 100);
      const [d] = await store.dirtyWindows(10);
      expect(d).toEqual({ key: 'w', markedAt: 100 });
      await store.applyPredictions([{ id: 'b', eventTime: 0, windowKey: 'w', payload: Buffer.from('x') }], 200);
      expect(await store.clearDirty('w', 100)).toBe(false);
      expect(await store.clearDirty('w', 200)).toBe(true);
      expect(await store.dirtyWindows(10)).toEqual([]);
    });
  });
}
