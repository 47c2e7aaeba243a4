import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import { COMMAND_TIMED_OUT, type RedisClient, STALLED_AFTER_TIMEOUTS, StallWatch } from '../src/redis/client.js';

/** A client as StallWatch sees it: its command timeout, status and disconnects (counted). */
function fakeClient(commandTimeout: number) {
  const client = {
    options: { commandTimeout },
    status: 'ready',
    disconnects: 0,
    disconnect: () => client.disconnects++,
  };
  return client;
}

const turn = () => new Promise((resolve) => setImmediate(resolve));

const timedOut = () => new Error(COMMAND_TIMED_OUT);

describe('StallWatch', () => {
  it('drops a connection that answered nothing for the command timeout, after 3 timeouts', async () => {
    let now = 0;
    const client = fakeClient(2_000);
    const watch = new StallWatch(client as unknown as RedisClient, STALLED_AFTER_TIMEOUTS, () => now);
    watch.observe(null);
    now = 2_100;
    for (let i = 0; i < STALLED_AFTER_TIMEOUTS; i++) watch.observe(timedOut());
    expect(watch.stalled).toBe(true);
    await turn();
    expect(client.disconnects).toBe(1);
    expect(watch.stalled).toBe(true);
  });

  it('a late event loop (timers before reads) whose socket then delivers replies is not a stall', async () => {
    let now = 0;
    const client = fakeClient(2_000);
    const watch = new StallWatch(client as unknown as RedisClient, STALLED_AFTER_TIMEOUTS, () => now);
    watch.observe(null);
    now = 6_000; // the loop woke 6 s late: every command's timer fires first
    for (let i = 0; i < 10; i++) watch.observe(timedOut());
    now = 6_001;
    watch.observe(null); // then the poll phase reads the replies of the commands sent since
    await turn();
    expect(client.disconnects).toBe(0);
    expect(watch.stalled).toBe(false);
  });

  // A review: under overload (a queue of reads longer than the timeout) the connection kept
  // answering, yet 3 timeouts dropped it, failing every read in flight and readiness.
  it('takes timeouts while answers keep arriving for overload: no disconnect, not stalled', async () => {
    let now = 0;
    const client = fakeClient(2_000);
    const watch = new StallWatch(client as unknown as RedisClient, STALLED_AFTER_TIMEOUTS, () => now);
    // Each answer followed by 4 timeouts of reads queued behind it (an error reply is an answer too).
    for (let i = 0; i < 100; i++) {
      now += 10;
      if (i % 5 === 0) watch.observe(i % 10 === 0 ? null : new ReplyError('ERR x'));
      else watch.observe(timedOut());
    }
    await turn();
    expect(client.disconnects).toBe(0);
    expect(watch.stalled).toBe(false);
    expect(watch.ready()).toBe(true);
  });
});
