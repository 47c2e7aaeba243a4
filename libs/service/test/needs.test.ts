import { ConfigError, silentLogger } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  defineService,
  type ServiceContext,
  type ServiceDefinition,
  type ServiceNeed,
  startRunner,
} from '../src/index.js';

/** A service that records its context and, optionally, touches a resource at start. */
function fakeService(name: string, needs: readonly ServiceNeed[], use?: (ctx: ServiceContext) => unknown) {
  const seen: { ctx?: ServiceContext } = {};
  const definition = defineService({
    name,
    description: 'test service',
    needs,
    envShape: { DRIFTLINE_REDIS_URL: z.string().regex(/^redis:\/\//) },
    configure: (env) => env.DRIFTLINE_REDIS_URL,
    async start(ctx) {
      seen.ctx = ctx;
      await use?.(ctx);
      return { ready: () => true, stop: async () => {} };
    },
  });
  return { definition: definition as unknown as ServiceDefinition<never, unknown>, seen };
}

const base = { DRIFTLINE_HTTP_PORT: '0', DRIFTLINE_REDIS_URL: 'redis://127.0.0.1:1' };

describe('service needs', () => {
  it('starts a Redis-only service with no Kafka, registry or ClickHouse variable, and creates none of them', async () => {
    const { definition, seen } = fakeService('reader', ['redis']);
    const runner = await startRunner({ services: [definition], env: base, logger: silentLogger });
    try {
      expect(runner.ready()).toBe(true);
      const ctx = seen.ctx!;
      // Not declared: refused, so an undeclared use cannot slip past the start-up validation.
      expect(() => ctx.kafka()).toThrow(/reader uses kafka but does not declare it/);
      expect(() => ctx.codec()).toThrow(/reader uses registry but does not declare it/);
      await expect(ctx.producer()).rejects.toThrow(/does not declare/);
    } finally {
      await runner.stop();
    }
  });

  it('fails start-up naming DRIFTLINE_KAFKA_BROKERS when a service that needs Kafka runs without brokers', async () => {
    const { definition } = fakeService('consumer', ['kafka', 'registry']);
    const start = startRunner({
      services: [definition],
      env: { ...base, DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1' },
      logger: silentLogger,
    });
    await expect(start).rejects.toBeInstanceOf(ConfigError);
    await expect(start).rejects.toMatchObject({ field: 'DRIFTLINE_KAFKA_BROKERS' });
    await expect(start).rejects.toThrow(/^DRIFTLINE_KAFKA_BROKERS: .*\(required: consumer needs kafka\)$/);
  });

  it('names the registry URL when a service needs the registry', async () => {
    const { definition } = fakeService('decoder', ['kafka', 'registry']);
    await expect(
      startRunner({ services: [definition], env: { ...base, DRIFTLINE_KAFKA_BROKERS: 'a:1' }, logger: silentLogger }),
    ).rejects.toThrow(/^DRIFTLINE_SCHEMA_REGISTRY_URL: .*needs registry/);
  });

  it('still checks a variable of an unneeded resource when it is set', async () => {
    const { definition } = fakeService('reader', ['redis']);
    await expect(
      startRunner({
        services: [definition],
        env: { ...base, DRIFTLINE_KAFKA_SSL: 'maybe' },
        logger: silentLogger,
      }),
    ).rejects.toThrow(/^DRIFTLINE_KAFKA_SSL: must be true or false/);
  });

  it('creates Kafka clients lazily: a declared but unused broker is never contacted', async () => {
    // 127.0.0.1:1 refuses connections: connecting at start-up would fail (after retries).
    const { definition, seen } = fakeService('lazy', ['kafka', 'registry']);
    const runner = await startRunner({
      services: [definition],
      env: { ...base, DRIFTLINE_KAFKA_BROKERS: '127.0.0.1:1', DRIFTLINE_SCHEMA_REGISTRY_URL: 'http://127.0.0.1:1' },
      logger: silentLogger,
    });
    const ctx = seen.ctx!;
    // Creating the handle and the codec opens no connection either.
    expect(ctx.kafka().brokers).toEqual(['127.0.0.1:1']);
    expect(ctx.kafka()).toBe(ctx.kafka());
    expect(ctx.codec()).toBe(ctx.codec());
    await runner.stop();
  });

  it('shares one lazily created client between services and the runner context', async () => {
    const a = fakeService('a', ['kafka']);
    const b = fakeService('b', ['kafka']);
    const runner = await startRunner({
      services: [a.definition, b.definition],
      env: { ...base, DRIFTLINE_KAFKA_BROKERS: '127.0.0.1:1' },
      logger: silentLogger,
    });
    expect(a.seen.ctx!.kafka()).toBe(b.seen.ctx!.kafka());
    expect(runner.context.kafka()).toBe(a.seen.ctx!.kafka());
    // Nobody needs the registry: even the runner's context refuses it.
    expect(() => runner.context.codec()).toThrow(/does not declare/);
    await runner.stop();
  });
});
