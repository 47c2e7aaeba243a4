import { describe, expect, it } from 'vitest';
import { type GroupStartInput, receiverGroupStart } from '../src/receiver-groups.js';

const offsets = (...entries: Array<[number, bigint]>) => new Map(entries);
const none = offsets([0, -1n], [1, -1n]);
const low = offsets([0, 4n], [1, 0n]);
const end = offsets([0, 50n], [1, 30n]);

/** A receiver whose group committed nothing, with no delivery record, on a topic holding 4..50 and 0..30. */
const startOf = (over: Partial<GroupStartInput>) =>
  receiverGroupStart({ own: none, legacy: none, siblings: [], low, end, deliveredBefore: false, ...over });

describe('receiverGroupStart', () => {
  it('leaves a group that committed anything where it is', () => {
    const own = offsets([0, 5n], [1, -1n]);
    expect(startOf({ own, legacy: offsets([0, 9n]), siblings: [offsets([0, 7n])] })).toBeUndefined();
    expect(startOf({ own, deliveredBefore: true })).toBeUndefined();
  });

  it('starts a receiver added to a running router where the others are: per partition the least', () => {
    const start = startOf({
      legacy: offsets([0, 2n], [1, 2n]),
      siblings: [offsets([0, 40n], [1, 12n]), offsets([0, 35n], [1, 20n]), none],
    });
    expect(start).toEqual({ offsets: offsets([0, 35n], [1, 12n]), from: 'other receivers' });
  });

  it('starts every receiver where the single group of an older router was, on the upgrade', () => {
    const legacy = { offsets: offsets([0, 9n]), from: 'legacy group' };
    expect(startOf({ legacy: offsets([0, 9n], [1, -1n]), siblings: [none, none] })).toEqual(legacy);
    expect(startOf({ own: undefined, legacy: offsets([0, 9n]) })).toEqual(legacy);
  });

  it('with nothing committed anywhere (a new deployment, a renamed sole receiver, a new group name) starts at the end of the topic (found by a review)', () => {
    // From the beginning, a rename re-sent the topic's whole history to the renamed receiver.
    expect(startOf({ siblings: [none] })).toEqual({ offsets: end, from: 'end of topic' });
    expect(startOf({ own: undefined, legacy: undefined })).toEqual({ offsets: end, from: 'end of topic' });
  });

  it('reads the history only when asked (DRIFTLINE_ALERT_ROUTER_START=earliest)', () => {
    expect(startOf({ siblings: [none], start: 'earliest' })).toBeUndefined();
    // Where the router was still wins over the history.
    expect(startOf({ siblings: [offsets([0, 7n])], start: 'earliest' })).toEqual({
      offsets: offsets([0, 7n]),
      from: 'other receivers',
    });
  });

  it('a receiver with delivery records whose commits are gone (topic re-created, groups deleted) starts at the start of the topic, not its end (found by a review)', () => {
    // At the end of the re-created topic, the alerts published while the router was stopped were
    // never delivered. From its start, alert_deliveries drops what the receiver already had.
    expect(startOf({ deliveredBefore: true })).toEqual({ offsets: low, from: 'start of topic' });
    expect(startOf({ own: undefined, legacy: undefined, deliveredBefore: true })).toEqual({
      offsets: low,
      from: 'start of topic',
    });
    // Whatever DRIFTLINE_ALERT_ROUTER_START says: `earliest` left the group to kafkajs, unlogged.
    expect(startOf({ deliveredBefore: true, start: 'earliest' })).toEqual({ offsets: low, from: 'start of topic' });
  });

  it('where another group says where the router was, it wins over the delivery record', () => {
    // A receiver re-added after its empty group expired gets what the others have not finished,
    // not the alerts routed elsewhere meanwhile; the upgrade from the single group stays exact.
    const siblings = [offsets([0, 40n], [1, 12n])];
    expect(startOf({ siblings, deliveredBefore: true })).toEqual({
      offsets: offsets([0, 40n], [1, 12n]),
      from: 'other receivers',
    });
    expect(startOf({ legacy: offsets([0, 9n]), deliveredBefore: true })).toEqual({
      offsets: offsets([0, 9n]),
      from: 'legacy group',
    });
  });
});
