import { PoisonRecordError } from '@driftline/core';
import {
  buildCategoricalProfile,
  buildNumericProfile,
  categoricalBins,
  EXACT_SUM_LIMBS,
  type NumericSummary,
  type ReferenceProfile,
} from '@driftline/stats';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  alertId,
  buildAlerts,
  type ClosedWindow,
  DEFAULT_THRESHOLDS,
  decodePartials,
  featureResults,
  flushMessages,
  isClosed,
  MAX_BORROWED_VERSIONS_PER_MODEL,
  MergeState,
  mergeGroup,
  nextOpenWindowStart,
  type PartialsMessage,
  PartitionWindows,
  PREDICTION_FEATURE,
  pairStateBytes,
  type ReferenceSet,
  referenceSet,
  routeModel,
  WATERMARK_MAX_AHEAD_MS,
  type WindowedEvent,
  windowStartOf,
  windowVerdict,
} from '../src/index.js';

function normals(n: number, mean: number, seed: number): number[] {
  const rng = new SeededRandom(seed);
  return Array.from({ length: n }, () => mean + rng.normal());
}

const x = buildNumericProfile(normals(2000, 0, 1), { fineBins: 100 });
const color = buildCategoricalProfile(Array.from({ length: 300 }, (_, i) => ['red', 'green', 'blue'][i % 3]!));
const pred = buildNumericProfile(normals(2000, 0.5, 2), { fineBins: 100 });
const ref = referenceSet(
  'm',
  'v1',
  new Map<string, ReferenceProfile>([
    ['x', x],
    ['color', color],
    [PREDICTION_FEATURE, pred],
  ]),
);
const resolve = (model: string, version: string) => (model === 'm' && version === 'v1' ? ref : undefined);

function event(t: number, xv: number | null = 0, over: Partial<WindowedEvent> = {}): WindowedEvent {
  return {
    model: 'm',
    model_version: 'v1',
    event_time: t,
    features: { x: xv, color: 'red' },
    prediction: 0.5,
    predicted_class: null,
    ...over,
  };
}

describe('windows', () => {
  it('assigns windows by floor, start inclusive, end exclusive, negative times too', () => {
    expect(windowStartOf(0, 1000)).toBe(0);
    expect(windowStartOf(999, 1000)).toBe(0);
    expect(windowStartOf(1000, 1000)).toBe(1000);
    expect(windowStartOf(-1, 1000)).toBe(-1000);
    expect(isClosed(0, 1000, 999)).toBe(false);
    expect(isClosed(0, 1000, 1000)).toBe(true);
    expect(nextOpenWindowStart(1000, 1000)).toBe(1000);
    expect(nextOpenWindowStart(1999, 1000)).toBe(1000);
  });
});

