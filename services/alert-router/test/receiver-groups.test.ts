import { describe, expect, it } from 'vitest';
import { receiverGroupStart } from '../src/receiver-groups.js';

const offsets = (...entries: Array<[number, bigint]>) => new Map(entries);
const none = offsets([0, -1n], [1, -1n]);

describe('receiverGroupStart', () => {
  it('leaves a group that committed anything where it is', () => {
    expect(receiverGroupStart(offsets([0, 5n], [1, -1n]), offsets([0, 9n]), [offsets([0, 7n])])).toBeUndefined();
  });

  it('starts a receiver added to a running router where the others are: per partition the least', () => {
    const start = receiverGroupStart(none, offsets([0, 2n], [1, 2n]), [
      offsets([0, 40n], [1, 12n]),
      offsets([0, 35n], [1, 20n]),
      none,
    ]);
    expect(start).toEqual({ offsets: offsets([0, 35n], [1, 12n]), from: 'other receivers' });
  });

  it('starts every receiver where the single group of an older router was, on the upgrade', () => {
    const legacy = { offsets: offsets([0, 9n]), from: 'legacy group' };
    expect(receiverGroupStart(none, offsets([0, 9n], [1, -1n]), [none, none])).toEqual(legacy);
    expect(receiverGroupStart(undefined, offsets([0, 9n]), [])).toEqual(legacy);
  });

  it('reads from the beginning on a new deployment (nothing committed anywhere)', () => {
    expect(receiverGroupStart(none, none, [none])).toBeUndefined();
    expect(receiverGroupStart(undefined, undefined, [])).toBeUndefined();
  });
});
