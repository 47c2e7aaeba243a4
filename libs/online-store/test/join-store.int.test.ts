import { uniqueName } from '@driftline/test-support';
import { afterAll, inject } from 'vitest';
import { createRedisClient, RedisJoinStore } from '../src/redis/index.js';
import { joinContractConfig, joinStoreContract } from './join-contract.js';

const stack = inject('stack');
const redis = createRedisClient({ url: stack.redisUrl, tls: false }, 'tooling', { name: 'join-contract' });
afterAll(() => redis.disconnect());

joinStoreContract('Redis', () => {
  const prefix = `${uniqueName('jt')}:`;
  return {
    store: new RedisJoinStore(redis, prefix, joinContractConfig),
    async cleanup() {
      const keys = await redis.keys(`${prefix}*`);
      if (keys.length > 0) await redis.unlink(...keys);
    },
  };
});
