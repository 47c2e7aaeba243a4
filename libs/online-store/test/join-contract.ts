// The JoinStore contract (the port lives in libs/join): one suite, run against the in-memory
// model (join-store-memory.test.ts) and the Redis adapter (join-store.int.test.ts). Random
// operation sequences must give exactly the outcomes, emitted rows and counts of the pure model.
import {
  type Applied,
  InMemoryJoinStore,
  type JoinConfig,
  type JoinRef,
  type JoinStore,
  joinKey,
  type OffsetSpan,
  type TakenTallies,
  type TallyInput,
} from '@driftline/join';
import { seededUniform } from '@driftline/test-support/random';
import { afterEach, describe, expect, it } from 'vitest';

/**
 * Huge TTLs: nothing expires by itself during the suite, only through the scanner. A label may be
 * dated up to labelEarlyMs = maxFutureMs + CLOCK_SKEW_MS (60.5 s) before its prediction.
 */
export const joinContractConfig: JoinConfig = {
  maxDelayMs: 1_000,
  graceMs: 50,
  tombstoneMs: 3_600_000,
  maxFutureMs: 500,
};

export interface JoinContractSubject {
  /** A fresh, empty store (its own key space) configured with joinContractConfig. */
  readonly store: JoinStore<Buffer, Buffer>;
  /** Drops one state as its TTL running out would (a `J`/`X` tombstone past its TTL). */
  forget(ref: JoinRef): Promise<void>;
  cleanup?(): Promise<void>;
}

const text = (b: Buffer | undefined) => b?.toString('latin1');

