import type { FeatureValue } from '@driftline/schemas';
import {
  buildCategoricalProfile,
  buildNumericProfile,
  createSummary,
  type NumericReferenceProfile,
  type NumericSummary,
  type ReferenceProfile,
} from '@driftline/stats';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import {
  CalibrationCache,
  DEFAULT_SEQUENTIAL,
  PartitionWindows,
  PREDICTION_FEATURE,
  referenceSet,
  type SequentialDetection,
  SequentialStreams,
  sequentialGrid,
  slotBins,
  type WindowedEvent,
} from '../src/index.js';

// Stage one reads each value once: the summaries' slot becomes the detector's bin through a table.
// These tests hold the table path to the per-value search it replaces, value for value.

const r = new SeededRandom(4242);
const gaussian = buildNumericProfile(Array.from({ length: 3000 }, () => r.normal()));
/** Integer-valued: many ties, so detector bins collapse and values sit exactly on cuts. */
const ties = buildNumericProfile(Array.from({ length: 3000 }, () => Math.floor(-Math.log(1 - r.uniform()) * 3)));
const color = buildCategoricalProfile(['a', 'b', 'a', 'c']);

/** Values that stress the bins: random, on every cut, just beside cuts, beyond both ends. */
function probes(profile: NumericReferenceProfile): number[] {
  const xs = [-1e9, 1e9, profile.min - 1, profile.max + 1];
  for (const c of profile.cuts) xs.push(c, c - 1e-9, c + 1e-9, c + Math.abs(c) * Number.EPSILON);
  for (let i = 0; i < 2000; i++) xs.push(profile.min + (profile.max - profile.min) * 1.2 * r.uniform() - 0.1);
  return xs;
}

describe('slotBins: fine slot to detector bin', () => {
  for (const [name, profile] of [
    ['gaussian', gaussian],
    ['ties', ties],
  ] as const) {
    for (const bins of [2, 7, 32, 256]) {
      it(`gives the bin lowerBound gives, for every value (${name}, ${bins} bins)`, () => {
        const grid = sequentialGrid(profile, bins);
        const table = slotBins(profile.cuts, grid);
        expect(table).toBeDefined();
        const summary = createSummary(profile) as NumericSummary;
        for (const x of probes(profile)) expect(table![summary.add(x)]).toBe(grid.index.lowerBound(x));
      });
    }
  }

  it('refuses a grid whose edges are not cuts of the profile', () => {
    const grid = sequentialGrid(gaussian, 16);
    const shifted = gaussian.cuts.map((c) => c + 1e-6);
    expect(slotBins(shifted, grid)).toBeUndefined();
  });
});

describe('stage one shares one read of each value', () => {
  const config = { ...DEFAULT_SEQUENTIAL, window: 20, every: 5, ert: 500, bins: 8, bootstraps: 200 };
  const profiles = new Map<string, ReferenceProfile>([
    ['x', gaussian],
    ['k', ties],
    ['color', color],
    [PREDICTION_FEATURE, gaussian],
  ]);
  const ref = referenceSet('m', 'v1', profiles);
  const value = (i: number): FeatureValue => {
    const u = r.uniform();
    if (u < 0.03) return null;
    if (u < 0.04) return Number.POSITIVE_INFINITY;
    if (u < 0.05) return Number.NaN;
    if (u < 0.06) return true;
    // Drifts after event 600, so alarms (and their restarts) are part of what must match.
    return r.normal() + (i > 600 ? 1.5 : 0);
  };
  const events: WindowedEvent[] = Array.from({ length: 3000 }, (_, i) => ({
    model: 'm',
    model_version: 'v1',
    event_time: i * 10,
    features: { x: value(i), k: i % 9 === 0 ? null : Math.floor(r.uniform() * 12), color: 'a' },
    prediction: i % 50 === 0 ? Number.NaN : r.normal(),
    predicted_class: null,
  }));

  it('exposes what the summaries read and the slots they counted', () => {
    const windows = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, () => ref);
    const e = { ...events[1]!, features: { x: 0.25, k: null, color: 'b' }, prediction: 7 };
    expect(windows.add(e, 0)).toBe('added');
    const added = windows.added!;
    expect(added.ref).toBe(ref);
    expect(ref.features).toEqual([PREDICTION_FEATURE, 'color', 'k', 'x']);
    expect(added.inputs).toEqual([undefined, 'color', 'k', 'x']);
    expect(added.values.slice(0, 4)).toEqual([7, 'b', null, 0.25]);
    const slot = (v: number) => (createSummary(gaussian) as NumericSummary).add(v);
    expect([...added.slots.slice(0, 4)]).toEqual([slot(7), -1, -1, slot(0.25)]);
  });

  it("shares the profile's slot table between streams (a copy per (model, version) took 3,020 bytes per feature, not 830: found by a review)", () => {
    const cache = new CalibrationCache(config);
    for (const p of ref.profiles) cache.get(p);
    const windows = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, () => ref);
    const partition0 = new SequentialStreams(cache, 1000, 0);
    const partition1 = new SequentialStreams(cache, 1000, 1);
    const out: SequentialDetection[] = [];
    for (const [i, version] of ['v1', 'v2', 'v3'].entries()) {
      const e = { ...events[i]!, model_version: version };
      expect(windows.add(e, i)).toBe('added');
      partition0.observe(e, i, ref, out, windows.added!.slots);
      partition1.observe(e, i, ref, out, windows.added!.slots);
    }
    expect(partition0.size).toBe(3);
    for (const [feature, profile] of [
      ['x', gaussian],
      ['k', ties],
      [PREDICTION_FEATURE, gaussian],
    ] as const) {
      const table = cache.peek(profile)?.slotBins;
      expect(table).toBeInstanceOf(Uint8Array);
      for (const streams of [partition0, partition1])
        for (const version of ['v1', 'v2', 'v3']) expect(streams.slotTableOf('m', version, feature)).toBe(table);
    }
    expect(partition0.slotTableOf('m', 'v1', 'color')).toBeUndefined(); // categorical: not watched
  });

  it('raises the same alarms, at the same offsets, as reading each value again', () => {
    const cache = new CalibrationCache(config);
    for (const p of ref.profiles) cache.get(p);
    const windows = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, () => ref);
    const shared = new SequentialStreams(cache, 1000, 0);
    const reread = new SequentialStreams(cache, 1000, 0);
    const a: SequentialDetection[] = [];
    const b: SequentialDetection[] = [];
    for (const [i, e] of events.entries()) {
      expect(windows.add(e, i)).toBe('added');
      shared.observe(e, i, ref, a, windows.added!.slots);
      reread.observe(e, i, ref, b);
    }
    expect(b.length).toBeGreaterThan(5);
    expect(new Set(b.map((d) => d.context.feature))).toEqual(new Set(['x', 'k', PREDICTION_FEATURE]));
    expect(a).toEqual(b);
    expect(shared.values).toBe(reread.values);
    expect(shared.suppressed).toBe(reread.suppressed);
  });
});
