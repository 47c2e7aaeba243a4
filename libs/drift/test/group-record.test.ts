import { PoisonRecordError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import {
  checkGroupRecord,
  checkPartialsWindow,
  type GroupStart,
  type PartialsMessage,
  partialsGrownWarning,
  partialsWindowProblem,
} from '../src/index.js';

// Found by a scale-out review: instances of one group that differ on the partials topic's
// partition count or on the window size split or fused windows, silently.
const start: GroupStart = {
  group: 'p.drift-monitor',
  partialsTopic: 'p.drift.partials.v1',
  topicPartitions: 2,
  configuredPartitions: undefined,
  windowMs: 60_000,
};

describe('checkGroupRecord', () => {
  it("starts a group's first instance, and one that matches the record", () => {
    expect(checkGroupRecord(undefined, start)).toEqual({ ok: true });
    expect(checkGroupRecord({ partialsPartitions: 2, windowMs: 60_000 }, start)).toEqual({ ok: true });
  });

  it('refuses a partials topic grown past the count the group routes over, naming the topic and the variable', () => {
    const check = checkGroupRecord({ partialsPartitions: 2, windowMs: 60_000 }, { ...start, topicPartitions: 3 });
    expect(check).toMatchObject({ ok: false, field: 'DRIFTLINE_DRIFT_PARTIALS_PARTITIONS' });
    expect(check.ok ? '' : check.message).toMatch(
      /^the partials topic p\.drift\.partials\.v1 has 3 partitions, but group p\.drift-monitor routes its partials over 2 /,
    );
    expect(check.ok ? '' : check.message).toContain('new DRIFTLINE_DRIFT_GROUP');
  });

  it('refuses another window size than the one recorded', () => {
    const check = checkGroupRecord({ partialsPartitions: 2, windowMs: 60_000 }, { ...start, windowMs: 120_000 });
    expect(check).toMatchObject({ ok: false, field: 'DRIFTLINE_DRIFT_WINDOW' });
    expect(check.ok ? '' : check.message).toMatch(/^2m, but group p\.drift-monitor measures windows of 1m /);
  });

  it('warns, and starts, when DRIFTLINE_DRIFT_PARTIALS_PARTITIONS differs from an existing topic', () => {
    const check = checkGroupRecord({ partialsPartitions: 2, windowMs: 60_000 }, { ...start, configuredPartitions: 4 });
    expect(check.ok).toBe(true);
    expect(check.ok ? check.warning : '').toMatch(
      /^DRIFTLINE_DRIFT_PARTIALS_PARTITIONS is 4, but the partials topic p\.drift\.partials\.v1 has 2 partitions/,
    );
    expect(checkGroupRecord(undefined, { ...start, configuredPartitions: 2 })).toEqual({ ok: true });
  });

  it('names a grown topic to a running instance, and nothing else', () => {
    expect(partialsGrownWarning('t', 2, 2)).toBeUndefined();
    expect(partialsGrownWarning('t', 2, 3)).toMatch(
      /^the partials topic t now has 3 partitions, but this group routes/,
    );
  });
});

describe('partials of another window length', () => {
  const marker = (windowStart: number, windowEnd: number): PartialsMessage => ({
    type: 'closed',
    format: 'driftline.drift-partials/1',
    source: { topic: 'p.predictions.v1', partition: 1, partitions: 2 },
    windowStart,
    windowEnd,
    closedUntil: windowEnd,
    models: [],
  });

  it('are refused (a poison record) naming DRIFTLINE_DRIFT_WINDOW and both sizes; the own length passes', () => {
    expect(partialsWindowProblem(marker(0, 1_000), 1_000)).toBeUndefined();
    expect(checkPartialsWindow(marker(0, 1_000), 1_000)).toEqual(marker(0, 1_000));
    expect(partialsWindowProblem(marker(0, 2_000), 1_000)).toMatch(
      /^drift partials: a window of 2s from p\.predictions\.v1\[1\] \(window start 0\), this merge's DRIFTLINE_DRIFT_WINDOW is 1s: refused/,
    );
    expect(() => checkPartialsWindow(marker(2_000, 2_500), 1_000)).toThrow(PoisonRecordError);
    expect(() => checkPartialsWindow(marker(2_000, 2_500), 1_000)).toThrow(/a window of 500ms/);
  });
});
