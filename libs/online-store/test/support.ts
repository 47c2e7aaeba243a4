import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@driftline/core';
import { freePort } from '@driftline/test-support';
import { createRedisClient, type RedisClient, waitReady } from '../src/redis/index.js';

/** A private redis-server (the shared stack's one is used by every other test: never reconfigure it). */
export async function privateRedis(
  args: string[],
  port?: number,
): Promise<{ url: string; port: number; process: ChildProcess; dir: string }> {
  const listen = port ?? (await freePort());
  const dir = mkdtempSync(join(tmpdir(), 'private-redis-'));
  const child = spawn('redis-server', ['--port', String(listen), '--bind', '127.0.0.1', '--dir', dir, ...args], {
    stdio: 'ignore',
  });
  return { url: `redis://127.0.0.1:${listen}`, port: listen, process: child, dir };
}

/**
 * The arguments of a one-node Redis Cluster: its cluster bus on a port picked free too. By default
 * the bus listens on the client port + 10000, which the free-port pick never checked: a node whose
 * bus port was taken exited at once ("Failed listening on port … (cluster), aborting"), and the
 * test waited 10 s for a server that was gone (a fresh clone's run).
 */
export async function clusterNodeArgs(clientPort: number): Promise<string[]> {
  let bus = await freePort();
  while (bus === clientPort) bus = await freePort();
  return ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf', '--cluster-port', String(bus)];
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
  cleanup.push(() => {
    server.process.kill('SIGKILL');
    rmSync(server.dir, { recursive: true, force: true });
  });
  const tooling = createRedisClient({ url: server.url, tls: false }, 'tooling');
  tooling.on('error', () => {}); // refused until the fresh server listens
  cleanup.push(() => tooling.disconnect());
  await waitReady(tooling, 10_000);
  return { server, tooling };
}

/** A logger that records the lines of one level (the others are dropped). */
export function recordingLogger(level: 'warn' | 'error', lines: Array<{ obj: object; msg?: string }>): Logger {
  const record = (obj: object, msg?: string) => void lines.push(msg === undefined ? { obj } : { obj, msg });
  const ignore = () => {};
  const logger = {
    debug: ignore,
    info: ignore,
    warn: level === 'warn' ? record : ignore,
    error: level === 'error' ? record : ignore,
    child: () => logger,
  };
  return logger;
}
