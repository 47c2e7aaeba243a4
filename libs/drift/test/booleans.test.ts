import {
  buildCategoricalProfile,
  type CategoricalReferenceProfile,
  type CategoricalSummary,
  psiFromCategoricalSummary,
  type ReferenceProfile,
  summaryFromJSON,
} from '@driftline/stats';
import { describe, expect, it } from 'vitest';
import {
  booleanCategory,
  booleanSpellingOf,
  categoricalValue,
  PartitionWindows,
  referenceSet,
  type WindowedEvent,
} from '../src/index.js';

const flags = Array.from({ length: 200 }, (_, i) => i % 3 === 0);

/** A categorical profile of `flags` as `spell` wrote them, and the stage-one summary of the same flags live. */
function liveAgainst(spell: (v: boolean) => string): {
  profile: CategoricalReferenceProfile;
  live: CategoricalSummary;
} {
  const profile = buildCategoricalProfile([...flags.map(spell), 'other-value']);
  const ref = referenceSet('m', 'v1', new Map<string, ReferenceProfile>([['flag', profile]]));
  const windows = new PartitionWindows({ sizeMs: 1000, latenessMs: 0 }, () => ref);
  const event = (t: number, flag: boolean | string): WindowedEvent => ({
    model: 'm',
    model_version: 'v1',
    event_time: t,
    features: { flag },
    prediction: 0.5,
  });
  for (const [i, flag] of [...flags, 'other-value'].entries()) windows.add(event(100 + i, flag), i);
  windows.add(event(5000, true), flags.length + 1);
  const partial = windows.closeReady().windows[0]!.partials[0]!;
  return { profile, live: summaryFromJSON(partial.summaries.flag, profile) as CategoricalSummary };
}

describe('boolean categories (found by a regression review of da5dfd1)', () => {
  it('have one canonical key: the `true` / `false` that stored and trainer profiles hold', () => {
    expect([booleanCategory(true), booleanCategory(false)]).toEqual([String(true), String(false)]);
    expect([categoricalValue(true), categoricalValue(false)]).toEqual([String(true), String(false)]);
  });

  it('live booleans against a canonical profile: no drift on the same data', () => {
    const { profile, live } = liveAgainst(booleanCategory);
    expect(live.counts[profile.categories.length]).toBe(0); // nothing in "other"
    expect(psiFromCategoricalSummary(profile, live).value).toBeCloseTo(0, 12);
  });

  it('live booleans against an old pandas-CSV profile spelled True / False: keyed as the profile spells them', () => {
    const pandas = (v: boolean) => (v ? 'True' : 'False');
    const { profile, live } = liveAgainst(pandas);
    expect(booleanSpellingOf(profile)).toEqual({ true: 'True', false: 'False' });
    expect(live.counts[profile.categories.length]).toBe(0);
    expect(psiFromCategoricalSummary(profile, live).value).toBeCloseTo(0, 12);
  });

  it('booleanSpellingOf keeps the canonical keys unless only the pandas spelling is there', () => {
    const spelling = (categories: string[]) => booleanSpellingOf(buildCategoricalProfile(categories));
    const canonical = { true: booleanCategory(true), false: booleanCategory(false) };
    expect(spelling(['a', 'b'])).toEqual(canonical);
    expect(spelling(['true', 'false'])).toEqual(canonical);
    expect(spelling(['True', 'true'])).toEqual(canonical); // both spelled: strings, not one bool column
    expect(spelling(['False', 'x'])).toEqual({ true: 'True', false: 'False' });
    expect(categoricalValue(false, spelling(['False', 'x']))).toBe('False');
    expect(categoricalValue('True', spelling(['a']))).toBe('True'); // strings stay as written
  });
});
