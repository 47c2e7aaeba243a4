// A batch that does not fit the JS heap crash-looped with only V8's "heap out of memory" (the
// restarted process read the same records again). A consumer whose full fetch, decoded, cannot fit
// the heap now fails start-up with a ConfigError naming what to change, before any broker is asked.
import { getHeapStatistics } from 'node:v8';
import { ConfigError, type Logger, silentLogger } from '@driftline/core';
import { listTopics } from '@driftline/kafka';
import { kafkaFor, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { defineService, type ServiceDefinition, startRunner } from '../src/index.js';

const stack = inject('stack');

/** A logger that keeps the message and fields of every info and warn line. */
function recordingLogger(lines: Array<{ msg: string; fields: object }>): Logger {
  const record = (fields: object, msg = '') => void lines.push({ msg, fields });
  const logger: Logger = { ...silentLogger, info: record, warn: record, child: () => logger };
  return logger;
}

/** A service with two consumers, the second with a fetch bound of `secondFetchBytes` set by DRIFTLINE_TEST_FETCH_BYTES. */
function twoConsumers(prefix: string, secondFetchBytes: number) {
  const consumer = (name: string) => ({
    groupId: `${prefix}${name}`,
    topics: [`${prefix}${name}`],
    processor: { decode: () => null, process: async () => {} },
  });
  return defineService({
    name: 'two-consumers',
    description: 'test service with a second consumer whose fetch the heap cannot hold',
    needs: ['kafka'],
    envShape: {},
    configure: () => undefined,
    async start(ctx) {
      const first = await ctx.consume(consumer('first'));
      const second = await ctx.consume({
        ...consumer('second'),
        maxBytesPerPartition: secondFetchBytes,
        fetchBytesField: 'DRIFTLINE_TEST_FETCH_BYTES',
      });
      return { ready: () => first.ready() && second.ready(), stop: async () => {} };
    },
  }) as unknown as ServiceDefinition<never, unknown>;
}

describe('a consumer fetch the JS heap cannot hold fails start-up', () => {
  it('a ConfigError naming the variable, its topic never created; the consumer before it logged its bound and the heap', async () => {
    const prefix = `${uniqueName('fetch-heap')}.`;
    const heapLimit = getHeapStatistics().heap_size_limit;
    const lines: Array<{ msg: string; fields: object }> = [];
    const start = startRunner({
      services: [twoConsumers(prefix, heapLimit)],
      logger: recordingLogger(lines),
      env: {
        DRIFTLINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
        DRIFTLINE_TOPIC_PREFIX: prefix,
        DRIFTLINE_HTTP_PORT: '0',
        DRIFTLINE_STARTUP_TIMEOUT: '0',
      },
    });
    const error = await start.then(
      async (runner) => {
        await runner.stop();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe('DRIFTLINE_TEST_FETCH_BYTES');
    expect((error as ConfigError).message).toMatch(/heap limit \(\d+ MiB\).*lower it/);
    const topics = await listTopics(kafkaFor(stack.kafkaBrokers));
    expect(topics).toContain(`${prefix}first`);
    expect(topics).not.toContain(`${prefix}second`);
    const bound = lines.find((line) => line.msg.startsWith('consumer fetch'));
    expect(bound?.fields).toEqual({
      group: `${prefix}first`,
      fetchMiB: 10,
      decodedMiB: 60,
      consumersDecodedMiB: 60,
      heapLimitMiB: Math.ceil(heapLimit / 1_048_576),
    });
  });
});
