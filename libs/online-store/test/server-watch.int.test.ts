import { privateRedis } from '@driftline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { createRedisClient, waitReady, watchRedisServer } from '../src/redis/index.js';
import { recordingLogger } from './support.js';

/** Polls `check` every 100 ms until true or `timeoutMs` passes; the last value. */
async function within(timeoutMs: number, check: () => boolean): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100));
  return check();
}

// Found by a review: the watcher judged once and never again, so a cluster replaced by a
// standalone Redis at the same address stayed "unsupported" (the model server, whose liveness
// fails at its first store read, then dropped out hours after Redis was fixed), and a standalone
// replaced by a cluster stayed "supported".
describe('watchRedisServer follows the server behind the URL (real redis-server)', () => {
  const cleanup: Array<() => unknown> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  it('a cluster replaced by a standalone Redis on the same port passes again, and back', async () => {
    let server = await privateRedis({ cluster: true });
    const port = server.port;
    cleanup.push(() => server.stop());
    const client = createRedisClient({ url: server.url, tls: false }, 'tooling');
    client.on('error', () => {}); // refused while the server is swapped
    cleanup.push(() => client.disconnect());
    await waitReady(client, 10_000);
    const errors: Array<{ obj: object; msg?: string }> = [];
    const watch = watchRedisServer({
      client,
      databaseAccepted: Promise.resolve(),
      logger: recordingLogger('error', errors),
      consequence: 'unsupported',
    });
    cleanup.push(() => watch.stop());
    expect(await within(6_000, () => !watch.supported())).toBe(true);
    expect(errors).toHaveLength(1);

    server.stop();
    server = await privateRedis({ port });
    expect(await within(8_000, () => watch.supported())).toBe(true);

    server.stop();
    server = await privateRedis({ port, cluster: true });
    expect(await within(8_000, () => !watch.supported())).toBe(true);
    expect(errors).toHaveLength(2);
  });
});
