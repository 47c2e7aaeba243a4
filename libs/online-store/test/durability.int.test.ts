import { rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { freePort } from '@driftline/test-support';
import { afterEach, describe, expect, it } from 'vitest';
import { checkRedisDurability, checkRedisServer, createRedisClient, waitReady } from '../src/redis/index.js';
import { clusterNodeArgs, privateRedis, privateRedisWithTooling, recordingLogger } from './support.js';

describe('Redis durability check at start-up (real redis-server)', () => {
  const cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function check(args: string[]) {
    const { tooling: redis } = await privateRedisWithTooling(args, cleanup);
    const lines: Array<{ obj: object; msg?: string }> = [];
    const report = await checkRedisDurability(redis, recordingLogger('warn', lines));
    return { report, lines };
  }

  it('a private cluster node starts although the default bus port (its port + 10000) is taken', async () => {
    // The free-port pick checks the client port only; a node whose bus port was busy exited.
    let clientPort = await freePort();
    while (clientPort + 10_000 > 65_535) clientPort = await freePort();
    const squatter = createServer();
    await new Promise<void>((resolve) => squatter.listen(clientPort + 10_000, '127.0.0.1', resolve));
    cleanup.push(() => new Promise<void>((resolve) => squatter.close(() => resolve())));
    const node = await privateRedis(await clusterNodeArgs(clientPort), clientPort);
    cleanup.push(() => {
      node.process.kill('SIGKILL');
      rmSync(node.dir, { recursive: true, force: true });
    });
    const redis = createRedisClient({ url: node.url, tls: false }, 'tooling');
    redis.on('error', () => {});
    cleanup.push(() => redis.disconnect());
    await waitReady(redis, 10_000);
    expect(await redis.call('CLUSTER', 'MYID')).toMatch(/^[0-9a-f]{40}$/);
  });

  it('start-up refuses a Redis Cluster node, naming DRIFTLINE_REDIS_URL; a standalone 7.x passes', async () => {
    // Every join script failed with CROSSSLOT, retried as an outage for ever (found by a review).
    const clusterPort = await freePort();
    const cluster = await privateRedis(await clusterNodeArgs(clusterPort), clusterPort);
    const standalone = await privateRedis([]);
    for (const server of [cluster, standalone])
      cleanup.push(() => {
        server.process.kill('SIGKILL');
        rmSync(server.dir, { recursive: true, force: true });
      });
    const connect = async (url: string) => {
      const redis = createRedisClient({ url, tls: false }, 'tooling');
      redis.on('error', () => {});
      cleanup.push(() => redis.disconnect());
      await waitReady(redis, 10_000);
      return redis;
    };
    await expect(checkRedisServer(await connect(cluster.url))).rejects.toThrow(
      /^DRIFTLINE_REDIS_URL: a Redis Cluster: driftline needs a standalone Redis/,
    );
    await expect(checkRedisServer(await connect(standalone.url))).resolves.toBeUndefined();
  });

  it('warns, naming the setting, on an evicting policy and no persistence', async () => {
    const { report, lines } = await check(['--maxmemory-policy', 'allkeys-lru', '--appendonly', 'no', '--save', '']);
    expect(report.checked).toBe(true);
    expect(report.findings.map((f) => f.setting)).toEqual(['maxmemory-policy', 'appendonly']);
    expect(lines.map((l) => l.msg)).toEqual([
      expect.stringMatching(/maxmemory-policy is allkeys-lru, expected noeviction/),
      expect.stringMatching(/appendonly is no, expected yes .*no persistence at all/),
    ]);
  });

  it('is silent on a durable configuration', async () => {
    const { report, lines } = await check([
      '--maxmemory-policy',
      'noeviction',
      '--appendonly',
      'yes',
      '--appendfsync',
      'everysec',
    ]);
    expect(report).toEqual({ checked: true, findings: [] });
    expect(lines).toEqual([]);
  });

  it('tolerates a managed Redis that forbids CONFIG: one warning, no failure', async () => {
    const { report, lines } = await check(['--rename-command', 'CONFIG', '']);
    expect(report.checked).toBe(false);
    expect(lines).toHaveLength(1);
    expect(lines[0]?.msg).toMatch(/could not check the Redis durability/);
  });
});

describe('a Redis demoted under an open connection (real redis-servers)', () => {
  it('READONLY reconnects the client: a moved Service or DNS name then reaches the new primary (found by a review)', async () => {
    const [old, next] = [await privateRedis(['--save', '']), await privateRedis(['--save', ''])];
    const redis = createRedisClient({ url: old.url, tls: false }, 'online-write');
    redis.on('error', () => {});
    let readies = 0;
    redis.on('ready', () => readies++);
    try {
      await waitReady(redis, 10_000);
      await redis.set('k', '1');
      const admin = createRedisClient({ url: old.url, tls: false }, 'tooling');
      admin.on('error', () => {});
      await waitReady(admin, 10_000);
      const nextPort = new URL(next.url).port;
      await admin.call('REPLICAOF', '127.0.0.1', nextPort); // a switchover: the old primary is a replica now
      admin.disconnect();
      await expect(redis.set('k', '2')).rejects.toThrow(/READONLY/);
      // The client reconnects (it kept writing to the replica on the same socket before).
      const deadline = Date.now() + 10_000;
      while (readies < 2 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      expect(readies).toBe(2);
    } finally {
      redis.disconnect();
      for (const s of [old, next]) {
        s.process.kill('SIGKILL');
        rmSync(s.dir, { recursive: true, force: true });
      }
    }
  }, 30_000);
});
