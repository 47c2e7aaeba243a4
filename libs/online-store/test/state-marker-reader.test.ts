import { describe, expect, it } from 'vitest';
import { featuresStateMarkerKey, markerChange, storeInUse } from '../src/redis/state-marker-reader.js';

describe('markerChange: one log line per change of the writer marker, not per check', () => {
  it('reports a marker going missing once, its return, and a value the writer wrote again', () => {
    expect(markerChange(undefined, null)).toBe('missing'); // missing at the first check
    expect(markerChange('t1', null)).toBe('missing');
    expect(markerChange(null, null)).toBe('none'); // still missing: no new line
    expect(markerChange(null, 't2')).toBe('found');
    expect(markerChange(undefined, 't1')).toBe('none'); // present at the first check
    expect(markerChange('t1', 't1')).toBe('none');
    // Written again between two checks (the materializer recreates it within 10 s of a loss).
    expect(markerChange('t1', 't2')).toBe('rewritten');
  });

  it('uses the feature-materializer key layout', () => {
    expect(featuresStateMarkerKey('dl')).toBe('dl:state-marker:features');
  });
});

describe('storeInUse: a reader that may serve without the store reports a missing marker only while it reads it', () => {
  it('is false until a read, true within the window after the last read, false again past it', () => {
    let reads = 0;
    let now = 0;
    const inUse = storeInUse(
      () => reads,
      300_000,
      () => now,
    );
    // Requests carrying every feature: no read, nothing to report (before: a critical alert for ever).
    expect(inUse()).toBe(false);
    now = 10_000;
    expect(inUse()).toBe(false);
    reads = 3;
    now = 20_000;
    expect(inUse()).toBe(true);
    now = 20_000 + 299_999;
    expect(inUse()).toBe(true);
    now = 20_000 + 300_000;
    expect(inUse()).toBe(false);
    reads = 4; // reads resume
    expect(inUse()).toBe(true);
  });
});
