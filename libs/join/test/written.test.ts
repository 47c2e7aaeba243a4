import { describe, expect, it } from 'vitest';
import { joinKey } from '../src/state.js';
import {
  CLOCK_SKEW_MS,
  labelCheckHorizon,
  predictionCheckHorizon,
  type SinkCandidate,
  type SinkCheckConfig,
  sinkLookup,
  sinkLookups,
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

  it('each (model, id) once, over the union of its records’ ranges; another model is another look-up', () => {
    const t = NOW - 3 * HOUR;
    expect(
      sinkLookups(
        [
          prediction('a', t),
          prediction('a', t - 1_000),
          prediction('b', NOW),
          { ...prediction('a', t), model: 'n' },
          prediction('c', NOW, true),
          prediction('c', t),
        ],
        NOW,
        c,
      ),
    ).toEqual([
      { model: 'm', id: 'a', from: t - 1_000, to: t },
      { model: 'n', id: 'a', from: t, to: t },
      { model: 'm', id: 'c', from: t, to: NOW },
    ]);
    // An unbounded side stays unbounded.
    expect(sinkLookups([label('a', NOW - DAY), label('a', NOW, true)], NOW, c)).toEqual([{ model: 'm', id: 'a' }]);
  });
});

describe('what a record whose prediction the sink holds is', () => {
  const t = NOW - 8 * DAY;
  const written = new Map<string, WrittenRow>([
    [joinKey({ model: 'm', id: 'joined' }), { labeled: true, predictionTime: t }],
    [joinKey({ model: 'm', id: 'expired' }), { labeled: false, predictionTime: t }],
  ]);

  it('a copy of a prediction, or a label of a joined one: sink-duplicate; replayed: replay-duplicate', () => {
    expect(sinkVerdict(prediction('joined', t), written, 7 * DAY)).toBe('sink-duplicate');
    expect(sinkVerdict(prediction('expired', t), written, 7 * DAY)).toBe('sink-duplicate');
    expect(sinkVerdict(label('joined', t + DAY), written, 7 * DAY)).toBe('sink-duplicate');
    expect(sinkVerdict(prediction('joined', t, true), written, 7 * DAY)).toBe('replay-duplicate');
    expect(sinkVerdict(label('expired', t + DAY, true), written, 7 * DAY)).toBe('replay-duplicate');
  });

  it('a label of an expired prediction: expired-before-label when on time by event time, else late', () => {
    expect(sinkVerdict(label('expired', t + 7 * DAY), written, 7 * DAY)).toBe('expired-before-label');
    expect(sinkVerdict(label('expired', t + 7 * DAY + 1), written, 7 * DAY)).toBe('late');
  });

  it('no row, or another model’s: the record takes its transition', () => {
    expect(sinkVerdict(prediction('never', t), written, 7 * DAY)).toBeUndefined();
    expect(sinkVerdict({ ...label('joined', t), model: 'n' }, written, 7 * DAY)).toBeUndefined();
  });
});
