import { buildNumericProfile, type ReferenceProfile } from '@driftline/stats';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { type ClosedWindow, PartitionWindows, referenceSet, type WindowedEvent } from '../src/index.js';

const ref = referenceSet(
  'm',
  'v1',
  new Map<string, ReferenceProfile>([['x', buildNumericProfile(Array.from({ length: 100 }, (_, i) => i))]]),
);
const resolve = (model: string, version: string) => (model === 'm' && version === 'v1' ? ref : undefined);
const spec = { sizeMs: 1000, latenessMs: 0 };

const event = (id: string, t: number, over: Partial<WindowedEvent> = {}): WindowedEvent => ({
  prediction_id: id,
  model: 'm',
  model_version: 'v1',
  event_time: t,
  features: { x: 1 },
  prediction: 0,
  predicted_class: null,
  ...over,
});

/** Window start → "events/late" over every partial of `windows` (a window emitted in parts adds up). */
function counts(windows: readonly ClosedWindow[]): Array<[number, string]> {
  const out = new Map<number, [number, number]>();
  for (const w of windows) {
    const [events, late] = out.get(w.windowStart) ?? [0, 0];
    out.set(w.windowStart, [
      events + w.partials.reduce((n, p) => n + p.events, 0),
      late + w.partials.reduce((n, p) => n + p.late, 0),
    ]);
  }
  return [...out].sort((a, b) => a[0] - b[0]).map(([s, [e, l]]) => [s, `${e}/${l}`]);
}