describe('PartitionWindows (stage 1)', () => {
  it('closes a window only once the watermark (max event time - lateness) passes its end', () => {
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 200 }, resolve);
    expect(p.add(event(100), 0)).toBe('added');
    expect(p.add(event(1100), 1)).toBe('added');
    expect(p.closeReady().windows).toEqual([]); // watermark 900 < 1000
    p.add(event(1199), 2);
    expect(p.closeReady().windows).toEqual([]); // watermark 999
    p.add(event(1200), 3);
    const closed = p.closeReady().windows; // watermark 1000
    expect(closed.map((w) => w.windowStart)).toEqual([0]);
    expect(closed[0]!.partials[0]!.events).toBe(1);
    expect(Object.keys(closed[0]!.partials[0]!.summaries).sort()).toEqual([PREDICTION_FEATURE, 'color', 'x']);
    expect(p.openWindows()).toBe(1);
  });

  /** Own references for `own` versions of `models`; any other version of them borrows its model's 'v1' (the promoted one). */
  function promotedFallback(models: readonly string[], own: readonly string[]) {
    const sets = new Map<string, ReferenceSet>();
    const profiles = new Map<string, ReferenceProfile>([
      ['x', x],
      ['color', color],
      [PREDICTION_FEATURE, pred],
    ]);
    for (const m of models) for (const v of own) sets.set(`${m}/${v}`, referenceSet(m, v, profiles));
    return (model: string, version: string) => sets.get(`${model}/${version}`) ?? sets.get(`${model}/v1`);
  }

  it('stops a flood of invented versions at MAX_BORROWED_VERSIONS_PER_MODEL per model and window, with the reason, refused for the whole window (found by a review: a byte budget admitted a refused one mid-window)', () => {
    const k = MAX_BORROWED_VERSIONS_PER_MODEL;
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 500 }, promotedFallback(['m', 'n'], ['v1']));
    let offset = 0;
    const flood = (t: number, model: string, from: number, to: number) =>
      Array.from({ length: to - from }, (_, i) =>
        p.add(event(t, 0, { model, model_version: `invented-${from + i}` }), offset++),
      );
    const w0 = flood(100, 'm', 0, 50);
    expect(w0.filter((o) => o === 'added')).toHaveLength(k);
    expect(w0.slice(k).every((o) => o === 'refused')).toBe(true);
    expect(p.refusedEvents).toBe(50 - k);
    expect(p.refusal('m', 'invented-49')).toBe(
      `window 1970-01-01T00:00:00.000Z already measures ${k} versions of model "m" against another version's reference (version "v1"'s), the most one window takes (the drift-monitor's DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS; versions with a reference of their own are not limited); model "m" version "invented-49" is not counted`,
    );
    // The version with its own reference, a pair the window holds, and another model's own quota still count.
    expect(p.add(event(150, 0), offset++)).toBe('added');
    expect(p.add(event(160, 0, { model_version: 'invented-0' }), offset++)).toBe('added');
    expect(flood(170, 'n', 0, k + 1).filter((o) => o === 'added')).toHaveLength(k);
    // The next window counts its own borrowed versions; while both are open, and after window 0
    // closed, a version refused in a window stays refused there.
    expect(flood(1100, 'm', k, k + 1)).toEqual(['added']);
    expect(flood(300, 'm', k, k + 1)).toEqual(['refused']);
    expect(flood(1100, 'm', 100, 100 + k)).toEqual([...Array(k - 1).fill('added'), 'refused']);
    expect(p.add(event(1600, 0), offset++)).toBe('added');
    const [closed0] = p.closeReady().windows;
    expect(closed0!.windowStart).toBe(0);
    expect(flood(1700, 'm', 200, 201)).toEqual(['refused']); // window 0 closing freed nothing in window 1
    expect(flood(1700, 'm', k, k + 1)).toEqual(['added']); // a pair window 1 holds
    const versions = (w: ClosedWindow, model: string) =>
      w.partials.filter((x) => x.model === model && x.version !== 'v1').map((x) => x.version);
    expect(versions(closed0!, 'm')).toEqual(Array.from({ length: k }, (_, i) => `invented-${i}`));
    expect(versions(closed0!, 'n')).toHaveLength(k);
    p.advanceTo(10_000);
    const [closed1] = p.closeReady().windows;
    expect(versions(closed1!, 'm')).toEqual([
      `invented-${k}`,
      ...Array.from({ length: k - 1 }, (_, i) => `invented-${100 + i}`),
    ]);
    expect(closed1!.partials.find((x) => x.version === `invented-${k}`)!.events).toBe(2);
  });

  it('never refuses versions with a reference of their own: 50 models × 4 versions in 3 open windows, even with one borrowed version allowed (found by a review: a 256 MiB byte budget refused real traffic)', () => {
    const models = Array.from({ length: 50 }, (_, i) => `model-${i}`);
    const own = ['v1', 'v2', 'v3', 'v4'];
    const p = new PartitionWindows(
      { sizeMs: 1000, latenessMs: 2500 },
      promotedFallback(models, own),
      undefined,
      1_000,
      1,
    );
    const outcomes = new Map<string, number>();
    let offset = 0;
    for (const start of [0, 1000, 2000])
      for (const model of models)
        for (const version of [...own, 'shadow', 'shadow-2']) {
          const o = p.add(event(start + 100, 0, { model, model_version: version }), offset++);
          const key = `${version.startsWith('shadow') ? version : 'own'} ${o}`;
          outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        }
    expect(p.openWindows()).toBe(3);
    expect(Object.fromEntries(outcomes)).toEqual({
      'own added': 3 * 50 * 4,
      'shadow added': 3 * 50,
      'shadow-2 refused': 3 * 50,
    });
    p.advanceTo(10_000);
    expect(p.closeReady().windows.map((w) => w.partials.length)).toEqual([250, 250, 250]);
  });

  it('a replay from the committed offset refuses the same events as the uninterrupted run (found by a review: a replay counted an event run 1 had dead-lettered)', () => {
    const spec = { sizeMs: 1000, latenessMs: 300 };
    const resolve = promotedFallback(['m'], ['v1']);
    let refusedAgain = 0;
    let borrowedAdded = 0;
    const differ: string[] = [];
    for (let seed = 1; seed <= 12; seed++) {
      const rng = new SeededRandom(seed);
      // Rising event times with stragglers (late ones among them), own and invented versions mixed.
      const events = Array.from({ length: 120 }, (_, i) =>
        event(Math.max(0, i * 60 - rng.int(1500)), 0, { model_version: rng.int(3) === 0 ? 'v1' : `b${rng.int(6)}` }),
      );
      const batches: number[][] = [];
      for (let i = 0; i < events.length; ) {
        const n = Math.min(1 + rng.int(6), events.length - i);
        batches.push(Array.from({ length: n }, (_, j) => i + j));
        i += n;
      }
      const live = new PartitionWindows(spec, resolve, undefined, 1_000, 2);
      const liveOutcomes = events.map((e, i) => {
        const o = live.add(e, i);
        if (batches.some((b) => b.at(-1) === i)) live.closeReady();
        if (o === 'added' && e.model_version !== 'v1') borrowedAdded++;
        return o;
      });
      for (let k = 0; k < batches.length; k += 3) {
        const first = new PartitionWindows(spec, resolve, undefined, 1_000, 2);
        let saved: { closedUntil: number; offset: number; lateFrom: number } | undefined;
        let commit = 0;
        for (const b of batches.slice(0, k + 1)) {
          for (const i of b) first.add(events[i]!, i);
          const next = b.at(-1)! + 1;
          const flush = first.closeReady();
          if (flush.windows.length > 0)
            saved = { closedUntil: flush.closedUntil, offset: next, lateFrom: first.lateFrom(flush.closedUntil, next) };
          commit = first.commitOffset(next);
        }
        const second = new PartitionWindows(spec, resolve, saved, 1_000, 2);
        for (const b of batches) {
          for (const i of b) {
            if (i < commit) continue;
            const o = second.add(events[i]!, i);
            // A replayed event belongs to a window already emitted; every other one is decided again, the same way.
            if (o === 'replayed') continue;
            if ((o === 'refused') !== (liveOutcomes[i] === 'refused'))
              differ.push(`seed ${seed}, crash after batch ${k}, offset ${i}: ${liveOutcomes[i]}, then ${o}`);
            else if (o === 'refused') refusedAgain++;
          }
          second.closeReady();
        }
      }
    }
    expect(differ).toEqual([]);
    expect(refusedAgain).toBeGreaterThan(100);
    expect(borrowedAdded).toBeGreaterThan(100); // up to 2 invented versions per window are measured
  });

  it('estimates a pair from its profiles: counters per slot and exact-sum limbs for numbers, per bin for categories', () => {
    const fine = buildNumericProfile(normals(5000, 0, 3)); // the default 1,000-cut grid
    const one = (profile: ReferenceProfile) => pairStateBytes(referenceSet('m', 'v', new Map([['f', profile]])));
    const two = (profile: ReferenceProfile) =>
      pairStateBytes(
        referenceSet(
          'm',
          'v',
          new Map([
            ['f', profile],
            ['g', profile],
          ]),
        ),
      );
    const perNumeric = two(fine) - one(fine);
    expect(perNumeric - (two(x) - one(x))).toBe(8 * 2 * (fine.cuts.length - x.cuts.length));
    expect(perNumeric).toBeGreaterThan(8 * (2 * fine.cuts.length + 1 + EXACT_SUM_LIMBS));
    expect(perNumeric).toBeLessThan(8 * (2 * fine.cuts.length + 1 + EXACT_SUM_LIMBS) + 1024);
    const perCategorical = two(color) - one(color);
    expect(perCategorical).toBeGreaterThan(8 * categoricalBins(color));
    expect(perCategorical).toBeLessThan(8 * categoricalBins(color) + 1024);
  });

  it('refuses a new (model, version) pair past the bound per window, keeps the pairs it holds, and the next window starts afresh', () => {
    const anyVersion = (model: string) => (model === 'm' ? ref : undefined);
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, anyVersion, undefined, 3);
    for (const v of ['v1', 'a', 'b']) expect(p.add(event(100, 0, { model_version: v }), 0)).toBe('added');
    expect(p.add(event(200, 0, { model_version: 'c' }), 1)).toBe('refused');
    expect(p.refusal('m', 'c')).toBe(
      'window 1970-01-01T00:00:00.000Z already holds 3 (model, version) pairs, the most one window takes; model "m" version "c" is not counted',
    );
    expect(p.add(event(300, 0, { model_version: 'v1' }), 2)).toBe('added'); // a pair it holds still counts
    expect(p.add(event(1100, 0, { model_version: 'c' }), 3)).toBe('added'); // another window
    expect(p.refusedEvents).toBe(1);
    const [w0] = p.closeReady().windows;
    expect(w0!.partials.map((x) => [x.version, x.events])).toEqual([
      ['v1', 2],
      ['a', 1],
      ['b', 1],
    ]);
  });

  it('keeps counting a window against its own reference when the resolver switches mid-window (a promotion seen)', () => {
    const small = referenceSet('m', 'v0', new Map<string, ReferenceProfile>([['x', x]]));
    let current = small;
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, () => current);
    expect(p.add(event(100, 1), 0)).toBe('added');
    current = ref; // more features, another order
    expect(p.add(event(200, 2), 1)).toBe('added');
    expect(p.add(event(1100, 3), 2)).toBe('added'); // the next window takes the new reference
    const [w0] = p.closeReady().windows;
    expect(w0!.partials[0]!.referenceId).toBe(small.referenceId);
    expect(w0!.partials[0]!.events).toBe(2);
    expect(Object.keys(w0!.partials[0]!.summaries)).toEqual(['x']);
  });

  it('a feature named __proto__ travels in a partial and merges like any other', () => {
    const odd = referenceSet(
      'm',
      'v1',
      new Map<string, ReferenceProfile>([
        ['__proto__', x],
        ['y', x],
      ]),
    );
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, () => odd);
    p.add(event(100, 0, { features: JSON.parse('{"__proto__": 1.5, "y": 2}') }), 0);
    p.add(event(1100, 0), 1);
    const [w0] = p.closeReady().windows;
    const partial = w0!.partials[0]!;
    const decoded = JSON.parse(JSON.stringify(partial)) as typeof partial;
    expect(Object.hasOwn(decoded.summaries, '__proto__')).toBe(true);
    const merged = mergeGroup(
      {
        model: 'm',
        version: 'v1',
        referenceId: odd.referenceId,
        partials: [
          { ...decoded, type: 'partial', format: 'x', source: { topic: 't', partition: 0, partitions: 1 } } as never,
        ],
        events: 1,
        late: 0,
      },
      odd,
    );
    expect([...merged.keys()].sort()).toEqual(['__proto__', 'y']);
  });

  it('counts an event of a closed window as late, in the next window to close, never in a summary', () => {
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, resolve);
    p.add(event(500), 0);
    p.add(event(2500), 1); // watermark 2500: windows 0 and 1000 closed
    expect(p.add(event(999), 2)).toBe('late');
    expect(p.add(event(1500), 3)).toBe('late');
    expect(p.add(event(2000), 4)).toBe('added');
    const closedEarly = p.closeReady().windows;
    expect(closedEarly.map((w) => w.windowStart)).toEqual([0]);
    p.add(event(3000), 5);
    const [w2] = p.closeReady().windows;
    expect(w2!.windowStart).toBe(2000);
    expect(w2!.partials[0]!.events).toBe(2);
    expect(w2!.partials[0]!.late).toBe(2);
    expect(p.lateEvents).toBe(2);
  });

  it('an event dated ahead of wall time moves the watermark at most WATERMARK_MAX_AHEAD_MS past it', () => {
    const size = 300_000;
    const p = new PartitionWindows({ sizeMs: size, latenessMs: 0 }, resolve);
    const now = 1_000_000; // in window [900,000, 1,200,000)
    expect(p.add(event(now), 0, now)).toBe('added');
    // An hour ahead (the event-time bound lets it in): its window opens past the horizon's, so it
    // is counted ahead in the horizon's window (this one), never summarized...
    expect(p.add(event(now + 3_600_000), 1, now)).toBe('ahead');
    expect(p.watermark()).toBe(now + WATERMARK_MAX_AHEAD_MS);
    // ...and the on-time events after it are not late, and the open window stays open.
    expect(p.add(event(now + 1_000), 2, now + 1_000)).toBe('added');
    expect(p.closeReady().windows).toEqual([]);
    expect([p.lateEvents, p.aheadEvents]).toEqual([0, 1]);
    // Wall time moving on moves the cap with it: the window closes when the clock passes its end,
    // and nothing holds the commit an hour ahead (its own window had, past the stall timeout).
    p.add(event(1_200_000), 3, 1_200_000);
    expect(p.closeReady().windows.map((w) => [w.windowStart, w.partials[0]!.events, w.partials[0]!.late])).toEqual([
      [900_000, 2, 1],
    ]);
    expect(p.commitOffset(4)).toBe(3);
    // Within the horizon's window an event ahead of the clock still counts, in its own window.
    expect(p.add(event(1_200_000 + WATERMARK_MAX_AHEAD_MS), 4, 1_200_000)).toBe('added');
  });

  it('late events exactly at the lateness bound are on time', () => {
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 500 }, resolve);
    p.add(event(1499), 0); // watermark 999: window 0 still open
    expect(p.add(event(0), 1)).toBe('added');
    p.add(event(1500), 2); // watermark 1000: window 0 closed
    expect(p.add(event(999), 3)).toBe('late');
  });

  it('commits no further than the first offset of the oldest open window', () => {
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, resolve);
    expect(p.commitOffset(0)).toBe(0);
    p.add(event(1500), 10);
    p.add(event(500), 11);
    expect(p.commitOffset(12)).toBe(10);
    p.add(event(2100), 12); // closes 0 and 1000
    p.closeReady();
    expect(p.commitOffset(13)).toBe(12);
  });

  it('skips events without a reference and counts missing features as missing', () => {
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, resolve);
    expect(p.add(event(1, 0, { model_version: 'v9' }), 0)).toBe('unreferenced');
    p.add(event(2, null, { features: {} }), 1);
    p.add(event(2000), 2);
    const [w] = p.closeReady().windows;
    expect(w!.partials[0]!.events).toBe(1);
    expect(p.unreferencedEvents).toBe(1);
  });

  it('replaying from commitOffset rebuilds identical partials', () => {
    const events = Array.from({ length: 400 }, (_, i) => event(i * 10 + ((i * 7919) % 300), Math.sin(i)));
    const run = (from: number) => {
      const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 100 }, resolve);
      const out: ClosedWindow[] = [];
      let commit = 0;
      for (let i = from; i < events.length; i++) {
        p.add(events[i]!, i);
        out.push(...p.closeReady().windows);
        if (i === 250) commit = p.commitOffset(i + 1);
      }
      return { out, commit };
    };
    const full = run(0);
    const replay = run(full.commit);
    // Every window the replay closes after the crash point is byte-identical to the original.
    const byStart = new Map(full.out.map((w) => [w.windowStart, JSON.stringify(w)]));
    const after = replay.out.filter((w) => w.windowStart >= 2000);
    expect(after.length).toBeGreaterThan(0);
    for (const w of after) expect(JSON.stringify(w)).toBe(byStart.get(w.windowStart));
  });
});

