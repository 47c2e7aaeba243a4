import { buildNumericProfile, type NumericSummary } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import {
  decodePartials,
  flushMessages,
  MergeState,
  measuredOnWritten,
  measuredPart,
  mergeGroup,
  type PartialsMessage,
  PartitionWindows,
  type ReferenceSet,
  referenceSet,
  wholeWindow,
} from '../src/index.js';

// The reference of (m, v1) re-stored (`driftline reference`): two ids for one version.
const grid = (shift: number) => buildNumericProfile(Array.from({ length: 100 }, (_, i) => i + shift));
const [small, large] = [
  referenceSet('m', 'v1', new Map([['x', grid(0)]])),
  referenceSet('m', 'v1', new Map([['x', grid(0.5)]])),
].sort((a, b) => (a.referenceId < b.referenceId ? -1 : 1)) as [ReferenceSet, ReferenceSet];

/** What one source partition sends for window 0 when its windows were opened on `ref`. */
function sourceOn(ref: ReferenceSet, source: number, events: number): PartialsMessage[] {
  const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, () => ref);
  const add = (t: number, offset: number) =>
    p.add(
      { model: 'm', model_version: 'v1', event_time: t, features: { x: offset }, prediction: 0, predicted_class: null },
      offset,
    );
  for (let i = 0; i < events; i++) add(100 + i, i);
  add(10_000, events);
  return flushMessages({ topic: 't', partition: source, partitions: 2 }, p.closeReady(), 1000, 1).map((m) =>
    decodePartials(m.value),
  );
}

function window0(messages: readonly PartialsMessage[]) {
  const m = new MergeState({ idleTimeoutMs: 60_000 }, 0);
  for (const [offset, msg] of messages.entries()) m.add(msg, offset, 1);
  const w0 = m.ready(1).complete.find((w) => w.windowStart === 0);
  expect(w0).toBeDefined();
  return w0!;
}

describe('merge: a window its sources summarised on different references', () => {
  it('is one group per (model, version): drift on the part with the most events, the other set aside', () => {
    const a = sourceOn(large, 0, 3);
    const b = sourceOn(small, 1, 2);
    for (const order of [
      [...a, ...b],
      [...b, ...a],
    ]) {
      const w = window0(order);
      expect(w.groups).toHaveLength(1);
      const g = w.groups[0]!;
      expect([g.referenceId, g.events, g.partials.length]).toEqual([large.referenceId, 3, 1]);
      expect(g.setAside.map((p) => [p.referenceId, p.events])).toEqual([[small.referenceId, 2]]);
      expect((mergeGroup(g, large).get('x') as NumericSummary).count).toBe(3);
      // Data quality takes every partial of the window.
      const whole = wholeWindow(g);
      expect([whole.events, whole.partials.length]).toEqual([5, 2]);
    }
  });

  it('on equal events, chooses the smaller reference id, whichever source arrives first', () => {
    const a = sourceOn(large, 0, 2);
    const b = sourceOn(small, 1, 2);
    expect(window0([...a, ...b]).groups[0]!.referenceId).toBe(small.referenceId);
    expect(window0([...b, ...a]).groups[0]!.referenceId).toBe(small.referenceId);
    const parts = [
      { referenceId: 'b', partials: [], events: 4, late: 0 },
      { referenceId: 'a', partials: [], events: 4, late: 9 },
      { referenceId: 'c', partials: [], events: 5, late: 0 },
    ];
    expect(measuredPart(parts).referenceId).toBe('c');
    expect(measuredPart(parts.slice(0, 2)).referenceId).toBe('a');
  });

  it('a reference the window was already written on wins while the window has a part on it', () => {
    const parts = [
      { referenceId: 'a', partials: [], events: 4, late: 0 },
      { referenceId: 'b', partials: [], events: 6, late: 0 },
      { referenceId: 'c', partials: [], events: 5, late: 0 },
    ];
    expect(measuredPart(parts, ['a']).referenceId).toBe('a');
    expect(measuredPart(parts, ['z', 'c']).referenceId).toBe('c');
    // Several written (duplicates from before): the usual rule among them. None of the parts: as before.
    expect(measuredPart(parts, ['a', 'c']).referenceId).toBe('c');
    expect(measuredPart(parts, ['z']).referenceId).toBe('b');
    // A completed window measured again on the written one: the same parts, the others set aside.
    const g = window0([...sourceOn(large, 0, 3), ...sourceOn(small, 1, 2)]).groups[0]!;
    const again = measuredOnWritten(g, [small.referenceId]);
    expect([again.model, again.version, again.referenceId, again.events]).toEqual(['m', 'v1', small.referenceId, 2]);
    expect(again.setAside.map((p) => [p.referenceId, p.events])).toEqual([[large.referenceId, 3]]);
    expect((mergeGroup(again, small).get('x') as NumericSummary).count).toBe(2);
    expect(wholeWindow(again).events).toBe(5);
  });

  it('one reference: nothing set aside, the whole window is the measured part', () => {
    const g = window0([...sourceOn(small, 0, 2), ...sourceOn(small, 1, 3)]).groups[0]!;
    expect([g.referenceId, g.events, g.partials.length, g.setAside]).toEqual([small.referenceId, 5, 2, []]);
    expect(wholeWindow(g).events).toBe(5);
  });
});
