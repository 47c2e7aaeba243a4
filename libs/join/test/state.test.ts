import { seededUniform } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  expiryClock,
  FIRST_SEEN,
  InMemoryJoinStore,
  type JoinConfig,
  joinKey,
  type LogEvent,
  offlineJoin,
  onAck,
  onExpire,
  onLabel,
  onPrediction,
  parseJoinKey,
} from '../src/index.js';

const config: JoinConfig = { maxDelayMs: 1_000, graceMs: 100, tombstoneMs: 500 };
const pred = (id: string, eventTime: number) => ({ model: 'm', id, eventTime, windowKey: 'w', payload: `p:${id}` });
const label = (id: string, eventTime: number, value = 'l') => ({
  model: 'm',
  id,
  eventTime,
  payload: `${value}:${id}`,
});

describe('join transitions', () => {
  it('prediction first, then label: pending → joined (K) → acked (J) → duplicates', () => {
    const t1 = onPrediction<string, string>(undefined, pred('a', 0), 10, config);
    expect(t1).toMatchObject({ outcome: 'pending', schedule: 1_000, pendingDelta: { windowKey: 'w', delta: 1 } });
    const t2 = onLabel(t1.state ?? undefined, label('a', 900), 20, config);
    expect(t2).toMatchObject({
      outcome: 'joined',
      schedule: 'remove',
      pendingDelta: { delta: -1 },
      emit: { model: 'm', id: 'a', prediction: 'p:a', label: 'l:a', joinedAt: 20 },
    });
    // Replayed before the ack: the same row again (the sink deduplicates).
    expect(onLabel(t2.state ?? undefined, label('a', 900), 30, config)).toMatchObject({
      outcome: 'replayed',
      emit: { joinedAt: 20 },
    });
    expect(onPrediction(t2.state ?? undefined, pred('a', 0), 30, config)).toMatchObject({ outcome: 'replayed' });
    const t3 = onAck(t2.state ?? undefined, config);
    expect(t3).toMatchObject({ outcome: 'acked', state: { tag: 'J' }, ttlMs: 500, dirty: 'w' });
    expect(onLabel(t3.state ?? undefined, label('a', 900), 40, config).outcome).toBe('duplicate');
    expect(onPrediction(t3.state ?? undefined, pred('a', 0), 40, config).outcome).toBe('duplicate');
  });

  it('label first waits; the earliest of two waiting labels wins; then the prediction joins', () => {
    const t1 = onLabel<string, string>(undefined, label('a', 500, 'second'), 0, config);
    expect(t1).toMatchObject({ outcome: 'waiting', schedule: 1_500 });
    const t2 = onLabel(t1.state ?? undefined, label('a', 400, 'first'), 0, config);
    expect(t2).toMatchObject({ outcome: 'waiting-duplicate', state: { tag: 'L', eventTime: 400 } });
    expect(onLabel(t2.state ?? undefined, label('a', 450), 0, config)).toEqual({ outcome: 'waiting-duplicate' });
    const t3 = onPrediction(t2.state ?? undefined, pred('a', 0), 5, config);
    expect(t3).toMatchObject({ outcome: 'joined', emit: { label: 'first:a' }, schedule: 'remove' });
    expect(t3.pendingDelta).toBeUndefined();
  });

  it('labels later than the maximum delay never join, whatever the order', () => {
    const p = onPrediction<string, string>(undefined, pred('a', 0), 0, config);
    expect(onLabel(p.state ?? undefined, label('a', 1_001), 0, config).outcome).toBe('late');
    const l = onLabel<string, string>(undefined, label('a', 1_001), 0, config);
    expect(onPrediction(l.state ?? undefined, pred('a', 0), 0, config)).toMatchObject({
      outcome: 'pending-late-label',
      state: { tag: 'P' },
      schedule: 1_000,
    });
  });

  it('a label dated before its prediction could be labeled never joins it, whatever the order (found by a review)', () => {
    // labelEarlyMs: maxFutureMs (0 here) + CLOCK_SKEW_MS (60 s); reach: maxDelayMs + that.
    const c: JoinConfig = { ...config, maxFutureMs: 0 };
    const t = 1_000_000;
    const p = onPrediction<string, string>(undefined, pred('a', t), 0, c);
    // Within the clock allowance before the prediction: joins.
    expect(onLabel(p.state ?? undefined, label('a', t - 60_000), 0, c).outcome).toBe('joined');
    // Earlier: `early`, the prediction stays pending (no state change) and joins its own label after.
    const early = onLabel(p.state ?? undefined, label('a', t - 60_001, 'old'), 0, c);
    expect(early).toEqual({ outcome: 'early' });
    expect(onLabel(p.state ?? undefined, label('a', t + 5, 'own'), 0, c)).toMatchObject({
      outcome: 'joined',
      emit: { label: 'own:a' },
    });
    // Label first: the prediction does not take it, it is pending (first seen: its tally counts).
    const l = onLabel<string, string>(undefined, label('a', t - 60_001), 0, c);
    expect(onPrediction(l.state ?? undefined, pred('a', t), 0, c)).toMatchObject({
      outcome: 'pending-early-label',
      state: { tag: 'P', deadline: t + 1_000 },
      schedule: t + 1_000,
      pendingDelta: { delta: 1 },
    });
    expect(FIRST_SEEN.has('pending-early-label')).toBe(true);
    // Without maxFutureMs the default bound (an hour) applies.
    const d = onPrediction<string, string>(undefined, pred('a', 10_000_000), 0, config).state ?? undefined;
    expect(onLabel(d, label('a', 10_000_000 - 3_660_000), 0, config).outcome).toBe('joined');
    expect(onLabel(d, label('a', 10_000_000 - 3_660_001), 0, config).outcome).toBe('early');
  });

  it('two waiting labels further apart than one prediction can reach: the later is kept (a placeholder date, an old label)', () => {
    const c: JoinConfig = { ...config, maxFutureMs: 0 }; // reach: 1_000 + 60_000
    const t = 1_000_000;
    // The real label first, then one dated long before: the real one stays.
    const real = onLabel<string, string>(undefined, label('a', t - 100, 'real'), 0, c);
    const sentinel = onLabel(real.state ?? undefined, label('a', 0, 'sentinel'), 0, c);
    expect(sentinel).toEqual({ outcome: 'waiting-duplicate' });
    expect(onPrediction(real.state ?? undefined, pred('a', t), 5, c)).toMatchObject({
      outcome: 'joined',
      emit: { label: 'real:a' },
    });
    // The other order: the later replaces it.
    const first = onLabel<string, string>(undefined, label('a', 0, 'sentinel'), 0, c);
    const second = onLabel(first.state ?? undefined, label('a', t - 100, 'real'), 0, c);
    expect(second).toMatchObject({ outcome: 'waiting-duplicate', state: { tag: 'L', eventTime: t - 100 } });
    expect(onPrediction(second.state ?? undefined, pred('a', t), 5, c)).toMatchObject({
      outcome: 'joined',
      emit: { label: 'real:a' },
    });
    // Within reach, the earliest still wins.
    const near = onLabel(first.state ?? undefined, label('a', 61_000, 'later'), 0, c);
    expect(near).toEqual({ outcome: 'waiting-duplicate' });
  });

  it('expiry: due pending → E (then X on ack), waiting label dropped, others only unscheduled', () => {
    const p = onPrediction<string, string>(undefined, pred('a', 0), 0, config).state ?? undefined;
    expect(onExpire(p, 1_000, 999, 5, config).outcome).toBe('not-due');
    const e = onExpire(p, 1_000, 1_000, 5, config);
    expect(e).toMatchObject({ outcome: 'expiring', state: { tag: 'E', expiredAt: 5 }, pendingDelta: { delta: -1 } });
    expect(onLabel(e.state ?? undefined, label('a', 10), 6, config).outcome).toBe('late');
    expect(onAck(e.state ?? undefined, config)).toMatchObject({ state: { tag: 'X' } });
    const l = onLabel<string, string>(undefined, label('b', 0), 0, config).state ?? undefined;
    expect(onExpire(l, 1_000, 1_000, 1, config)).toMatchObject({ outcome: 'orphan-label', state: null });
    expect(onExpire(undefined, 0, 0, 1, config).outcome).toBe('stale');
  });

  it('the expiry clock is the slowest source, never beyond wall time, minus grace', () => {
    const now = 100_000;
    const at = { reportedAt: now };
    // Every source caught up: wall time, held only by the oldest catch-up.
    expect(
      expiryClock(
        now,
        [
          { source: 'p/0', caughtUpAt: now - 2_000, watermark: now - 60_000, ...at },
          { source: 'l/0', caughtUpAt: now - 1_000, ...at },
        ],
        100,
      ),
    ).toEqual({ clock: now - 2_000, cutoff: now - 2_100, heldBy: 'p/0', forgotten: [] });
    // A label partition with a backlog since an outage holds the clock at what it has applied, even
    // though the prediction partitions (and another label partition) are far ahead.
    const backlog = [
      { source: 'p/0', caughtUpAt: now, watermark: now - 10, ...at },
      { source: 'l/0', caughtUpAt: now, ...at },
      { source: 'l/1', caughtUpAt: now - 50_000, watermark: now - 40_000, ...at },
    ];
    expect(expiryClock(now, backlog, 100)).toEqual({
      clock: now - 40_000,
      cutoff: now - 40_100,
      heldBy: 'l/1',
      forgotten: [],
    });
    // Event times ahead of wall time never move the clock past it.
    expect(expiryClock(now, [{ source: 'p/0', watermark: now + 5_000, ...at }], 100).clock).toBe(now);
    // A source with neither (a backlog it has not started on, on a fresh store) holds everything.
    expect(expiryClock(now, [...backlog, { source: 'l/2', ...at }], 100)).toMatchObject({
      cutoff: Number.NEGATIVE_INFINITY,
      heldBy: 'l/2',
    });
    // Nothing known: nothing is due.
    expect(expiryClock(now, [], 100).cutoff).toBe(Number.NEGATIVE_INFINITY);
    // A source without a report for longer than forgetMs no longer holds the clock.
    expect(
      expiryClock(now, [...backlog.slice(0, 2), { source: 'l/1', watermark: 0, reportedAt: now - 3_601_000 }], 100),
    ).toEqual({
      clock: now,
      cutoff: now - 100,
      heldBy: 'p/0',
      forgotten: ['l/1'],
    });
  });
});

