import { buildCategoricalProfile, buildNumericProfile, type ReferenceProfile } from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import {
  flushMessages,
  PARTIALS_MAX_BYTES,
  PartitionWindows,
  partialBytesEstimate,
  referenceFindings,
  referenceSet,
  TAIL_FALSE_POSITIVE_WARN_RATE,
} from '../src/index.js';

let seed = 7;
const rnd = () => {
  seed = (seed * 1103515245 + 12345) % 2147483648;
  return seed / 2147483648;
};

/** The partials stage one writes for one window of one event on `profiles` (the real path): their bytes. */
function partialBytes(profiles: ReadonlyMap<string, ReferenceProfile>, topic = 'predictions.v1') {
  const ref = referenceSet('fraud-model', 'v2026.12.07', profiles);
  const w = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, () => ref);
  const features: Record<string, number | string> = {};
  for (const [name, p] of profiles) features[name] = p.kind === 'numeric' ? rnd() * 100 : `c${Math.floor(rnd() * 50)}`;
  const event = {
    prediction_id: 'a',
    model: ref.model,
    model_version: ref.version,
    entity_id: 'e',
    features,
    prediction: 0.5,
  };
  w.add({ ...event, event_time: 100 }, 0, 10_000);
  w.add({ ...event, event_time: 2100 }, 1, 10_000);
  const msgs = flushMessages({ topic, partition: 3, partitions: 12 }, w.closeReady(), 1000, 4);
  const partials = msgs.filter((m) => m.partial !== undefined);
  expect(partials).toHaveLength(1);
  return { ref, bytes: partials[0]!.value.length };
}

describe('partialBytesEstimate: the bytes of one window’s partial of a reference, by arithmetic', () => {
  it('never below the partial stage one writes, and within a few hundred bytes of it', () => {
    const numeric = buildNumericProfile(Array.from({ length: 5000 }, () => rnd() * 100));
    const small = buildNumericProfile([1, 2, 3, 4, 5, 6, 7]);
    const color = buildCategoricalProfile(Array.from({ length: 3000 }, () => `c${Math.floor(rnd() * 50)}`));
    // A tail sketch (categories beyond the cap), a name needing JSON escapes, a non-ASCII name.
    const wide = buildCategoricalProfile(
      Array.from({ length: 3000 }, (_, i) => `v${i}`),
      { maxCategories: 100 },
    );
    const profiles = new Map<string, ReferenceProfile>([
      ['x', numeric],
      ['"quoted"\\name', small],
      ['größe', numeric],
      ['color', color],
      ['user_agent', wide],
    ]);
    for (let f = 0; f < 40; f++) profiles.set(`f${f}`, numeric);
    for (const topic of ['p', 'x'.repeat(249)]) {
      const { ref, bytes } = partialBytes(profiles, topic);
      const estimate = partialBytesEstimate(ref);
      expect(estimate).toBeGreaterThanOrEqual(bytes);
      expect(estimate - bytes).toBeLessThan(600);
    }
  });
});

describe('referenceFindings: what the drift monitor could not do with a reference', () => {
  // One profile shared by every feature: a 1000-cut grid (the default), as from a training column.
  const grid = buildNumericProfile(Array.from({ length: 20_000 }, () => rnd()));
  const wideSet = (n: number) => new Map(Array.from({ length: n }, (_, f) => [`f${f}`, grid] as const));

  it('1,500 numeric features: an error naming model, version, feature count, size and the limit — and the partial is indeed too large', () => {
    const { ref, bytes } = partialBytes(wideSet(1_500));
    expect(bytes).toBeGreaterThan(PARTIALS_MAX_BYTES); // what Kafka refuses every window
    const findings = referenceFindings(ref);
    expect(findings).toHaveLength(1);
    const f = findings[0]!;
    expect(f).toMatchObject({ code: 'PARTIAL_TOO_LARGE', severity: 'error' });
    expect(f.message).toContain('"fraud-model" version "v2026.12.07"');
    expect(f.message).toContain('1500 features (1500 numeric)');
    expect(f.message).toMatch(/partial would be 16\.\d\d MiB, above the 16 MiB/);
    expect(f.message).toContain('--exclude');
    // "about N features fit": N of them do.
    const fits = Number(/about (\d+) features/.exec(f.message)?.[1]);
    expect(fits).toBeGreaterThan(1_400);
    expect(partialBytes(wideSet(fits)).bytes).toBeLessThanOrEqual(PARTIALS_MAX_BYTES);
    expect(partialBytes(wideSet(fits + 1)).bytes).toBeGreaterThan(PARTIALS_MAX_BYTES - 12_000);
  });

  it('1,400 numeric features fit: nothing to say', () => {
    const { ref, bytes } = partialBytes(wideSet(1_400));
    expect(bytes).toBeLessThan(PARTIALS_MAX_BYTES);
    expect(referenceFindings(ref)).toEqual([]);
  });

  it('an id-like column (60,000 distinct values, its tail sketch saturated) is warned of by name; 20,000 distinct are not', () => {
    const ids = buildCategoricalProfile(Array.from({ length: 60_000 }, (_, i) => `user-${i}`));
    const codes = buildCategoricalProfile(Array.from({ length: 20_000 }, (_, i) => `code-${i}`));
    expect(ids.tail!.falsePositiveRate).toBeGreaterThan(TAIL_FALSE_POSITIVE_WARN_RATE);
    expect(codes.tail!.falsePositiveRate).toBeLessThan(0.02);
    const ref = referenceSet(
      'm',
      'v1',
      new Map<string, ReferenceProfile>([
        ['user_id', ids],
        ['code', codes],
        ['x', grid],
      ]),
    );
    const findings = referenceFindings(ref);
    expect(findings.map((f) => [f.code, f.severity, f.feature])).toEqual([
      ['TAIL_SKETCH_SATURATED', 'warning', 'user_id'],
    ]);
    expect(findings[0]!.message).toContain('column "user_id" has 60000 distinct values (59000 beyond the 1000 kept)');
    expect(findings[0]!.message).toContain(`probability ${ids.tail!.falsePositiveRate.toFixed(3)}`);
    expect(findings[0]!.message).toContain('--exclude');
  });
});
