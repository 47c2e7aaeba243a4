// One private redis-server helper for every test (test-support's); these wrappers keep this package's call shapes.
export { clusterNodeArgs, recordingLogger } from '@driftline/test-support';

import { type PrivateRedis, privateRedis as startPrivateRedis } from '@driftline/test-support';
import { createRedisClient, type RedisClient, waitReady } from '../src/redis/index.js';

/** A private redis-server, not waited for (test-support's, started with `args` on `port`). */
export function privateRedis(args: string[], port?: number): Promise<PrivateRedis> {
  return startPrivateRedis({ args, ...(port === undefined ? {} : { port }), ready: false });
}

/**
 * A private redis-server (`args`) and a ready tooling client of it; `cleanup` (run in reverse
 * order after each test) disconnects the client, kills the server and removes its folder.
 */
export async function privateRedisWithTooling(
  args: string[],
  cleanup: Array<() => Promise<void> | void>,
): Promise<{ server: Awaited<ReturnType<typeof privateRedis>>; tooling: RedisClient }> {
  const server = await privateRedis(args);
  cleanup.push(() => server.stop());
  const tooling = createRedisClient({ url: server.url, tls: false }, 'tooling');
  tooling.on('error', () => {}); // refused until the fresh server listens
  cleanup.push(() => tooling.disconnect());
  await waitReady(tooling, 10_000);
  return { server, tooling };
}