function messagesFor(p: PartitionWindows, source: number, partitions: number): PartialsMessage[] {
  return flushMessages({ topic: 't', partition: source, partitions }, p.closeReady(), 1000, 1).map((m) =>
    decodePartials(m.value),
  );
}

describe('MergeState (stage 2)', () => {
  function closedFrom(source: number, partitions: number, times: number[]): PartialsMessage[] {
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, resolve);
    for (const [i, t] of times.entries()) p.add(event(t, t / 1000), i);
    p.add(event(10_000), times.length);
    return messagesFor(p, source, partitions);
  }

  it('completes a window only when every source partition reported it and merges exactly', () => {
    const m = new MergeState({ idleTimeoutMs: 60_000 }, 0);
    const a = closedFrom(0, 2, [100, 200, 1100]);
    const b = closedFrom(1, 2, [300]);
    let offset = 0;
    for (const msg of a) m.add(msg, offset++, 1);
    expect(m.ready(1).complete).toEqual([]);
    expect(m.commitOffset(offset)).toBe(0);
    for (const msg of b) m.add(msg, offset++, 2);
    const { complete } = m.ready(2);
    // 9000: the empty marker announcing both frontiers (no data: nothing to write).
    expect(complete.map((w) => w.windowStart)).toEqual([0, 1000, 9000]);
    expect(complete[2]!.groups).toEqual([]);
    const [w0] = complete;
    expect(w0!.reported).toEqual([0, 1]);
    expect(w0!.groups[0]!.events).toBe(3);
    const merged = mergeGroup(w0!.groups[0]!, ref);
    expect((merged.get('x') as NumericSummary).count).toBe(3);
    m.markDone(complete);
    expect(m.commitOffset(offset)).toBe(offset);
  });

  it('once any source names more partitions (the topic grew), windows wait for them all', () => {
    const m = new MergeState({ idleTimeoutMs: 60_000 }, 0);
    let offset = 0;
    // A stage one owning a new partition names 8; the others still name 4.
    for (const msg of closedFrom(5, 8, [100])) m.add(msg, offset++, 1); // window 0; closed up to 10 s
    // Window 1000 is first heard of from sources naming 4.
    for (const s of [0, 1, 2, 3]) for (const msg of closedFrom(s, 4, [1200])) m.add(msg, offset++, 2);
    expect(m.ready(3).complete.map((w) => w.windowStart)).not.toContain(1000); // 4, 6 and 7 are missing
    for (const s of [4, 6, 7]) for (const msg of closedFrom(s, 8, [1300])) m.add(msg, offset++, 4);
    const w1 = m.ready(5).complete.find((w) => w.windowStart === 1000);
    expect(w1!.reported).toEqual([0, 1, 2, 3, 4, 5, 6, 7]);
    expect(w1!.groups[0]!.events).toBe(7);
  });

  it('drops re-emitted partials and markers (first wins), before and after completion', () => {
    const m = new MergeState({ idleTimeoutMs: 60_000 }, 0);
    const a = closedFrom(0, 1, [100]);
    for (const msg of a) expect(m.add(msg, 0, 0)).toBe('accepted');
    for (const msg of a) expect(m.add(msg, 1, 0)).toBe('duplicate');
    const { complete } = m.ready(0);
    m.markDone(complete);
    for (const msg of a) expect(m.add(msg, 2, 0)).toBe('duplicate');
    expect(m.pendingWindows()).toBe(0);
  });

  it('a window set aside without results (quarantined) is done: later windows complete, the commit passes it', () => {
    const m = new MergeState({ idleTimeoutMs: 60_000 }, 0);
    const first = closedFrom(0, 1, [100, 1100]);
    const w0 = first.filter((msg) => msg.windowStart === 0);
    let offset = 0;
    for (const msg of w0) m.add(msg, offset++, 0);
    const poison = m.ready(0).complete;
    expect(poison.map((w) => w.windowStart)).toEqual([0]);
    m.markDone(poison); // the merge stage quarantined it: nothing written, still done
    expect(m.pendingWindows()).toBe(0);
    expect(m.commitOffset(offset)).toBe(offset);
    for (const msg of w0) expect(m.add(msg, offset++, 0)).toBe('duplicate'); // a replay cannot revive it
    for (const msg of first.filter((msg) => msg.windowStart !== 0)) m.add(msg, offset++, 0);
    expect(m.ready(0).complete.map((w) => w.windowStart)).toEqual([1000, 9000]);
  });

  it('waits for a partial a marker lists', () => {
    const m = new MergeState({ idleTimeoutMs: 60_000 }, 0);
    const [partial, marker] = closedFrom(0, 1, [100]);
    expect(partial!.type).toBe('partial');
    m.add(marker!, 0, 0);
    expect(m.ready(0).complete).toEqual([]);
    m.add(partial!, 1, 0);
    expect(m.ready(0).complete).toHaveLength(1);
  });

  it('excludes a source partition that stayed silent for the idle timeout since the window appeared', () => {
    const m = new MergeState({ idleTimeoutMs: 5000 }, 0);
    for (const msg of closedFrom(0, 2, [100])) m.add(msg, 0, 1000);
    // Source 0 keeps reporting (the next window); source 1 never speaks.
    let offset = 1;
    for (const msg of closedFrom(0, 2, [1100])) m.add(msg, offset++, 5500);
    expect(m.ready(5999).complete.filter((c) => c.windowStart === 0)).toEqual([]);
    const { complete } = m.ready(6000);
    expect(complete[0]!.windowStart).toBe(0);
    expect(complete[0]!.idle).toEqual([1]);
    m.markDone(complete);
    // The idle source wakes up with data for the completed window: counted, not merged.
    expect(m.add(closedFrom(1, 2, [200])[0]!, 50, 6000)).toBe('after_completion');
  });

  it('a source this merge never heard is not idle for a window that just appeared (found by make chaos)', () => {
    // Before: silence was counted from the merge's start, so a window first reported long after it
    // completed at once without the other process's stalled partitions (71 of 210 events merged).
    const m = new MergeState({ idleTimeoutMs: 5000 }, 0);
    let offset = 0;
    // Source 0 has been speaking since the merge started (other windows); source 1 never did.
    for (let t = 1000; t < 100_000; t += 2000) for (const msg of closedFrom(0, 2, [5_000])) m.add(msg, offset++, t);
    for (const msg of closedFrom(0, 2, [100])) m.add(msg, offset++, 100_000);
    expect(m.ready(100_000).complete.filter((c) => c.windowStart === 0)).toEqual([]);
    for (const msg of closedFrom(0, 2, [1100])) m.add(msg, offset++, 104_000);
    expect(m.ready(104_499).complete.filter((c) => c.windowStart === 0)).toEqual([]);
    // Source 1 reports within the timeout: the window merges both.
    for (const msg of closedFrom(1, 2, [300])) m.add(msg, offset++, 104_500);
    const w = m.ready(104_500).complete.find((c) => c.windowStart === 0);
    expect(w?.idle).toEqual([]);
    expect(w?.groups[0]?.events).toBe(2);
  });

  it('a silence of every source (a broker outage) makes none of them idle (found by make chaos)', () => {
    // Before: after an outage longer than the idle timeout, the first source heard again completed
    // the windows alone and the others' partials, arriving a moment later, were dropped.
    const m = new MergeState({ idleTimeoutMs: 5000 }, 0);
    let offset = 0;
    for (const msg of closedFrom(1, 3, [1100])) m.add(msg, offset++, 20_000);
    expect(m.ready(20_000).complete).toEqual([]);
    for (const msg of closedFrom(0, 3, [1200])) m.add(msg, offset++, 20_001);
    for (const msg of closedFrom(2, 3, [1300])) m.add(msg, offset++, 20_001);
    const { complete } = m.ready(20_001);
    const w = complete.find((c) => c.windowStart === 1000);
    expect(w?.idle).toEqual([]);
    expect(w?.groups[0]?.events).toBe(3);
  });

  it('does not declare a source idle while every source is silent (ticks during an outage)', () => {
    const m = new MergeState({ idleTimeoutMs: 5000 }, 0);
    for (const msg of closedFrom(0, 2, [100])) m.add(msg, 0, 1000);
    expect(m.ready(7000).complete).toEqual([]); // nobody heard for 6 s: an outage, not an idle source
  });

  it('does not treat a recently heard source as idle', () => {
    const m = new MergeState({ idleTimeoutMs: 5000 }, 0);
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, resolve);
    p.add(event(100), 0);
    for (const msg of messagesFor(p, 1, 2)) m.add(msg, 0, 9000); // source 1 heard at 9000, window 0 open there
    for (const msg of closedFrom(0, 2, [100])) m.add(msg, 1, 9000);
    expect(m.ready(10_000).complete.map((w) => w.windowStart)).not.toContain(0);
  });

  it('counts a source whose frontier passed a window as having reported it (no data there)', () => {
    const m = new MergeState({ idleTimeoutMs: 60_000 }, 0);
    for (const msg of closedFrom(0, 2, [100, 1100, 2100])) m.add(msg, 0, 0);
    expect(m.ready(0).complete).toEqual([]);
    // Source 1 only has data in window 2000; closing it says windows 0 and 1000 are closed too.
    for (const msg of closedFrom(1, 2, [2500])) m.add(msg, 1, 0);
    const { complete } = m.ready(0);
    expect(complete.map((w) => w.windowStart)).toEqual([0, 1000, 2000, 9000]);
    expect(complete[0]!.reported).toEqual([0, 1]);
    expect(complete[2]!.groups[0]!.partials).toHaveLength(2);
  });

  it('announces a frontier move with an empty marker, and never lets closedUntil outrun later partials', () => {
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, resolve);
    p.add(event(100), 0);
    p.add(event(2100), 1);
    p.add(event(5500), 2);
    const msgs = messagesFor(p, 0, 1);
    const markers = msgs.filter((m) => m.type === 'closed');
    expect(markers.map((m) => [m.windowStart, m.type === 'closed' ? m.closedUntil : 0])).toEqual([
      [0, 2000],
      [2000, 4000],
      [4000, 5000],
    ]);
    expect(messagesFor(p, 0, 1)).toEqual([]); // nothing moved
  });

  it('restored progress: a replay re-emits nothing the previous owner emitted, and later stragglers are late', () => {
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, resolve, { closedUntil: 2000, offset: 10 });
    expect(p.add(event(1500), 5)).toBe('replayed');
    expect(p.add(event(2500), 6)).toBe('added');
    expect(p.add(event(1600), 11)).toBe('late');
    expect(p.closeReady().windows).toEqual([]);
  });

  it('a restored merge never completes a window it completed before, and takes its replay for one (not a loss)', () => {
    const m = new MergeState({ idleTimeoutMs: 60_000 }, 0, 0);
    const a = closedFrom(0, 1, [100, 1100]);
    // Reported as after_completion, they counted as excluded events: a false alarm on every restart.
    expect(a.filter((x) => x.windowStart === 0).map((x) => m.add(x, 0, 0))).toEqual(['duplicate', 'duplicate']);
    for (const msg of a.filter((x) => x.windowStart === 1000)) m.add(msg, 1, 0);
    expect(m.ready(0).complete.map((w) => w.windowStart)).toEqual([1000]);
  });

  it('drops stale fragments older than a completed window', () => {
    const m = new MergeState({ idleTimeoutMs: 60_000 }, 0);
    const a = closedFrom(0, 1, [100, 1100]);
    // A restart replays from the middle: window 0's marker arrives without its partial.
    const marker0 = a[1]!;
    expect(marker0.type === 'closed' && marker0.windowStart === 0).toBe(true);
    m.add({ ...marker0, closedUntil: 1000 } as PartialsMessage, 0, 0);
    m.add(a[2]!, 1, 0);
    m.add(a[3]!, 2, 0);
    const { complete, stale } = m.ready(0);
    expect(complete.map((w) => w.windowStart)).toEqual([1000]);
    expect(stale).toEqual([0]);
  });

  it('rejects malformed partial messages as poison', () => {
    expect(() => decodePartials(Buffer.from('{'))).toThrow(PoisonRecordError);
    expect(() => decodePartials(Buffer.from('{"format":"nope"}'))).toThrow(/format/);
  });

  it('routes a model to one merge partition, deterministically', () => {
    expect(routeModel('fraud', 6)).toBe(routeModel('fraud', 6));
    expect(routeModel('fraud', 1)).toBe(0);
  });
});

