// A drift monitor stopped while its broker hangs (accepts connections, never answers): each of its
// three consumers (models.v1 follower, merge, stage one) gives up leaving its group after its 10 s
// bound. Its Kafka connections go through a proxy that can go silent (test-support's brokerProxy,
// as in libs/kafka's blackholed-broker test): the shared stack is never touched.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { brokerProxy, eventually, uniqueName } from '@driftline/test-support';
import { afterEach, describe, expect, inject, it } from 'vitest';
import { driftEnv, driftMonitors } from './runner.js';

const stack = inject('stack');
/** How long a consumer's stop may wait on Kafka (STOP_DEADLINE_MS of libs/kafka). */
const CONSUMER_STOP_BOUND_MS = 10_000;

describe('drift-monitor stop with a hung broker', () => {
  const monitors = driftMonitors();
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await Promise.resolve(fn()).catch(() => {});
  });

  it('stops its three consumers together: one 10 s bound, not three in turn (30 s)', async () => {
    // Every connection of the monitor to the broker goes through the proxy.
    const proxy = await brokerProxy(stack.kafkaBrokers[0]!);
    cleanup.push(() => proxy.close());

    const runner = await monitors.start(
      driftEnv(
        { ...stack, kafkaBrokers: [proxy.broker] },
        {
          prefix: `${uniqueName('drift-stop')}.`,
          partitions: 1,
          database: uniqueName('dstop').replaceAll('-', '_'),
          path: mkdtempSync(join(tmpdir(), 'drift-stop-')),
        },
      ),
    );
    // Every consumer in its group (a stop before the join leaves nothing to wait for).
    await eventually(async () => (runner.ready() ? true : undefined), 30_000, 100);
    expect(proxy.connections()).toBeGreaterThan(0); // its Kafka connections do go through the proxy

    proxy.stall();
    const started = Date.now();
    await runner.stop();
    const took = Date.now() - started;
    // The broker did hang: a consumer waited out its bound (a stop that answers at once proves nothing).
    expect(took).toBeGreaterThanOrEqual(CONSUMER_STOP_BOUND_MS - 500);
    expect(took).toBeLessThan(2.5 * CONSUMER_STOP_BOUND_MS); // one bound, not three in turn; slack for a loaded run
  }, 60_000);
});
