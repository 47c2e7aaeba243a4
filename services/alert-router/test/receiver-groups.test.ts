import { describe, expect, it } from 'vitest';
import {
  type GroupOffsets,
  type GroupStartInput,
  planReceiverSeeds,
  type ReceiverSeed,
  receiverGroupStart,
  type SeedPlanInput,
} from '../src/receiver-groups.js';

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

  it('the delivery record wins over the other receivers, and the legacy group wins over the start of the topic (found by a review)', () => {
    // A group seeded by a start that failed halfway looks like a running one: ranked above the
    // record, a receiver with records was sent past what it missed on the retry. A receiver re-added
    // after its empty group expired is sent what was published while it was out of the routes.
    const siblings = [offsets([0, 40n], [1, 12n])];
    expect(startOf({ siblings, deliveredBefore: true })).toEqual({ offsets: low, from: 'start of topic' });
    // The upgrade from the single group stays exact for a receiver with records too.
    const legacy = { offsets: offsets([0, 9n]), from: 'legacy group' };
    expect(startOf({ legacy: offsets([0, 9n]), deliveredBefore: true })).toEqual(legacy);
    expect(startOf({ legacy: offsets([0, 9n]), siblings, deliveredBefore: true })).toEqual(legacy);
  });
});

describe('planReceiverSeeds: a start that fails between two seeds', () => {
  const running = (i: number) => offsets([0, 40n - BigInt(i)], [1, 12n + BigInt(i)]);
  const legacyAt = offsets([0, 9n], [1, 7n]);

  /** The state a start leaves when it has written `seeds` and no more. */
  const applied = (input: SeedPlanInput, seeds: readonly ReceiverSeed[]): SeedPlanInput => {
    const own = new Map(input.own);
    for (const s of seeds) own.set(s.receiver, s.at.offsets);
    return { ...input, own };
  };

  /** Where each receiver's consumer reads from: its seed, its own commits, else (earliest) the topic's start. */
  const startsOf = (input: SeedPlanInput) => {
    const seeds = new Map(planReceiverSeeds(input).map((s) => [s.receiver, s.at.offsets]));
    const ownCommits = (r: string) => {
      const own = input.own.get(r);
      return own !== undefined && [...own.values()].some((o) => o >= 0n) ? own : undefined;
    };
    return new Map(input.receivers.map((r) => [r, seeds.get(r) ?? ownCommits(r) ?? low]));
  };

  /** Every prefix of the plan written, then the retry: the same starts for every receiver. */
  const expectRetriesDecideTheSame = (input: SeedPlanInput) => {
    const plan = planReceiverSeeds(input);
    const first = startsOf(input);
    for (let written = 0; written < plan.length; written++) {
      const retry = applied(input, plan.slice(0, written));
      expect(startsOf(retry), `after ${plan.slice(0, written).map((s) => s.receiver)}`).toEqual(first);
    }
  };

  /** Where the retry seeds `receiver` after the start wrote its plan up to that receiver's seed and failed. */
  const retryAfterFailingOn = (input: SeedPlanInput, receiver: string) => {
    const plan = planReceiverSeeds(input);
    const written = plan.slice(
      0,
      plan.findIndex((s) => s.receiver === receiver),
    );
    return planReceiverSeeds(applied(input, written)).find((s) => s.receiver === receiver)?.at;
  };

  it('routes [a (new), b (records)], the seed of b fails: the retry still reads b from the start of the topic', () => {
    // Seeded at the end first, a was b's "running" sibling on the retry: b started at the end and
    // never got the alerts published while the router was stopped.
    const input: SeedPlanInput = {
      receivers: ['a', 'b'],
      own: new Map(),
      legacy: none,
      low,
      end,
      delivered: new Set(['b']),
    };
    expect(retryAfterFailingOn(input, 'b')).toEqual({ offsets: low, from: 'start of topic' });
  });

  it('routes [b (records), a (new)], the seed of a fails: the retry still starts a at the end of the topic', () => {
    // Seeded at the start first, b was a's "running" sibling on the retry: a brand-new receiver was
    // sent the topic's whole history.
    const input: SeedPlanInput = {
      receivers: ['b', 'a'],
      own: new Map(),
      legacy: none,
      low,
      end,
      delivered: new Set(['b']),
    };
    expect(retryAfterFailingOn(input, 'a')).toEqual({ offsets: end, from: 'end of topic' });
  });

  it('decides the same after every prefix of its writes, whatever the groups, records, legacy group and start', () => {
    const receivers = ['x', 'y', 'z'];
    let checked = 0;
    for (let committedMask = 0; committedMask < 8; committedMask++) {
      for (let deliveredMask = 0; deliveredMask < 8; deliveredMask++) {
        for (const legacy of [none, legacyAt]) {
          for (const start of ['latest', 'earliest'] as const) {
            const own = new Map(
              receivers.map((r, i): [string, GroupOffsets] => [r, committedMask & (1 << i) ? running(i) : none]),
            );
            const delivered = new Set(receivers.filter((_, i) => deliveredMask & (1 << i)));
            expectRetriesDecideTheSame({ receivers, own, legacy, low, end, delivered, start });
            checked++;
          }
        }
      }
    }
    expect(checked).toBe(256);
  });
});