describe('decisions and alerts', () => {
  function summaryOf(values: number[]) {
    const p = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, resolve);
    for (const [i, v] of values.entries()) p.add(event(i % 1000, v), i);
    p.add(event(5000), values.length);
    const m = new MergeState({ idleTimeoutMs: 1 }, 0);
    for (const [i, msg] of messagesFor(p, 0, 1).entries()) m.add(msg, i, 0);
    return mergeGroup(m.ready(0).complete[0]!.groups[0]!, ref);
  }

  it('flags a shifted feature by PSI and KS and leaves a stable one alone', () => {
    const stable = summaryOf(normals(1000, 0, 7)).get('x')!;
    const shifted = summaryOf(normals(1000, 1, 8)).get('x')!;
    const s = featureResults('x', x, stable, DEFAULT_THRESHOLDS);
    const d = featureResults('x', x, shifted, DEFAULT_THRESHOLDS);
    const psi = (rows: typeof s) => rows.find((r) => r.method === 'psi')!;
    expect(psi(s).drifted).toBe(false);
    expect(psi(d).drifted).toBe(true);
    expect(psi(d).statistic).toBeGreaterThan(0.2);
    const ks = d.find((r) => r.method === 'ks')!;
    expect(ks.drifted).toBe(true);
    expect(ks.errorBound).toBeGreaterThanOrEqual(0);
    expect(ks.errorBound).toBeLessThanOrEqual(x.ksBound + 1e-12);
    // A threshold exactly at the statistic drifts (>=), just above it does not.
    const at = featureResults('x', x, shifted, { ...DEFAULT_THRESHOLDS, psi: psi(d).statistic });
    expect(psi(at).drifted).toBe(true);
    const above = featureResults('x', x, shifted, { ...DEFAULT_THRESHOLDS, psi: psi(d).statistic + 1e-9 });
    expect(psi(above).drifted).toBe(false);
  });

  it('computes categorical rows and window verdicts with the share threshold', () => {
    const color = summaryOf([1]).get('color')!;
    const rows = featureResults('color', ref.profiles[ref.features.indexOf('color')]!, color, DEFAULT_THRESHOLDS);
    expect(rows.map((r) => r.method).sort()).toEqual(['chi2', 'jensen_shannon', 'missing_rate', 'psi']);
    const kinds = new Map<string, 'numeric' | 'categorical'>([
      ['color', 'categorical'],
      ['x', 'numeric'],
    ]);
    const fake = (feature: string, drifted: boolean) => ({
      feature,
      method: 'psi' as const,
      statistic: drifted ? 1 : 0,
      pValue: null,
      threshold: 0.2,
      drifted,
      referenceSize: 1,
      currentSize: 1,
      errorBound: null,
    });
    const v = windowVerdict([fake('x', true), fake('color', false), fake(PREDICTION_FEATURE, true)], kinds, 'psi', 0);
    expect(v.shareDrifted).toBe(0.5);
    expect(v.featureDrift).toBe(true);
    expect(v.predictionDrift).toHaveLength(1);
    expect(windowVerdict([fake('x', true), fake('color', false)], kinds, 'psi', 0.6).featureDrift).toBe(false);
  });

  it('alert ids are deterministic per (model, version, window, kind)', () => {
    expect(alertId('m', 'v1', 1000, 'FEATURE_DRIFT')).toBe(alertId('m', 'v1', 1000, 'FEATURE_DRIFT'));
    expect(alertId('m', 'v1', 1000, 'FEATURE_DRIFT')).not.toBe(alertId('m', 'v1', 2000, 'FEATURE_DRIFT'));
    expect(alertId('m', 'v1', 1000, 'FEATURE_DRIFT')).not.toBe(alertId('m', 'v1', 1000, 'PREDICTION_DRIFT'));
    const row = {
      feature: 'x',
      method: 'psi' as const,
      statistic: 1,
      pValue: null,
      threshold: 0.2,
      drifted: true,
      referenceSize: 1,
      currentSize: 1,
      errorBound: null,
    };
    const verdict = { features: 1, drifted: [row], shareDrifted: 1, featureDrift: true, predictionDrift: [] };
    const ctx = {
      model: 'm',
      version: 'v1',
      referenceId: 'r',
      windowStart: 0,
      windowEnd: 1000,
      events: 5,
      lateEvents: 0,
    };
    const [a] = buildAlerts(ctx, verdict);
    expect(a!.alert_id).toBe(alertId('m', 'v1', 0, 'FEATURE_DRIFT'));
    expect(a!.event_time).toBe(1000);
    expect(JSON.stringify(buildAlerts(ctx, verdict))).toBe(JSON.stringify(buildAlerts(ctx, verdict)));
  });

  it("a restart at any batch keeps every window's events and late counts, late events replayed included (found by a review)", () => {
    const spec = { sizeMs: 1000, latenessMs: 300 };
    const sum = (ws: ClosedWindow[]) => {
      const out = new Map<number, string>();
      for (const w of ws) {
        const [prev, ...rest] = (out.get(w.windowStart) ?? '0/0').split('/').map(Number);
        const events = w.partials.reduce((n, p) => n + p.events, 0) + (prev ?? 0);
        const late = w.partials.reduce((n, p) => n + p.late, 0) + (rest[0] ?? 0);
        out.set(w.windowStart, `${events}/${late}`);
      }
      return [...out].sort((a, b) => a[0] - b[0]);
    };
    for (let seed = 1; seed <= 40; seed++) {
      const rng = new SeededRandom(seed);
      // Mostly rising event times with stragglers up to 2.5 windows behind (late ones among them).
      const events = Array.from({ length: 120 }, (_, i) => event(Math.max(0, i * 90 - rng.int(2500))));
      const batches: number[][] = [];
      for (let i = 0; i < events.length; ) {
        const n = 1 + rng.int(6);
        batches.push(Array.from({ length: Math.min(n, events.length - i) }, (_, k) => i + k));
        i += n;
      }
      const end = (p: PartitionWindows) => {
        p.advanceTo(1e9);
        return p.closeReady().windows;
      };
      // Uninterrupted.
      const live = new PartitionWindows(spec, resolve);
      const all: ClosedWindow[] = [];
      for (const b of batches) {
        for (const i of b) live.add(events[i]!, i);
        all.push(...live.closeReady().windows);
      }
      all.push(...end(live));
      // A crash after batch `k`: what was emitted, the frontier saved with it, a replay from the commit.
      for (let k = 0; k < batches.length; k += 3) {
        const first = new PartitionWindows(spec, resolve);
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
        const second = new PartitionWindows(spec, resolve, saved);
        for (const b of batches) {
          for (const i of b) if (i >= commit) second.add(events[i]!, i);
          emitted.push(
            ...second.closeReady().windows.filter((w) => saved === undefined || w.windowStart >= saved.closedUntil),
          );
        }
        emitted.push(...end(second));
        expect(sum(emitted), `seed ${seed}, crash after batch ${k}`).toEqual(sum(all));
      }
    }
  });
});