describe('in-memory store over random interleavings equals the offline join', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`seed ${seed}`, async () => {
      const r = seededUniform(seed);
      const log: LogEvent[] = [];
      for (let i = 0; i < 200; i++) {
        const id = `p${i}`;
        const t = Math.floor(r() * 10_000);
        log.push({ type: 'prediction', id, eventTime: t });
        if (r() < 0.2) log.push({ type: 'prediction', id, eventTime: t });
        const kind = r();
        if (kind < 0.6) {
          const l = { type: 'label' as const, id, eventTime: t + Math.floor(r() * 1_000), label: i % 2 };
          log.push(l);
          if (r() < 0.3) log.push(l);
        } else if (kind < 0.75) {
          log.push({ type: 'label', id, eventTime: t + 1_001 + Math.floor(r() * 1_000), label: 1 });
        } else if (kind < 0.85) {
          // Dated before the prediction could be labeled (beyond labelEarlyMs: 60 s here): never
          // joins; with an on-time label too, that one joins.
          log.push({ type: 'label', id, eventTime: t - 61_001 - Math.floor(r() * 1_000_000), label: 1 });
          if (r() < 0.5) log.push({ type: 'label', id, eventTime: t - Math.floor(r() * 60_000), label: 0 });
        }
      }
      for (let i = log.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [log[i], log[j]] = [log[j]!, log[i]!];
      }
      const store = new InMemoryJoinStore<number, number>({
        maxDelayMs: 1_000,
        graceMs: 0,
        tombstoneMs: 1e12,
        maxFutureMs: 0,
      });
      const now = 0; // no wall-clock expiry while the log is applied
      const rows = new Map<string, number>();
      for (const e of log) {
        const [applied] =
          e.type === 'prediction'
            ? await store.applyPredictions(
                [{ model: 'm', id: e.id, eventTime: e.eventTime, windowKey: 'w', payload: e.eventTime }],
                now,
                'predictions/0',
              )
            : await store.applyLabels(
                [{ model: 'm', id: e.id, eventTime: e.eventTime, payload: e.label }],
                now,
                'labels/0',
              );
        if (applied?.emit !== undefined) {
          rows.set(applied.emit.id, applied.emit.label);
          if (r() < 0.7) await store.ackJoined([applied.emit], now);
        }
      }
      const expected = offlineJoin(log, 1_000, 60_000);
      expect(new Map([...rows].sort())).toEqual(
        new Map([...expected.joined].map(([id, j]): [string, number] => [id, j.label]).sort()),
      );
      expect(await store.pendingCount('w')).toBe(expected.unlabeled.size);
      // Expire everything: the unlabeled predictions go out, once.
      const summary = await store.expireDue(1e9, 1e9, 10_000);
      expect(summary.counts.expiring).toBe(expected.unlabeled.size);
      const out = await store.unackedExpired(10_000);
      expect(new Set(out.map((o) => o.id))).toEqual(new Set(expected.unlabeled.keys()));
      await store.ackExpired(
        out.map((o) => ({ model: o.model, id: o.id })),
        1e9,
      );
      expect(await store.unackedExpired(10_000)).toEqual([]);
      expect(await store.pendingCount('w')).toBe(0);
      expect((await store.expireDue(1e9, 1e9, 10_000)).counts.expiring).toBe(0);
    });
  }
});

describe('join keys', () => {
  it('joinKey is injective and parseJoinKey reverses it', () => {
    const refs = [
      { model: 'a', id: 'b:c' },
      { model: 'a:b', id: 'c' },
      { model: 'm"\n', id: '"x"\n' },
      { model: '', id: '' },
    ];
    const keys = refs.map(joinKey);
    expect(new Set(keys).size).toBe(refs.length);
    expect(keys.map(parseJoinKey)).toEqual(refs);
    expect(parseJoinKey('id-1')).toBeUndefined();
    expect(parseJoinKey('["a"]')).toBeUndefined();
    expect(parseJoinKey('["a",1]')).toBeUndefined();
  });
});
