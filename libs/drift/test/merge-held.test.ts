import { describe, expect, it } from 'vitest';
import { type ClosedMessage, MergeState, PARTIALS_FORMAT } from '../src/index.js';

const W = 5_000;
const MIN = 60_000;
const T = 1_700_000_000_000;

/** Source `partition`'s marker (of 2) for the window starting at `start`, closed up to its end. */
function marker(partition: number, start: number): ClosedMessage {
  return {
    type: 'closed',
    format: PARTIALS_FORMAT,
    source: { topic: 'p', partition, partitions: 2 },
    windowStart: start,
    windowEnd: start + W,
    closedUntil: start + W,
    models: [],
  };
}

describe('MergeState.held: what holds the windows back, in event time', () => {
  it('a source still sending but 20 minutes behind holds every later window; held says how far and which source', () => {
    const m = new MergeState({ idleTimeoutMs: 20_000 }, 0);
    expect(m.held()).toBeUndefined();
    let offset = 0;
    // One minute of processing time, a window a second: source 0 live, source 1 stamped 20 minutes behind.
    for (let i = 0; i < 60; i++) {
      const now = i * 1000;
      m.add(marker(0, T + i * W), offset++, now);
      m.add(marker(1, T - 20 * MIN + i * W), offset++, now);
      const { complete } = m.ready(now);
      m.markDone(complete);
    }
    // Its own old windows complete (source 0's frontier is past them); never idle (it speaks every
    // second), it holds every live window.
    expect(m.completedThrough()).toBe(T - 20 * MIN + 59 * W);
    expect(m.pendingWindows()).toBe(60);
    const held = m.held();
    expect(held?.windowStart).toBe(T);
    // From the oldest live window's end to source 0's frontier; source 1 lags by 20 minutes.
    expect(held?.heldMs).toBe(59 * W);
    expect(held?.slowest).toEqual({ source: 1, lagMs: 20 * MIN });
  });

  it('is 0 with both sources in step, and the window waits only for listed partials or nothing', () => {
    const m = new MergeState({ idleTimeoutMs: 20_000 }, 0);
    m.add(marker(0, T), 0, 0);
    // Waiting for source 1, which has said nothing yet: no frontier, so its lag is unknown.
    expect(m.held()).toEqual({ heldMs: 0, windowStart: T, slowest: { source: 1, lagMs: Number.POSITIVE_INFINITY } });
    m.add(marker(1, T), 1, 0);
    const { complete } = m.ready(0);
    expect(complete.map((w) => w.windowStart)).toEqual([T]);
    m.markDone(complete);
    expect(m.held()).toBeUndefined();
  });
});
