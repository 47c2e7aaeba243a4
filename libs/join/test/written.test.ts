import { describe, expect, it } from 'vitest';
import { CLOCK_SKEW_MS } from '../src/state.js';
import { InMemoryJoinStore } from '../src/store.js';
import {
  labelAsksSink,
  labelCheckHorizon,
  mergeSinkLookups,
  predictionCheckHorizon,
  type SinkCandidate,
  type SinkCheckConfig,
  sinkLookup,
  sinkVerdict,
  type WrittenRow,
} from '../src/written.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
const NOW = Date.UTC(2026, 11, 6, 12);
// The label-joiner's defaults: 7 d max delay, 5 min grace, 2 h tombstones, 1 h event-time bound.
const c: SinkCheckConfig = { maxDelayMs: 7 * DAY, graceMs: 5 * MINUTE, tombstoneMs: 2 * HOUR, maxFutureMs: HOUR };

const prediction = (id: string, eventTime: number, replayed = false): SinkCandidate => ({
  kind: 'prediction',
  model: 'm',
  id,
  eventTime,
  replayed,
});
const label = (id: string, eventTime: number, replayed = false): SinkCandidate => ({
  kind: 'label',
  model: 'm',
  id,
  eventTime,
  replayed,
});

describe('which records are checked against the sink', () => {
  it('a prediction once its tombstone may be gone: event time ≤ now − tombstone TTL + future bound (+ skew); live traffic never', () => {
    const horizon = predictionCheckHorizon(NOW, c);
    expect(horizon).toBe(NOW - HOUR + CLOCK_SKEW_MS);
    // Read at w ≥ t − 1 h (a producer clock an hour ahead), tombstone written at or after w: it can
    // be gone an hour after t at the earliest, so t = now − 59 min is looked up...
    expect(sinkLookup(prediction('p', horizon), NOW, c)).toEqual({ model: 'm', id: 'p', from: horizon, to: horizon });
    // ...and a prediction of the last 59 minutes is not.
    expect(sinkLookup(prediction('p', horizon + 1), NOW, c)).toBeUndefined();
    expect(sinkLookup(prediction('p', NOW - 1_000), NOW, c)).toBeUndefined();
    // A replayed one always, by its own time.
    expect(sinkLookup(prediction('p', NOW, true), NOW, c)).toEqual({ model: 'm', id: 'p', from: NOW, to: NOW });
    // With tombstones no longer than the future bound, every prediction dated before now is.
    const short = { ...c, tombstoneMs: HOUR };
    expect(sinkLookup(prediction('p', NOW - 1_000), NOW, short)).toBeDefined();
  });

  it('a label read more than the grace after its event time, over the times its prediction can have expired at', () => {
    expect(labelCheckHorizon(NOW, c)).toBe(NOW - 5 * MINUTE + CLOCK_SKEW_MS);
    // A label published a second after its event time: its prediction cannot have expired yet.
    expect(sinkLookup(label('p', NOW - 1_000), NOW, c)).toBeUndefined();
    // A nightly batch: 12 h after the event. Its prediction (on time: ≥ l − 7 d) expired before now:
    // dated ≤ now − 7 d − grace.
    const l = NOW - 12 * HOUR;
    expect(sinkLookup(label('p', l), NOW, c)).toEqual({
      model: 'm',
      id: 'p',
      from: l - 7 * DAY,
      to: NOW - 7 * DAY - 5 * MINUTE + CLOCK_SKEW_MS,
    });
    // A replayed label: unbounded (its prediction's expired row, however late the label).
    expect(sinkLookup(label('p', NOW, true), NOW, c)).toEqual({ model: 'm', id: 'p' });
  });

  it('a label long past is looked up among predictions it can be on time for only: none dated after it + labelEarlyMs', () => {
    // A prediction dated more than an hour (the future bound) + the skew after the label is not its
    // own (onLabel: early), so its row must not decide the label (found by a review).
    const l = NOW - 30 * DAY;
    for (const tag of [undefined, 'L', 'E', 'X'] as const) {
      expect(sinkLookup(label('p', l), NOW, c, { tag })).toEqual({
        model: 'm',
        id: 'p',
        from: l - 7 * DAY,
        to: l + HOUR + CLOCK_SKEW_MS,
      });
    }
  });

  it('each (model, id) once, over the union of its records’ ranges; another model is another look-up', () => {
    const t = NOW - 3 * HOUR;
    const lookups = [
      prediction('a', t),
      prediction('a', t - 1_000),
      prediction('b', NOW),
      { ...prediction('a', t), model: 'n' },
      prediction('c', NOW, true),
      prediction('c', t),
    ].flatMap((r) => sinkLookup(r, NOW, c) ?? []);
    expect(mergeSinkLookups(lookups)).toEqual([
      { model: 'm', id: 'a', from: t - 1_000, to: t },
      { model: 'n', id: 'a', from: t, to: t },
      { model: 'm', id: 'c', from: t, to: NOW },
    ]);
    // An unbounded side stays unbounded.
    const labels = [label('a', NOW - DAY), label('a', NOW, true)].flatMap((r) => sinkLookup(r, NOW, c) ?? []);
    expect(mergeSinkLookups(labels)).toEqual([{ model: 'm', id: 'a' }]);
  });

  it('a label is left to its join state when that remembers its prediction: pending, joined (found by a review)', () => {
    // P: the label joins it or is late by its deadline, never expired-before-label; K re-emits; J
    // is a duplicate. Looking these up had read as far back as the labels' lag for nothing.
    for (const tag of ['P', 'K', 'J'] as const) expect(labelAsksSink(tag)).toBe(false);
    // Absent, a waiting label, expired: only the sink's row tells what became of the prediction.
    for (const tag of [undefined, 'L', 'E', 'X'] as const) expect(labelAsksSink(tag)).toBe(true);
  });

  it('with its state read: none when it answers; absent or waiting, only predictions whose expiry it can have forgotten; E/X the whole range (found by a review)', () => {
    const l = NOW - 12 * HOUR;
    const whole = { model: 'm', id: 'p', from: l - 7 * DAY, to: NOW - 7 * DAY - 5 * MINUTE + CLOCK_SKEW_MS };
    for (const tag of ['P', 'K', 'J'] as const) {
      expect(sinkLookup(label('p', l), NOW, c, { tag })).toBeUndefined();
      expect(sinkLookup(label('p', l, true), NOW, c, { tag })).toBeUndefined();
    }
    for (const tag of ['E', 'X'] as const) expect(sinkLookup(label('p', l), NOW, c, { tag })).toEqual(whole);
    // Absent or L: a prediction dated after now − 7 d − grace − 2 h that expired would still show
    // E or X (acknowledged no earlier than its expiry, tombstone 2 h): its row is an older
    // prediction's with the id used again, not the label's own, which may still come.
    const forgotten = { ...whole, to: NOW - 7 * DAY - 5 * MINUTE - 2 * HOUR + CLOCK_SKEW_MS };
    for (const tag of [undefined, 'L'] as const) {
      expect(sinkLookup(label('p', l), NOW, c, { tag })).toEqual(forgotten);
      // Read within grace + tombstone TTL (less the skew) of its event time: not looked up, it waits.
      const edge = NOW - 5 * MINUTE - 2 * HOUR + CLOCK_SKEW_MS;
      expect(sinkLookup(label('p', edge), NOW, c, { tag })).toEqual({ ...forgotten, from: edge - 7 * DAY });
      expect(sinkLookup(label('p', edge + 1), NOW, c, { tag })).toBeUndefined();
      // A replayed label stays unbounded; a live one is not looked up.
      expect(sinkLookup(label('p', l, true), NOW, c, { tag })).toEqual({ model: 'm', id: 'p' });
      expect(sinkLookup(label('p', NOW - 1_000), NOW, c, { tag })).toBeUndefined();
    }
    // Predictions ignore it.
    expect(sinkLookup(prediction('p', NOW - DAY), NOW, c, { tag: 'P' })).toEqual(
      sinkLookup(prediction('p', NOW - DAY), NOW, c),
    );
  });

  it('the in-memory store reads tags without a transition; an expired tombstone is absent', async () => {
    const store = new InMemoryJoinStore<string, string>({ maxDelayMs: HOUR, graceMs: 0, tombstoneMs: 10 });
    await store.applyPredictions([{ model: 'm', id: 'p', eventTime: 0, windowKey: 'w', payload: 'x' }], 0, 's');
    await store.applyLabels([{ model: 'm', id: 'l', eventTime: 0, payload: 'y' }], 0, 's');
    const refs = [
      { model: 'm', id: 'p' },
      { model: 'm', id: 'l' },
      { model: 'm', id: 'none' },
      { model: 'n', id: 'p' },
    ];
    expect(await store.stateTags(refs, 1)).toEqual(['P', 'L', undefined, undefined]);
    expect(await store.scheduledCount()).toBe(2);
    await store.expireDue(HOUR, 2, 10);
    await store.ackExpired([{ model: 'm', id: 'p' }], 3);
    expect(await store.stateTags(refs.slice(0, 1), 4)).toEqual(['X']);
    expect(await store.stateTags(refs.slice(0, 1), 13)).toEqual([undefined]);
  });
});

