import { describe, expect, it } from 'vitest';
import { isWrittenReplay, replayLookups } from '../src/replay.js';
import { joinKey } from '../src/state.js';

describe('replayed dead letters', () => {
  it('looks up the replayed records only, each (model, id) once', () => {
    expect(
      replayLookups([
        { model: 'm', id: 'a', replayed: true },
        { model: 'm', id: 'b', replayed: false },
        { model: 'm', id: 'a', replayed: true },
        { model: 'n', id: 'a', replayed: true },
      ]),
    ).toEqual([
      { model: 'm', id: 'a' },
      { model: 'n', id: 'a' },
    ]);
    expect(replayLookups([{ model: 'm', id: 'a', replayed: false }])).toEqual([]);
  });

  it('a replayed record whose prediction the sink holds is a duplicate; the same id of another model, or without the header, is not', () => {
    const written = new Set([joinKey({ model: 'm', id: 'a' })]);
    expect(isWrittenReplay({ model: 'm', id: 'a', replayed: true }, written)).toBe(true);
    expect(isWrittenReplay({ model: 'n', id: 'a', replayed: true }, written)).toBe(false);
    expect(isWrittenReplay({ model: 'm', id: 'b', replayed: true }, written)).toBe(false);
    // Records without the header were never looked up: the tombstone and the marker judge them.
    expect(isWrittenReplay({ model: 'm', id: 'a', replayed: false }, written)).toBe(false);
  });
});
