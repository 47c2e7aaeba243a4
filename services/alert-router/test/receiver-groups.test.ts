import { describe, expect, it } from 'vitest';
import { receiverGroupStart } from '../src/receiver-groups.js';

const offsets = (...entries: Array<[number, bigint]>) => new Map(entries);
const none = offsets([0, -1n], [1, -1n]);
const end = offsets([0, 50n], [1, 30n]);

describe('receiverGroupStart', () => {
  it('leaves a group that committed anything where it is', () => {
    expect(receiverGroupStart(offsets([0, 5n], [1, -1n]), offsets([0, 9n]), [offsets([0, 7n])], end)).toBeUndefined();
  });

  it('starts a receiver added to a running router where the others are: per partition the least', () => {
    const start = receiverGroupStart(
      none,
      offsets([0, 2n], [1, 2n]),
      [offsets([0, 40n], [1, 12n]), offsets([0, 35n], [1, 20n]), none],
      end,
    );
    expect(start).toEqual({ offsets: offsets([0, 35n], [1, 12n]), from: 'other receivers' });
  });

  it('starts every receiver where the single group of an older router was, on the upgrade', () => {
    const legacy = { offsets: offsets([0, 9n]), from: 'legacy group' };
    expect(receiverGroupStart(none, offsets([0, 9n], [1, -1n]), [none, none], end)).toEqual(legacy);
    expect(receiverGroupStart(undefined, offsets([0, 9n]), [], end)).toEqual(legacy);
  });

  it('with nothing committed anywhere (a new deployment, a renamed sole receiver, a new group name) starts at the end of the topic (found by a review)', () => {
    // From the beginning, a rename re-sent the topic's whole history to the renamed receiver.
    expect(receiverGroupStart(none, none, [none], end)).toEqual({ offsets: end, from: 'end of topic' });
    expect(receiverGroupStart(undefined, undefined, [], end)).toEqual({ offsets: end, from: 'end of topic' });
  });

  it('reads the history only when asked (DRIFTLINE_ALERT_ROUTER_START=earliest)', () => {
    expect(receiverGroupStart(none, none, [none], end, 'earliest')).toBeUndefined();
    // Where the router was still wins over the history.
    expect(receiverGroupStart(none, none, [offsets([0, 7n])], end, 'earliest')).toEqual({
      offsets: offsets([0, 7n]),
      from: 'other receivers',
    });
  });
});
