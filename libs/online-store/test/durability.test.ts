import { ConfigError } from '@driftline/core';
import { ReplyError } from 'ioredis';
import { describe, expect, it } from 'vitest';
import type { RedisClient } from '../src/redis/client.js';
import {
  checkRedisServer,
  durabilityFindings,
  ONLINE_FEATURES_STAKES,
  unsupportedRedis,
} from '../src/redis/durability.js';

describe('Redis durability rules of the join store', () => {
  it('accepts noeviction with an AOF synced every second (or always)', () => {
    const ok = { 'maxmemory-policy': 'noeviction', appendonly: 'yes', appendfsync: 'everysec', save: '' };
    expect(durabilityFindings(ok)).toEqual([]);
    expect(durabilityFindings({ ...ok, appendfsync: 'always' })).toEqual([]);
  });

  it('flags an evicting policy, a missing AOF and an AOF left to the OS', () => {
    expect(
      durabilityFindings({ 'maxmemory-policy': 'allkeys-lru', appendonly: 'yes', appendfsync: 'everysec' }),
    ).toEqual([expect.objectContaining({ setting: 'maxmemory-policy', value: 'allkeys-lru', expected: 'noeviction' })]);
    const none = durabilityFindings({ 'maxmemory-policy': 'noeviction', appendonly: 'no', save: '' });
    expect(none).toEqual([
      expect.objectContaining({ setting: 'appendonly', risk: expect.stringMatching(/no persistence at all/) }),
    ]);
    const rdb = durabilityFindings({ 'maxmemory-policy': 'noeviction', appendonly: 'no', save: '3600 1' });
    expect(rdb[0]?.risk).toMatch(/since the last RDB snapshot/);
    expect(durabilityFindings({ 'maxmemory-policy': 'noeviction', appendonly: 'yes', appendfsync: 'no' })).toEqual([
      expect.objectContaining({ setting: 'appendfsync', value: 'no' }),
    ]);
  });

  it('names what is at stake for each store', () => {
    const config = { 'maxmemory-policy': 'volatile-lru', appendonly: 'no', save: '' };
    expect(durabilityFindings(config).map((f) => f.risk)).toEqual([
      'under memory pressure Redis deletes join state: predictions lose their labels without an error',
      'no persistence at all (no AOF, no RDB snapshots): a Redis restart loses all join state',
    ]);
    expect(durabilityFindings(config, ONLINE_FEATURES_STAKES).map((f) => f.risk)).toEqual([
      'under memory pressure Redis deletes online features: entities lose their features (served as missing until their next event; then the aggregates of a windowed view count only the events kept since, until its longest window has passed), without an error',
      'no persistence at all (no AOF, no RDB snapshots): a Redis restart loses all online features',
    ]);
  });
});

describe('Redis servers the scripts cannot run on', () => {
  it('refuses a server older than 7.0 and a cluster node; a standalone 7.x passes', () => {
    expect(unsupportedRedis('# Server\r\nredis_version:6.2.14\r\nredis_mode:standalone')).toBe(
      'Redis 6.2: driftline needs 7.0 or later',
    );
    expect(unsupportedRedis('redis_version:7.2.4\r\n# Cluster\r\ncluster_enabled:1')).toMatch(/^a Redis Cluster/);
    expect(unsupportedRedis('redis_version:7.0.15\r\n# Cluster\r\ncluster_enabled:0')).toBeUndefined();
    expect(unsupportedRedis('')).toBeUndefined(); // nothing known (INFO refused): nothing refused
  });
});

describe('checkRedisServer when INFO fails', () => {
  /** A client of database 0 whose INFO fails with `error` (or answers `reply`). */
  const clientWhoseInfo = (answer: () => Promise<string>) =>
    ({ options: { db: 0 }, info: answer }) as unknown as RedisClient;

  it('rejects with a retriable error on a connection error or a timeout, so the caller asks again (found by a review)', async () => {
    // Before, any failure of INFO passed the check and the services never asked again: a Redis
    // Cluster behind a connection that dropped at the check then served every read with a 500.
    for (const message of ['Connection is closed.', 'Command timed out']) {
      const check = checkRedisServer(clientWhoseInfo(() => Promise.reject(new Error(message))));
      await expect(check).rejects.toMatchObject({ retriable: true, message: expect.stringContaining(message) });
      await expect(check).rejects.not.toBeInstanceOf(ConfigError);
    }
    // A reply naming a state that ends on its own is asked again too.
    const loading = new ReplyError('LOADING Redis is loading the dataset in memory');
    await expect(checkRedisServer(clientWhoseInfo(() => Promise.reject(loading)))).rejects.toMatchObject({
      retriable: true,
    });
  });

  it('tolerates a server that refuses INFO for good (managed Redis: NOPERM, an unknown command)', async () => {
    for (const reply of [
      "NOPERM this user has no permissions to run the 'info' command",
      "ERR unknown command 'INFO'",
    ]) {
      const refused = new ReplyError(reply);
      await expect(checkRedisServer(clientWhoseInfo(() => Promise.reject(refused)))).resolves.toBeUndefined();
    }
  });

  it('refuses a cluster node it could ask', async () => {
    const info = clientWhoseInfo(async () => 'redis_version:7.2.4\r\ncluster_enabled:1');
    await expect(checkRedisServer(info)).rejects.toBeInstanceOf(ConfigError);
  });
});