describe('PartitionWindows: re-sent predictions (recentIds)', () => {
  it('summarizes a prediction id once among the last recentIds summarized: the re-send is a duplicate', () => {
    const p = new PartitionWindows(spec, resolve, undefined, undefined, undefined, 100);
    expect(p.add(event('a', 100), 0)).toBe('added');
    expect(p.add(event('b', 200), 1)).toBe('added');
    expect(p.add(event('a', 100), 2)).toBe('duplicate');
    expect(p.add(event('a', 100), 3)).toBe('duplicate');
    expect(p.duplicateEvents).toBe(2);
    p.add(event('c', 1100), 4);
    expect(counts(p.closeReady().windows)).toEqual([[0, '2/0']]);
    // A duplicate has no effect of its own: the commit is where it was.
    expect(p.commitOffset(5)).toBe(4);
  });

  it('predictions merely sharing an id (a producer reusing "0") are all summarized, an exact re-send still once (found by a review)', () => {
    const p = new PartitionWindows(spec, resolve, undefined, undefined, undefined, 100);
    // 60 predictions of one window under id "0", each of its own entity and score. Before: the
    // first summarized, the other 59 taken for re-sends.
    const events = Array.from({ length: 60 }, (_, i) =>
      event('0', 100 + i, { entity_id: `e${i}`, features: { x: i }, prediction: i / 7 }),
    );
    expect(events.map((e, i) => p.add(e, i)).filter((o) => o !== 'added')).toEqual([]);
    // A call retried whole (the same record), or with its input (a new event time in the window).
    expect(p.add(events[7]!, 60)).toBe('duplicate');
    expect(p.add({ ...events[8]!, event_time: 900 }, 61)).toBe('duplicate');
    // The same id and entity with another output is another prediction: its score (its sign
    // alone too), or its class.
    expect(p.add({ ...events[9]!, features: { x: 1 }, prediction: 0.5 }, 62)).toBe('added');
    expect(p.add({ ...events[10]!, prediction: -events[10]!.prediction }, 63)).toBe('added');
    expect(p.add({ ...events[11]!, predicted_class: 'fraud' }, 64)).toBe('added');
    // One entity with distinct scores under one id: each summarized.
    expect(
      [0.25, 0.5, 0.75].map((s, i) => p.add(event('0', 200, { entity_id: 'same', prediction: s }), 65 + i)),
    ).toEqual(['added', 'added', 'added']);
    p.add(event('c', 1100), 68);
    expect(counts(p.closeReady().windows)).toEqual([[0, '66/0']]);
  });

  it('off at 0 (the default): every copy is summarized, as before', () => {
    const p = new PartitionWindows(spec, resolve);
    expect(p.add(event('a', 100), 0)).toBe('added');
    expect(p.add(event('a', 100), 1)).toBe('added');
  });

  it('checks and remembers only what it would summarize: late, ahead and unreferenced copies are handled as before', () => {
    const p = new PartitionWindows(spec, resolve, undefined, undefined, undefined, 100);
    expect(p.add(event('a', 100), 0)).toBe('added');
    p.add(event('b', 1100), 1); // window 0 closes
    // A re-send after its window closed is late, as any event of that window (its late count).
    expect(p.add(event('a', 100), 2)).toBe('late');
    // An unreferenced or refused event is not remembered: its re-send, once it resolves, is summarized once.
    expect(p.add(event('u', 1200, { model_version: 'v9' }), 3)).toBe('unreferenced');
    expect(p.add(event('u', 1200), 4)).toBe('added');
    // Ahead (past the clock's horizon): not summarized, not remembered; the copy read once the
    // clock reached its window is summarized.
    expect(p.add(event('h', 200_000), 5, 1_300)).toBe('ahead');
    expect(p.add(event('h', 200_000), 6, 199_000)).toBe('added');
    expect(p.duplicateEvents).toBe(0);
  });

  it('a duplicate moves the clock as any event: the windows closed never depend on the memory', () => {
    const p = new PartitionWindows({ ...spec, maxAheadMs: 100 }, resolve, undefined, undefined, undefined, 100);
    expect(p.add(event('a', 1500), 0, 1000)).toBe('added');
    expect(p.watermark()).toBe(1100); // the original reached its horizon only
    // Its copy, read later, reaches its event time: as the copy of a replay that took it for new.
    expect(p.add(event('a', 1500), 1, 1450)).toBe('duplicate');
    expect(p.watermark()).toBe(1500);
  });

  it('forgets the oldest id past recentIds; a repeat does not renew its place', () => {
    const p = new PartitionWindows(spec, resolve, undefined, undefined, undefined, 2);
    p.add(event('a', 100), 0);
    p.add(event('b', 100), 1);
    expect(p.add(event('a', 100), 2)).toBe('duplicate');
    p.add(event('c', 100), 3); // a is forgotten
    expect(p.add(event('a', 100), 4)).toBe('added');
  });

  it('the limit: copies further apart than recentIds are counted twice live, and a replay may recognise them', () => {
    const lateness = { sizeMs: 1000, latenessMs: 500 };
    const stream = [event('a', 100), event('x', 1200), event('b', 150), event('x', 1200), event('z', 1600)];
    const live = new PartitionWindows(lateness, resolve, undefined, undefined, undefined, 1);
    // b, summarized between x and its copy, pushed x out of a memory of one id.
    expect(stream.map((e, i) => live.add(e, i))).toEqual(['added', 'added', 'added', 'added', 'added']);
    expect(counts(live.closeReady().windows)).toEqual([[0, '2/0']]);
    // A new owner replays from the commit (window 1000's first offset): b is a replay of the
    // emitted window 0, not remembered, so x is still there when its copy comes.
    const replay = new PartitionWindows(
      lateness,
      resolve,
      { closedUntil: 1000, offset: 5, lateFrom: 4 },
      undefined,
      undefined,
      1,
    );
    expect(live.commitOffset(5)).toBe(1);
    expect(stream.slice(1).map((e, i) => replay.add(e, i + 1))).toEqual(['added', 'replayed', 'duplicate', 'added']);
  });

  it('a restart at any batch gives the windows of the uninterrupted run, re-sends within recentIds included', () => {
    const capacity = 16;
    for (let seed = 1; seed <= 40; seed++) {
      const rng = new SeededRandom(seed);
      // Mostly rising event times with stragglers (late ones among them); about one in four
      // records re-sends one of the last 10 records (same id and event time: a retried call).
      const events: WindowedEvent[] = [];
      for (let i = 0; events.length < 150; i++) {
        if (events.length > 0 && rng.int(4) === 0) {
          const copy = events[Math.max(0, events.length - 1 - rng.int(10))]!;
          // Half of the copies carry a later event time (a call retried with its input: `now`
          // drawn again), often in another window.
          events.push(rng.int(2) === 0 ? copy : { ...copy, event_time: Math.max(copy.event_time, i * 90) });
        } else {
          events.push(event(`p${i}`, Math.max(0, i * 90 - rng.int(2500))));
        }
      }
      const batches: number[][] = [];
      for (let i = 0; i < events.length; ) {
        const n = 1 + rng.int(6);
        batches.push(Array.from({ length: Math.min(n, events.length - i) }, (_, k) => i + k));
        i += n;
      }
      const windows = () => new PartitionWindows(spec, resolve, undefined, undefined, undefined, capacity);
      const end = (p: PartitionWindows) => {
        p.advanceTo(1e9);
        return p.closeReady().windows;
      };
      const live = windows();
      const all: ClosedWindow[] = [];
      for (const b of batches) {
        for (const i of b) live.add(events[i]!, i);
        all.push(...live.closeReady().windows);
      }
      all.push(...end(live));
      // Each id summarized once per window: the windows' events are those of the stream without
      // its copies in a window (a late copy is late, as its first would be).
      const once = new PartitionWindows(spec, resolve);
      const seen = new Set<string>();
      for (const [i, e] of events.entries()) {
        const key = `${Math.floor(e.event_time / spec.sizeMs)}/${e.prediction_id}`;
        if (seen.has(key)) continue;
        seen.add(key);
        once.add(e, i);
      }
      const events_ = (ws: readonly ClosedWindow[]) => counts(ws).map(([s, c]) => [s, c.split('/')[0]]);
      expect(events_(all), `seed ${seed}`).toEqual(events_(end(once)));
      expect(live.duplicateEvents, `seed ${seed}`).toBeGreaterThan(0);
      // A crash after batch `k`: what was emitted, the frontier saved with it, a replay from the
      // commit by a new owner whose memory starts empty.
      for (let k = 0; k < batches.length; k += 3) {
        const first = windows();
        const emitted: ClosedWindow[] = [];
        let saved: { closedUntil: number; offset: number; lateFrom: number } | undefined;
        let commit = 0;
        for (const b of batches.slice(0, k + 1)) {
          for (const i of b) first.add(events[i]!, i);
          const next = b.at(-1)! + 1;
          const flush = first.closeReady();
          emitted.push(...flush.windows);
          if (flush.windows.length > 0)
            saved = { closedUntil: flush.closedUntil, offset: next, lateFrom: first.lateFrom(flush.closedUntil, next) };
          commit = first.commitOffset(next);
        }
        const second = new PartitionWindows(spec, resolve, saved, undefined, undefined, capacity);
        for (const b of batches) {
          for (const i of b) if (i >= commit) second.add(events[i]!, i);
          emitted.push(
            ...second.closeReady().windows.filter((w) => saved === undefined || w.windowStart >= saved.closedUntil),
          );
        }
        emitted.push(...end(second));
        expect(counts(emitted), `seed ${seed}, crash after batch ${k}`).toEqual(counts(all));
      }
    }
  });

  it('ids are unique per model only: two models scoring one request under one id are both summarized (found by a review)', () => {
    const both = (model: string, version: string) =>
      (model === 'm' || model === 'n') && version === 'v1' ? ref : undefined;
    const p = new PartitionWindows(spec, both, undefined, undefined, undefined, 100);
    expect(p.add(event('r1', 100), 0)).toBe('added');
    expect(p.add(event('r1', 100, { model: 'n' }), 1)).toBe('added');
    expect(p.add(event('r1', 100, { model_version: 'v2' }), 2)).toBe('unreferenced');
    expect(p.add(event('r1', 100, { model: 'n' }), 3)).toBe('duplicate');
    p.advanceTo(2000);
    const models = p
      .closeReady()
      .windows.flatMap((w) => w.partials.map((q) => `${q.model}:${q.events}`))
      .sort();
    expect(models).toEqual(['m:1', 'n:1']);
  });

  it('names cannot run together into the key of another prediction (found by a review: a NUL in a version and an id)', () => {
    const any = () => ref;
    const p = new PartitionWindows(spec, any, undefined, undefined, undefined, 100);
    expect(p.add(event('x\u00001000\u0000y', 100), 0)).toBe('added');
    expect(p.add(event('y', 1100, { model_version: 'v1\u00000\u0000x' }), 1)).toBe('added');
  });

  it('an empty prediction id is no id: every such prediction is summarized (found by a review)', () => {
    const p = new PartitionWindows(spec, resolve, undefined, undefined, undefined, 100);
    expect([0, 1, 2].map((i) => p.add(event('', 100 + i), i))).toEqual(['added', 'added', 'added']);
    expect(p.duplicateEvents).toBe(0);
  });

  it('a copy re-sent with a later event time in another window counts there, live and on replay alike (found by a review)', () => {
    // a@900, x@1000, a@1050 (the call retried with its input: a new event time), y@2100.
    const stream = [event('a', 900), event('x', 1000), event('a', 1050), event('y', 2100)];
    const live = new PartitionWindows(spec, resolve, undefined, undefined, undefined, 100);
    expect(stream.map((e, i) => live.add(e, i))).toEqual(['added', 'added', 'added', 'added']);
    const liveWindows = counts(live.closeReady().windows);
    // A crash after offset 1 (window 0 emitted, commit at 1): the new owner's memory starts empty.
    const first = new PartitionWindows(spec, resolve, undefined, undefined, undefined, 100);
    first.add(stream[0]!, 0);
    first.add(stream[1]!, 1);
    const flush = first.closeReady();
    const saved = { closedUntil: flush.closedUntil, offset: 2, lateFrom: first.lateFrom(flush.closedUntil, 2) };
    const commit = first.commitOffset(2);
    const replay = new PartitionWindows(spec, resolve, saved, undefined, undefined, 100);
    for (let i = commit; i < stream.length; i++) replay.add(stream[i]!, i);
    const replayed = [...flush.windows, ...replay.closeReady().windows];
    expect(counts(replayed)).toEqual(liveWindows);
    expect(liveWindows).toEqual([
      [0, '1/0'],
      [1000, '2/0'],
    ]);
  });
});