/** A taken batch as comparable rows: group, slot, count, sum rounded (Redis adds in long double). */
function tallyRows(t: TakenTallies): unknown[] {
  const rows: unknown[] = [t.batch?.flushId, t.buffered];
  for (const g of t.batch?.groups ?? []) {
    for (const [slot, { count, sum }] of g.slots) rows.push([g.group, slot, count, Number(sum.toPrecision(12))]);
  }
  return rows.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

export function joinStoreContract(
  name: string,
  create: () => Promise<JoinContractSubject> | JoinContractSubject,
): void {
  describe(`JoinStore contract: ${name}`, () => {
    const subjects: JoinContractSubject[] = [];
    const openSubject = async () => {
      const subject = await create();
      subjects.push(subject);
      return subject;
    };
    const open = async () => (await openSubject()).store;
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
        // Two models share every prediction id (and a model name with awkward bytes too).
        const models = ['m1', 'm"2\n'];
        const modelOf = () => models[Math.floor(r() * models.length)] as string;
        // Binary payloads with newlines and NULs, to prove the encoding is binary-safe.
        const payload = (tag: string, i: number, model: string) =>
          Buffer.from([0, 10, 255, i % 256, ...Buffer.from(`${tag}\n${i} ${model}`)]);
        let now = 1_000;
        for (let step = 0; step < 300; step++) {
          now += Math.floor(r() * 40);
          const op = r();
          const id = ids[Math.floor(r() * ids.length)] as string;
          const m = modelOf();
          // Batches of 1..5 records, ids may repeat inside a batch (duplicates in one poll).
          const batch = Array.from({ length: 1 + Math.floor(r() * 5) }, (_, n) => {
            const eventTime = Math.floor(r() * 4_000);
            return {
              model: n === 0 ? m : modelOf(),
              id: n === 0 ? id : (ids[Math.floor(r() * ids.length)] as string),
              eventTime,
            };
          });
          const same = (a: ReadonlyArray<Applied<Buffer, Buffer, string>>, b: typeof a) => {
            expect(
              a.map((x) => x.outcome),
              `step ${step}`,
            ).toEqual(b.map((x) => x.outcome));
            const row = (x: (typeof a)[number]) => [
              x.emit?.model,
              x.emit?.id,
              text(x.emit?.prediction),
              text(x.emit?.label),
              x.emit?.joinedAt,
            ];
            expect(a.map(row)).toEqual(b.map(row));
            // A joined row pairs the two sides of one model, never another model's.
            for (const x of a) {
              if (x.emit !== undefined) expect(text(x.emit.label)?.endsWith(` ${x.emit.model}`)).toBe(true);
              if (x.emit !== undefined) expect(text(x.emit.prediction)?.endsWith(` ${x.emit.model}`)).toBe(true);
            }
          };
          if (op < 0.35) {
            const inputs = batch.map((b, n) => {
              const windowKey = JSON.stringify([b.model, 'v', b.eventTime - (b.eventTime % 1000)]);
              // Most predictions carry a tally (group: their window, with awkward bytes), some none.
              const tally: TallyInput | undefined =
                r() < 0.8 ? { group: `${windowKey}\n"g"`, slot: Math.floor(r() * 1001), value: r() / 3 } : undefined;
              return {
                ...b,
                windowKey,
                payload: payload('p', step * 10 + n, b.model),
                ...(tally === undefined ? {} : { tally }),
              };
            });
            same(
              await real.applyPredictions(inputs, now, 'predictions/0'),
              await model.applyPredictions(inputs, now, 'predictions/0'),
            );
          } else if (op >= 0.85 && op < 0.9) {
            // Take (a second take returns the batch in flight), acknowledge it or not (a crash).
            const flushId = `flush-${step}`;
            const a = await real.takeTallies(flushId);
            expect(tallyRows(a), `step ${step}`).toEqual(tallyRows(await model.takeTallies(flushId)));
            if (a.batch !== undefined && r() < 0.6) {
              const windows = a.batch.groups.map((g) => g.group.split('\n')[0] as string);
              await real.ackTallies(a.batch.flushId, windows);
              await model.ackTallies(a.batch.flushId, windows);
            }
          } else if (op < 0.75) {
            const inputs = batch.map((b, n) => ({ ...b, payload: payload('l', step * 10 + n, b.model) }));
            same(await real.applyLabels(inputs, now, 'labels/0'), await model.applyLabels(inputs, now, 'labels/0'));
          } else if (op < 0.85) {
            await real.ackJoined([{ model: m, id }], now);
            await model.ackJoined([{ model: m, id }], now);
          } else if (op < 0.95) {
            const cutoff = now - config.graceMs;
            const a = await real.expireDue(cutoff, now, 5);
            const b = await model.expireDue(cutoff, now, 5);
            expect(a.cutoff).toBe(b.cutoff);
            expect(a.counts).toEqual(b.counts);
          } else {
            const a = await real.unackedExpired(100);
            const b = await model.unackedExpired(100);
            const row = (x: (typeof a)[number]) => JSON.stringify([x.model, x.id, text(x.prediction), x.expiredAt]);
            expect(a.map(row).sort()).toEqual(b.map(row).sort());
            await real.ackExpired(
              a.map((x) => ({ model: x.model, id: x.id })),
              now,
            );
            await model.ackExpired(
              b.map((x) => ({ model: x.model, id: x.id })),
              now,
            );
          }
        }
        expect(await real.scheduledCount()).toBe(await model.scheduledCount());
        const windows = models.flatMap((m) => [0, 1000, 2000, 3000].map((t) => JSON.stringify([m, 'v', t])));
        for (const w of new Set([...model.pending.keys(), ...windows])) {
          expect(await real.pendingCount(w)).toBe(await model.pendingCount(w));
        }
        const dirtyA = (await real.dirtyWindows(100)).map((d) => d.key).sort();
        const dirtyB = (await model.dirtyWindows(100)).map((d) => d.key).sort();
        expect(dirtyA).toEqual(dirtyB);
        // Whatever was counted and never taken (or taken and not acknowledged) is still there.
        expect(tallyRows(await real.takeTallies('last'))).toEqual(tallyRows(await model.takeTallies('last')));
      });
    }

    it('tallies a prediction once, at its first transition; a batch stays in flight until acknowledged', async () => {
      const store = await open();
      const p = (id: string, slot: number, value: number, group = 'g') => ({
        model: 'm',
        id,
        eventTime: 0,
        windowKey: 'w',
        payload: Buffer.from(id),
        tally: { group, slot, value },
      });
      const counts = (t: TakenTallies) =>
        Object.fromEntries(
          (t.batch?.groups ?? []).map((g) => [g.group, Object.fromEntries([...g.slots].map(([k, v]) => [k, v]))]),
        );
      expect(await store.takeTallies('empty')).toEqual({ buffered: 0 });
      // b's label waits, so b's prediction joins at once (a first transition, counted).
      await store.applyLabels([{ model: 'm', id: 'b', eventTime: 1, payload: Buffer.from('l') }], 5, 'labels/0');
      // a twice in one batch (the second is a duplicate), b joined, c in another group.
      await store.applyPredictions(
        [p('a', 3, 0.25), p('a', 3, 0.25), p('b', 3, 0.5), p('c', 1000, 1, 'h')],
        10,
        'predictions/0',
      );
      await store.applyPredictions([p('a', 3, 0.25), p('b', 3, 0.5)], 20, 'predictions/0'); // replays: not counted
      const first = await store.takeTallies('f1');
      expect(first.batch?.flushId).toBe('f1');
      expect(counts(first)).toEqual({ g: { 3: { count: 2, sum: 0.75 } }, h: { 1000: { count: 1, sum: 1 } } });
      // Counted after the take: buffered for the next batch; the batch in flight comes back unchanged.
      await store.applyPredictions([p('d', 7, 0.125)], 30, 'predictions/0');
      const again = await store.takeTallies('f2');
      expect(again.batch?.flushId).toBe('f1');
      expect(counts(again)).toEqual(counts(first));
      expect(again.buffered).toBe(1);
      await store.ackTallies('stale', ['w-stale']); // not the batch in flight: nothing happens
      expect((await store.takeTallies('f3')).batch?.flushId).toBe('f1');
      expect((await store.dirtyWindows(10)).map((d) => d.key)).toEqual(['w']);
      await store.ackTallies('f1', ['w', 'w-tallied']);
      // The acknowledgement marks the windows of the batch dirty, in the same step.
      expect((await store.dirtyWindows(10)).map((d) => d.key).sort()).toEqual(['w', 'w-tallied']);
      const next = await store.takeTallies('f4');
      expect(next.batch?.flushId).toBe('f4');
      expect(counts(next)).toEqual({ g: { 7: { count: 1, sum: 0.125 } } });
      expect(next.buffered).toBe(0);
      await store.ackTallies('f4', []);
      expect(await store.takeTallies('f5')).toEqual({ buffered: 0 });
    });

    it('a label dated before its prediction could be labeled is early: never joins, the prediction waits for its own (found by a review)', async () => {
      const subject = await openSubject();
      const store = subject.store;
      const outcomes = (xs: ReadonlyArray<Applied<Buffer, Buffer, string>>) => xs.map((x) => x.outcome);
      const prediction = (id: string, eventTime: number, name: string) => ({
        model: 'm',
        id,
        eventTime,
        windowKey: 'w',
        payload: Buffer.from(name),
        tally: { group: 'g', slot: 1, value: 0.5 },
      });
      const label = (id: string, eventTime: number, name: string) => ({
        model: 'm',
        id,
        eventTime,
        payload: Buffer.from(name),
      });
      // (A) An id used again: P1 (time 0) expires unlabeled and its tombstone is gone; P2 reuses
      // the id at 200 s. P1's label (on time for P1, read late) must not join P2.
      expect(outcomes(await store.applyPredictions([prediction('a', 0, 'P1')], 10, 'predictions/0'))).toEqual([
        'pending',
      ]);
      expect((await store.expireDue(2_000, 2_000, 10)).counts.expiring).toBe(1);
      await store.ackExpired([{ model: 'm', id: 'a' }], 2_001);
      await subject.forget({ model: 'm', id: 'a' });
      const t2 = 200_000;
      expect(outcomes(await store.applyPredictions([prediction('a', t2, 'P2')], t2, 'predictions/0'))).toEqual([
        'pending',
      ]);
      const old = await store.applyLabels([label('a', 500, 'label of P1')], t2 + 10, 'labels/0');
      expect(outcomes(old)).toEqual(['early']);
      expect(old[0]?.emit).toBeUndefined();
      expect(await store.pendingCount('w')).toBe(1);
      // Within labelEarlyMs before P2 (clock skew): P2's own label joins.
      const own = await store.applyLabels([label('a', t2 - 60_500, 'label of P2')], t2 + 20, 'labels/0');
      expect(own.map((x) => [x.outcome, text(x.emit?.prediction), text(x.emit?.label)])).toEqual([
        ['joined', 'P2', 'label of P2'],
      ]);
      expect(await store.pendingCount('w')).toBe(0);
      // (B) Labels before the prediction: the real one, then one dated long before (a placeholder
      // date, 2000-01-01 in the review); and the other way round. The real one joins both times.
      const t = 10_000_000;
      await store.applyLabels([label('b', t - 100, 'real b'), label('b', 0, 'placeholder b')], t, 'labels/0');
      await store.applyLabels([label('c', 0, 'placeholder c')], t, 'labels/0');
      expect(outcomes(await store.applyLabels([label('c', t - 100, 'real c')], t, 'labels/0'))).toEqual([
        'waiting-duplicate',
      ]);
      const bc = await store.applyPredictions([prediction('b', t, 'Pb'), prediction('c', t, 'Pc')], t, 'predictions/0');
      expect(bc.map((x) => [x.outcome, text(x.emit?.label)])).toEqual([
        ['joined', 'real b'],
        ['joined', 'real c'],
      ]);
      // Only an early label waiting: the prediction is pending (its first transition: tallied),
      // and its own label joins it later.
      await store.applyLabels([label('d', 0, 'placeholder d')], t, 'labels/0');
      expect(outcomes(await store.applyPredictions([prediction('d', t, 'Pd')], t, 'predictions/0'))).toEqual([
        'pending-early-label',
      ]);
      expect(await store.pendingCount('w')).toBe(1);
      const d = await store.applyLabels([label('d', t + 5, 'real d')], t + 10, 'labels/0');
      expect(d.map((x) => [x.outcome, text(x.emit?.prediction), text(x.emit?.label)])).toEqual([
        ['joined', 'Pd', 'real d'],
      ]);
      // Tallied once each: P1, P2, Pb, Pc, Pd.
      const taken = await store.takeTallies('t');
      expect(taken.batch?.groups.map((g) => [g.group, g.slots.get(1)?.count])).toEqual([['g', 5]]);
    });

    it('keys state by (model, prediction id): two models sharing an id each get their own label', async () => {
      const store = await open();
      const prediction = (model: string, eventTime: number) => ({
        model,
        id: 'shared',
        eventTime,
        windowKey: `w-${model}`,
        payload: Buffer.from(`prediction of ${model}`),
      });
      const label = (model: string, eventTime: number) => ({
        model,
        id: 'shared',
        eventTime,
        payload: Buffer.from(`label of ${model}`),
      });
      const outcomes = (xs: ReadonlyArray<Applied<Buffer, Buffer, string>>) => xs.map((x) => x.outcome);
      const emitted = (xs: ReadonlyArray<Applied<Buffer, Buffer, string>>) =>
        xs.map((x) => [x.emit?.model, x.emit?.id, text(x.emit?.prediction), text(x.emit?.label)]);
      // Prediction first for model a, label first for model b: neither sees the other's state.
      expect(outcomes(await store.applyPredictions([prediction('a', 0)], 10, 'predictions/0'))).toEqual(['pending']);
      expect(outcomes(await store.applyLabels([label('b', 100)], 20, 'labels/0'))).toEqual(['waiting']);
      const b = await store.applyPredictions([prediction('b', 50)], 30, 'predictions/0');
      expect(emitted(b)).toEqual([['b', 'shared', 'prediction of b', 'label of b']]);
      expect(await store.pendingCount('w-a')).toBe(1);
      const a = await store.applyLabels([label('a', 200)], 40, 'labels/0');
      expect(emitted(a)).toEqual([['a', 'shared', 'prediction of a', 'label of a']]);
      expect(await store.pendingCount('w-a')).toBe(0);
      expect(await store.pendingCount('w-b')).toBe(0);
      // Each model's join is acknowledged on its own: a's ack leaves b's row unacknowledged (replayed).
      await store.ackJoined([{ model: 'a', id: 'shared' }], 50);
      expect(outcomes(await store.applyLabels([label('a', 200), label('b', 100)], 60, 'labels/0'))).toEqual([
        'duplicate',
        'replayed',
      ]);
      await store.ackJoined([{ model: 'b', id: 'shared' }], 70);
      expect(outcomes(await store.applyPredictions([prediction('b', 50)], 80, 'predictions/0'))).toEqual(['duplicate']);
    });

    it('a label repeated within a batch emits its row once: the copies replay without the stored prediction', async () => {
      const store = await open();
      const big = Buffer.alloc(64 * 1024, 'p'); // a prediction with a long string feature, say
      await store.applyPredictions(
        [{ model: 'm', id: 'x', eventTime: 0, windowKey: 'w', payload: big }],
        10,
        'predictions/0',
      );
      const copies = Array.from({ length: 1_200 }, (_, i) => ({
        model: 'm',
        id: 'x',
        eventTime: 5,
        payload: Buffer.from(`label ${i}`),
      }));
      const first = await store.applyLabels(copies, 20, 'labels/0');
      expect(first[0]?.outcome).toBe('joined');
      expect(first.slice(1).every((a) => a.outcome === 'replayed' && a.emit === undefined)).toBe(true);
      expect(first[0]?.emit?.prediction.length).toBe(big.length);
      expect(text(first[0]?.emit?.label)).toBe('label 0');
      // Unacknowledged, the next batch replays the row once more (with both payloads): crash recovery.
      const again = await store.applyLabels(copies.slice(0, 3), 30, 'labels/0');
      expect(again.map((a) => a.emit !== undefined)).toEqual([true, false, false]);
      expect(text(again[0]?.emit?.label)).toBe('label 0');
    });

    it('a label for a model that has no such prediction waits, then expires as an orphan', async () => {
      const store = await open();
      await store.applyPredictions(
        [{ model: 'a', id: 'p1', eventTime: 0, windowKey: 'w-a', payload: Buffer.from('prediction of a') }],
        10,
        'predictions/0',
      );
      const [orphan] = await store.applyLabels(
        [{ model: 'c', id: 'p1', eventTime: 100, payload: Buffer.from('label of c') }],
        20,
        'labels/0',
      );
      expect(orphan?.outcome).toBe('waiting');
      expect(orphan?.emit).toBeUndefined();
      expect(await store.pendingCount('w-a')).toBe(1);
      await store.applyPredictions(
        [{ model: 'z', id: 'later', eventTime: 5_000, windowKey: 'w-z', payload: Buffer.from('later') }],
        30,
        'predictions/0',
      );
      expect(await store.scheduledCount()).toBe(3);
      // a's prediction expires unlabeled, c's label is dropped as an orphan: c never joined a's prediction.
      const summary = await store.expireDue(4_950, 10_000, 10);
      expect(summary.counts).toEqual({ expiring: 1, 'orphan-label': 1, stale: 0, 'not-due': 0 });
      const rows = await store.unackedExpired(10);
      expect(rows.map((r) => [r.model, r.id, text(r.prediction)])).toEqual([['a', 'p1', 'prediction of a']]);
      await store.ackExpired([{ model: 'a', id: 'p1' }], 10_001);
      expect(await store.unackedExpired(10)).toEqual([]);
      expect(await store.scheduledCount()).toBe(1);
      expect(await store.pendingCount('w-a')).toBe(0);
    });

    it('keeps a watermark per source, raised with the state, and each owner report', async () => {
      const store = await open();
      expect(await store.sources()).toEqual([]);
      const p = (id: string, eventTime: number, appendTime?: number) => ({
        model: 'm',
        id,
        eventTime,
        ...(appendTime === undefined ? {} : { appendTime }),
        windowKey: 'w',
        payload: Buffer.from(id),
      });
      await store.applyPredictions([p('a', 1_000), p('b', 3_000), p('c', 2_000)], 10, 'predictions/0');
      await store.applyPredictions([p('d', 500)], 11, 'predictions/0'); // never lowered
      // A batch's least event time: one record dated far ahead does not carry the watermark past
      // the backlog the rest of its batch is still in (the greatest did).
      await store.applyPredictions([p('e', 2_500), p('f', 3_600_000), p('g', 3_000)], 12, 'predictions/0');
      // A batch made only of future-dated records counts where it is in the log (its Kafka
      // timestamps): it had carried the watermark an hour ahead of the backlog behind it.
      await store.applyPredictions([p('h', 7_200_000, 2_700), p('i', 7_200_000, 2_900)], 12, 'predictions/0');
      await store.applyLabels([{ model: 'm', id: 'a', eventTime: 1_500, payload: Buffer.from('l') }], 12, 'labels/1');
      // A bogus append time (a producer clock at 0) only holds the watermark back; Kafka's -1 (no
      // timestamp) bounds nothing.
      await store.applyLabels(
        [{ model: 'm', id: 'b', eventTime: 1_800, appendTime: 0, payload: Buffer.from('l') }],
        12,
        'labels/1',
      );
      await store.applyPredictions([p('j', 2_800, -1)], 12, 'predictions/0');
      await store.applyPredictions([], 13, 'predictions/2'); // nothing applied: no watermark
      await store.reportSources(
        [
          { source: 'predictions/0', caughtUp: true },
          { source: 'labels/1', caughtUp: false },
          { source: 'predictions/2', caughtUp: true },
        ],
        100,
      );
      const byName = async () => new Map((await store.sources()).map((x) => [x.source, x]));
      expect(await byName()).toEqual(
        new Map([
          ['predictions/0', { source: 'predictions/0', watermark: 2_800, caughtUpAt: 100, reportedAt: 100 }],
          ['labels/1', { source: 'labels/1', watermark: 1_500, reportedAt: 100 }],
          ['predictions/2', { source: 'predictions/2', caughtUpAt: 100, reportedAt: 100 }],
        ]),
      );
      // Behind now: the last time it was caught up stays; caught up again: it moves.
      await store.reportSources(
        [
          { source: 'predictions/0', caughtUp: false },
          { source: 'labels/1', caughtUp: true },
        ],
        200,
      );
      const after = await byName();
      expect(after.get('predictions/0')).toEqual({
        source: 'predictions/0',
        watermark: 2_800,
        caughtUpAt: 100,
        reportedAt: 200,
      });
      expect(after.get('labels/1')).toEqual({ source: 'labels/1', watermark: 1_500, caughtUpAt: 200, reportedAt: 200 });
      expect(after.get('predictions/2')?.reportedAt).toBe(100);
    });

    it('clears a dirty window only when nobody marked it again, even within the same clock tick', async () => {
      const store = await open();
      const prediction = (id: string) => ({ model: 'm', id, eventTime: 0, windowKey: 'w', payload: Buffer.from('x') });
      // One batch's steps share one `now`: b becomes pending (a mark), then a joined row is
      // acknowledged (another mark) at the same `now`. Each mark must differ from the one before.
      await store.applyLabels([{ model: 'm', id: 'a', eventTime: 0, payload: Buffer.from('l') }], 100, 'labels/0');
      await store.applyPredictions([prediction('a'), prediction('b')], 100, 'predictions/0');
      const [first] = await store.dirtyWindows(10);
      expect(first?.key).toBe('w');
      await store.ackJoined([{ model: 'm', id: 'a' }], 100);
      const [second] = await store.dirtyWindows(10);
      expect(second?.key).toBe('w');
      expect(second?.mark).not.toBe(first?.mark);
      expect(await store.clearDirty('w', first?.mark ?? 0)).toBe(false);
      expect(await store.dirtyWindows(10)).toEqual([second]);
      expect(await store.clearDirty('w', second?.mark ?? 0)).toBe(true);
      expect(await store.dirtyWindows(10)).toEqual([]);
      // A mark after a clear is new too: a pass that read an older mark cannot clear it.
      await store.applyPredictions([prediction('c')], 100, 'predictions/0');
      const [third] = await store.dirtyWindows(10);
      expect(third?.mark).not.toBe(first?.mark);
      expect(third?.mark).not.toBe(second?.mark);
      expect(await store.clearDirty('w', second?.mark ?? 0)).toBe(false);
    });

    it('a redelivery whose tombstone expired is a no-op by the applied marker; records it never applied are not', async () => {
      const { store, forget } = await openSubject();
      const at = (offset: number, appendTime?: number) => ({
        offset,
        ...(appendTime === undefined ? {} : { appendTime }),
      });
      const p = (id: string, offset: number, appendTime?: number) => ({
        model: 'm',
        id,
        eventTime: 0,
        windowKey: 'w',
        payload: Buffer.from(`p ${id}`),
        tally: { group: 'g', slot: 1, value: 0.5 },
        ...at(offset, appendTime),
      });
      const l = (id: string, offset: number, appendTime?: number) => ({
        model: 'm',
        id,
        eventTime: 10,
        payload: Buffer.from(`l ${id}`),
        ...at(offset, appendTime),
      });
      const span = (first: number, last: number, maxAppendTime: number, restart = false): OffsetSpan => ({
        first,
        last,
        maxAppendTime,
        ...(restart ? { restart } : {}),
      });
      const outcomes = (a: ReadonlyArray<Applied<Buffer, Buffer, string>>) => a.map((x) => x.outcome);
      // Offsets 5..6 of predictions/0 (a shadow record at 6 is covered by the span), 3 of labels/0.
      expect(outcomes(await store.applyPredictions([p('a', 5, 100)], 1010, 'predictions/0', span(5, 6, 101)))).toEqual([
        'pending',
      ]);
      expect(outcomes(await store.applyLabels([l('a', 3, 105)], 1011, 'labels/0', span(3, 3, 105)))).toEqual([
        'joined',
      ]);
      // A crash before the acknowledgement: the covered replay still finds K and re-emits the row.
      const replayed = await store.applyLabels([l('a', 3, 105)], 1012, 'labels/0', span(3, 3, 105));
      expect(replayed.map((x) => [x.outcome, x.emit?.prediction.toString()])).toEqual([['replayed', 'p a']]);
      await store.ackJoined([{ model: 'm', id: 'a' }], 1013);
      await forget({ model: 'm', id: 'a' }); // the J tombstone's TTL ran out
      // Redelivered from an earlier offset, hours later: no new pending prediction, no tally, no waiting label.
      expect(outcomes(await store.applyPredictions([p('a', 5, 100)], 1020, 'predictions/0', span(5, 6, 101)))).toEqual([
        'duplicate',
      ]);
      expect(outcomes(await store.applyLabels([l('a', 3, 105)], 1021, 'labels/0', span(3, 3, 105)))).toEqual([
        'duplicate',
      ]);
      expect(await store.pendingCount('w')).toBe(0);
      expect(await store.scheduledCount()).toBe(0);
      const tallies = await store.takeTallies('t1');
      expect([...(tallies.batch?.groups[0]?.slots.values() ?? [])]).toEqual([{ count: 1, sum: 0.5 }]);
      // The next offset is a record never applied: a new prediction (the same id re-sent counts as today).
      expect(outcomes(await store.applyPredictions([p('b', 7, 110)], 1022, 'predictions/0', span(7, 7, 110)))).toEqual([
        'pending',
      ]);
      // The topic deleted and recreated: offsets restart at 0, newer timestamps. Not skipped.
      expect(outcomes(await store.applyPredictions([p('c', 5, 500)], 1023, 'predictions/0', span(5, 5, 500)))).toEqual([
        'pending',
      ]);
      // ... and the marker then describes the new log: a record of the old one (older time) is not covered by it either.
      await forget({ model: 'm', id: 'a' });
      expect(outcomes(await store.applyPredictions([p('a', 6, 100)], 1024, 'predictions/0', span(6, 6, 100)))).toEqual([
        'pending',
      ]);
      // Recreated with producer timestamps older than the marker's: only the restart (no committed offset) tells.
      await store.applyPredictions([p('d', 10, 600)], 1025, 'predictions/1', span(0, 10, 600));
      await forget({ model: 'm', id: 'd' });
      expect(
        outcomes(await store.applyPredictions([p('e', 2, 50)], 1026, 'predictions/1', span(0, 2, 50, true))),
      ).toEqual(['pending']);
      // A covered offset without a timestamp cannot be judged: applied as today.
      await store.applyPredictions([p('f', 20, 700)], 1027, 'predictions/2', span(20, 20, 700));
      await forget({ model: 'm', id: 'f' });
      expect(outcomes(await store.applyPredictions([p('f', 20)], 1028, 'predictions/2', span(20, 20, 700)))).toEqual([
        'pending',
      ]);
      // A gap (the position jumped forward): offsets in it were never applied and are not skipped.
      await store.applyPredictions([p('g', 30, 800)], 1029, 'predictions/3', span(30, 30, 800));
      await store.applyPredictions([p('h', 40, 900)], 1030, 'predictions/3', span(40, 40, 900));
      expect(
        outcomes(await store.applyPredictions([p('i', 35, 850)], 1031, 'predictions/3', span(35, 35, 850))),
      ).toEqual(['pending']);
      // Without a span (no offsets), nothing is skipped by a marker.
      await forget({ model: 'm', id: 'h' });
      expect(outcomes(await store.applyPredictions([p('h', 40, 900)], 1032, 'predictions/3'))).toEqual(['pending']);
    });

    it('takes in the span of a batch with nothing to apply (only shadow predictions): no gap, no forgotten history', async () => {
      const { store, forget } = await openSubject();
      const p = (id: string, offset: number) => ({
        model: 'm',
        id,
        eventTime: 0,
        appendTime: 100 + offset,
        offset,
        windowKey: 'w',
        payload: Buffer.from(`p ${id}`),
      });
      const outcomes = (a: ReadonlyArray<Applied<Buffer, Buffer, string>>) => a.map((x) => x.outcome);
      const source = 'predictions/0';
      await store.applyPredictions([p('a', 0)], 1_000, source, { first: 0, last: 0, maxAppendTime: 100 });
      // Offsets 1..4: shadow predictions only, so nothing to apply, but applied all the same.
      expect(await store.applyPredictions([], 1_001, source, { first: 1, last: 4, maxAppendTime: 104 })).toEqual([]);
      await store.applyPredictions([p('b', 5)], 1_002, source, { first: 5, last: 5, maxAppendTime: 105 });
      // Both tombstones gone, offsets 0..5 read again: one span from 0, so both are replays.
      await forget({ model: 'm', id: 'a' });
      await forget({ model: 'm', id: 'b' });
      const replay = [p('a', 0), p('b', 5)];
      expect(
        outcomes(await store.applyPredictions(replay, 1_003, source, { first: 0, last: 5, maxAppendTime: 105 })),
      ).toEqual(['duplicate', 'duplicate']);
      expect(await store.pendingCount('w')).toBe(2); // not 4
      // A step of no records moves no watermark (it has no event time)...
      await store.reportSources([{ source, caughtUp: true }], 1_003);
      const watermark = async () => (await store.sources()).find((x) => x.source === source)?.watermark;
      const before = await watermark();
      await store.applyPredictions([], 1_004, source, { first: 6, last: 6, maxAppendTime: 106 });
      expect(await watermark()).toBe(before);
      // ... and a restart span still drops the marker.
      await store.applyPredictions([], 1_004, source, { first: 0, last: 0, maxAppendTime: 100, restart: true });
      await forget({ model: 'm', id: 'b' });
      expect(
        outcomes(await store.applyPredictions([p('b', 5)], 1_005, source, { first: 5, last: 5, maxAppendTime: 105 })),
      ).toEqual(['pending']);
    });

    it("a step of shadow predictions only never raises the guard: a recreated log's next records are not replays (found by a review)", async () => {
      const { store } = await openSubject();
      const p = (id: string, offset: number, appendTime: number) => ({
        model: 'm',
        id,
        eventTime: 0,
        appendTime,
        offset,
        windowKey: 'w',
        payload: Buffer.from(`p ${id}`),
      });
      const source = 'predictions/0';
      const old = Array.from({ length: 10 }, (_, i) => p(`old${i}`, i, 100 + i));
      await store.applyPredictions(old, 1_000, source, { first: 0, last: 9, maxAppendTime: 109 });
      // The log restarts unnoticed (no restart flag); its first batch is shadow predictions only.
      expect(await store.applyPredictions([], 6_000, source, { first: 0, last: 1, maxAppendTime: 5_000 })).toEqual([]);
      // Its next records, stamped like those shadows, are new: pending, not duplicates.
      const next = [p('n0', 2, 5_000), p('n1', 3, 5_000)];
      const applied = await store.applyPredictions(next, 6_001, source, { first: 2, last: 3, maxAppendTime: 5_000 });
      expect(applied.map((x) => x.outcome)).toEqual(['pending', 'pending']);
    });

    it("records a future-dated record's time as the clock that applied it: a recreated log stamped later is not a replay", async () => {
      const { store, forget } = await openSubject();
      const hour = 3_600_000;
      const now = 1_700_000_000_000;
      const p = (id: string, offset: number, appendTime: number) => ({
        model: 'm',
        id,
        eventTime: now - hour,
        appendTime,
        offset,
        windowKey: 'w',
        payload: Buffer.from(`p ${id}`),
      });
      const outcomes = (a: ReadonlyArray<Applied<Buffer, Buffer, string>>) => a.map((x) => x.outcome);
      const source = 'predictions/0';
      // The old log: offsets 0..1, one record stamped by a producer clock an hour ahead.
      await store.applyPredictions([p('a', 0, now - 1_000), p('b', 1, now + hour)], now, source, {
        first: 0,
        last: 1,
        maxAppendTime: now + hour,
      });
      // Recreated ten minutes later (the group's commit on it set by an operator: no restart known).
      // Its record at offset 0 is stamped with the real time: newer than anything applied, so new.
      await forget({ model: 'm', id: 'c' });
      const later = now + 10 * 60_000;
      expect(
        outcomes(
          await store.applyPredictions([p('c', 0, later)], later, source, { first: 0, last: 0, maxAppendTime: later }),
        ),
      ).toEqual(['pending']);
    });

    for (const seed of [21, 22, 23]) {
      it(`random redeliveries, forgotten tombstones and recreated topics, seed ${seed}`, async () => {
        const r = seededUniform(seed);
        const { store: real, forget } = await openSubject();
        const model = new InMemoryJoinStore<Buffer, Buffer>(config);
        const ids = Array.from({ length: 12 }, (_, i) => `id-${i}`);
        // One log per source: what was produced (id, event time, Kafka timestamp), an incarnation
        // number bumped when the topic is recreated.
        interface Logged {
          readonly id: string;
          readonly eventTime: number;
          readonly appendTime: number;
        }
        const logs = new Map<string, { records: Logged[]; position: number }>();
        let clock = 1_000;
        const counted = new Map<string, number>(); // prediction id → first transitions (pending/joined)
        let now = 1_000;
        for (let step = 0; step < 250; step++) {
          now += 10;
          const side = r() < 0.5 ? 'predictions' : 'labels';
          const source = `${side}/0`;
          const log = logs.get(source) ?? { records: [], position: 0 };
          logs.set(source, log);
          const op = r();
          let restart = false;
          if (op < 0.05) {
            logs.set(source, { records: [], position: 0 }); // deleted and recreated: offsets from 0
            restart = r() < 0.5; // the consumer may or may not see the group's commits gone
            continue;
          }
          if (op < 0.15) {
            const ref = { model: 'm', id: ids[Math.floor(r() * ids.length)] as string };
            await forget(ref);
            model.states.delete(joinKey(ref));
            continue;
          }
          if (op < 0.25) {
            log.position = Math.floor(r() * (log.position + 1)); // an offset reset / redelivery
          }
          while (log.records.length < log.position + 5) {
            clock += Math.floor(r() * 3);
            log.records.push({
              id: ids[Math.floor(r() * ids.length)] as string,
              eventTime: Math.floor(r() * 500),
              // Now and then a producer clock ahead of the joiner's (the marker caps its time at now).
              appendTime: r() < 0.05 ? clock + 1_000 : clock,
            });
          }
          const n = 1 + Math.floor(r() * 4);
          const from = log.position;
          const batch = log.records.slice(from, from + n).map((x, k) => ({ ...x, offset: from + k }));
          log.position = from + batch.length;
          const span: OffsetSpan = {
            first: from,
            last: from + batch.length - 1,
            maxAppendTime: Math.max(...batch.map((b) => b.appendTime)),
            ...(restart ? { restart } : {}),
          };
          if (side === 'predictions') {
            // Now and then a batch of shadow predictions only: nothing to apply but its span.
            const shadow = r() < 0.1;
            const inputs = (shadow ? [] : batch).map((b) => ({
              model: 'm',
              ...b,
              windowKey: 'w',
              payload: Buffer.from(`p ${b.id}`),
            }));
            const a = await real.applyPredictions(inputs, now, source, span);
            const b = await model.applyPredictions(inputs, now, source, span);
            expect(
              a.map((x) => x.outcome),
              `step ${step}`,
            ).toEqual(b.map((x) => x.outcome));
            a.forEach((x, k) => {
              if (x.outcome === 'pending' || x.outcome === 'joined') {
                const id = inputs[k]?.id as string;
                counted.set(id, (counted.get(id) ?? 0) + 1);
              }
            });
          } else {
            const inputs = batch.map((b) => ({ model: 'm', ...b, payload: Buffer.from(`l ${b.id}`) }));
            const a = await real.applyLabels(inputs, now, source, span);
            const b = await model.applyLabels(inputs, now, source, span);
            expect(
              a.map((x) => x.outcome),
              `step ${step}`,
            ).toEqual(b.map((x) => x.outcome));
            const joined = a.filter((x) => x.emit !== undefined).map((x) => x.emit?.id);
            await real.ackJoined(
              joined.map((id) => ({ model: 'm', id: id as string })),
              now,
            );
            await model.ackJoined(
              joined.map((id) => ({ model: 'm', id: id as string })),
              now,
            );
          }
          expect(await real.pendingCount('w'), `step ${step}`).toBe(await model.pendingCount('w'));
        }
        expect(await real.scheduledCount()).toBe(await model.scheduledCount());
        expect(counted.size).toBeGreaterThan(0);
      });
    }

    it('requeues a window that failed to the back of the queue, unless it was marked again since', async () => {
      const store = await open();
      const prediction = (id: string, windowKey: string) => ({
        model: 'm',
        id,
        eventTime: 0,
        windowKey,
        payload: Buffer.from('x'),
      });
      await store.applyPredictions([prediction('a', 'w1')], 100, 'predictions/0');
      await store.applyPredictions([prediction('b', 'w2')], 100, 'predictions/0');
      const [w1, w2] = await store.dirtyWindows(10);
      expect([w1?.key, w2?.key]).toEqual(['w1', 'w2']);
      await store.requeueDirty('w1', w1!.mark);
      const after = await store.dirtyWindows(10);
      expect(after.map((d) => d.key)).toEqual(['w2', 'w1']);
      expect(after[1]!.mark).toBeGreaterThan(w2!.mark);
      // A stale mark moves nothing (the window was marked again by new data meanwhile).
      await store.requeueDirty('w2', w2!.mark - 1);
      expect((await store.dirtyWindows(10)).map((d) => d.key)).toEqual(['w2', 'w1']);
    });
  });
}