describe('what a record whose prediction the sink holds is', () => {
  const t = NOW - 8 * DAY;
  const rows = (id: string): WrittenRow[] =>
    id === 'joined'
      ? [{ labeled: true, predictionTime: t }]
      : id === 'expired'
        ? [{ labeled: false, predictionTime: t }]
        : [];
  /** The verdict as the caller gets it: from the record's own look-up (unbounded here). */
  const verdict = (r: SinkCandidate) => sinkVerdict(r, { model: r.model, id: r.id }, rows(r.id), 7 * DAY)?.verdict;

  it('a copy of a prediction, or a label of a joined one: sink-duplicate; replayed: replay-duplicate', () => {
    expect(verdict(prediction('joined', t))).toBe('sink-duplicate');
    expect(verdict(prediction('expired', t))).toBe('sink-duplicate');
    expect(verdict(label('joined', t + DAY))).toBe('sink-duplicate');
    expect(verdict(prediction('joined', t, true))).toBe('replay-duplicate');
    expect(verdict(label('expired', t + DAY, true))).toBe('replay-duplicate');
  });

  it('a label of an expired prediction: expired-before-label when on time by event time, else late', () => {
    expect(verdict(label('expired', t + 7 * DAY))).toBe('expired-before-label');
    expect(verdict(label('expired', t + 7 * DAY + 1))).toBe('late');
  });

  it('no row: the record takes its transition', () => {
    expect(verdict(prediction('never', t))).toBeUndefined();
  });

  it('only the rows within the record’s own bounds count: an id used again is another prediction', () => {
    const first = { labeled: false, predictionTime: t };
    const second = { labeled: true, predictionTime: t + DAY };
    const held = [first, second];
    // A copy of the first prediction matches its row, a copy of a third (new) one nothing.
    const copy = (at: number) =>
      sinkVerdict(prediction('p', at), sinkLookup(prediction('p', at), NOW, c)!, held, 7 * DAY);
    expect(copy(t)).toEqual({ verdict: 'sink-duplicate', row: first });
    expect(copy(t + DAY)).toEqual({ verdict: 'sink-duplicate', row: second });
    expect(copy(t + 2 * DAY)).toBeUndefined();
    // A label prefers a joined row within its range, else the latest it is on time for.
    const l = label('p', t + DAY);
    const range = { model: 'm', id: 'p', from: t - DAY, to: t + 2 * DAY };
    expect(sinkVerdict(l, range, held, 7 * DAY)).toEqual({ verdict: 'sink-duplicate', row: second });
    expect(sinkVerdict(l, { ...range, to: t }, held, 7 * DAY)).toEqual({ verdict: 'expired-before-label', row: first });
  });
});
