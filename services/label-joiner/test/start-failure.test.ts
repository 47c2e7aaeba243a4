import { parseEnv } from '@driftline/core';
import type { ServiceContext } from '@driftline/service';
import { afterAll, describe, expect, it, vi } from 'vitest';

// The store's factory is replaced only to see whether its client is closed: no server is involved.
const closed = vi.fn(async () => {});
vi.mock('@driftline/online-store/redis', async (original) => ({
  ...(await original<object>()),
  createRedisJoinStore: () => ({ close: closed, redis: {}, ready: () => false }),
}));

// Unit files share a module cache (isolate: false): another file may have loaded the service with
// the real store already, so the service is loaded afresh, with the replaced factory.
vi.resetModules();
const { labelJoinerService } = await import('../src/service.js');
const { labelJoinerEnvShape, toLabelJoinerConfig } = await import('../src/config.js');

describe('label-joiner start-up', () => {
  // Unit files share the mocker too (isolate: false): the replaced factory must not outlive this file.
  afterAll(() => {
    vi.doUnmock('@driftline/online-store/redis');
    vi.resetModules();
  });

  it('closes its Redis store when a later step of the start fails (ClickHouse down)', async () => {
    const codec = { forTopic: () => ({ decode: async () => ({}) }) };
    const ctx = {
      logger: { info() {}, warn() {}, error() {}, debug() {}, child: () => ctx.logger },
      topic: (name: string) => `${name}.v1`,
      // No prefix: the group keeps its name, nothing to take over (Kafka is not asked).
      common: { topicPrefix: '', eventTime: { maxFutureMs: 3_600_000, minMs: 0 } },
      kafka: () => ({}),
      codec: () => codec,
      publisher: () => ({ prepare: async () => {} }),
      warehouse: async () => {
        throw new Error('clickhouse unreachable');
      },
    } as unknown as ServiceContext;
    const config = toLabelJoinerConfig(parseEnv(labelJoinerEnvShape, { DRIFTLINE_REDIS_URL: 'redis://127.0.0.1:1' }));
    await expect(labelJoinerService.start(ctx, config)).rejects.toThrow('clickhouse unreachable');
    // Left open, its client reconnected (and logged) for ever while the runner retried the start.
    expect(closed).toHaveBeenCalledTimes(1);
  });
});
