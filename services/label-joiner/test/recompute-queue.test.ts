// The recompute pass over the dirty queue: windows that keep failing must not hold up the others.
import { SinkUnavailableError } from '@driftline/core';
import { InMemoryJoinStore } from '@driftline/join';
import { createMetricsRegistry } from '@driftline/observability';
import { type WindowRef, windowKey } from '@driftline/performance';
import { describe, expect, it } from 'vitest';
import { type RecomputeOptions, WindowRecomputer } from '../src/loops.js';
import { recomputeOptions } from './fixtures/recompute-options.js';

const WINDOW = 600_000;
const options: RecomputeOptions = { ...recomputeOptions(WINDOW), batch: 5 };

/** A recomputer whose windows of model `broken` always fail (retriably or not); the others succeed. */
class Probe extends WindowRecomputer {
  readonly recomputed: string[] = [];
  constructor(
    store: InMemoryJoinStore<Buffer, Buffer>,
    private readonly retriable: boolean,
  ) {
    super(
      store,
      {} as never,
      options,
      { publish: async () => {} },
      async () => false,
      async () => {},
      createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    );
  }
  override async recompute(ref: WindowRef) {
    if (ref.model === 'broken') {
      if (this.retriable) throw new SinkUnavailableError('clickhouse read: timeout');
      throw new Error('calibration map: malformed');
    }
    this.recomputed.push(ref.model);
    return [];
  }
}

async function queue(brokenWindows: number): Promise<InMemoryJoinStore<Buffer, Buffer>> {
  const store = new InMemoryJoinStore<Buffer, Buffer>({ maxDelayMs: 3_600_000, graceMs: 0, tombstoneMs: 3_600_000 });
  // The broken windows are marked first (oldest), the healthy one last.
  const marks = [
    ...Array.from({ length: brokenWindows }, (_, i) => ({ model: 'broken', windowStart: i * WINDOW })),
    { model: 'healthy', windowStart: 0 },
  ];
  for (const [i, m] of marks.entries()) {
    const key = windowKey({ model: m.model, modelVersion: 'v1', windowStart: m.windowStart });
    await store.applyPredictions(
      [{ model: m.model, id: `p${i}`, eventTime: m.windowStart, windowKey: key, payload: Buffer.from('x') }],
      1_000,
      'predictions/0',
    );
  }
  return store;
}

describe('the recompute pass over the dirty queue (found by a review)', () => {
  it.each([
    ['refused for good, a batch of them', false, 5],
    ['failing retriably, three of them', true, 3],
  ])('reaches a healthy window behind windows that keep failing: %s', async (_, retriable, broken) => {
    const store = await queue(broken);
    const probe = new Probe(store, retriable);
    for (let pass = 0; pass < 3 && probe.recomputed.length === 0; pass++) await probe.pass().catch(() => {});
    expect(probe.recomputed).toEqual(['healthy']);
    // The failing windows stay dirty, for later passes.
    expect((await store.dirtyWindows(100)).filter((d) => d.key.includes('broken'))).toHaveLength(broken);
  });
});
