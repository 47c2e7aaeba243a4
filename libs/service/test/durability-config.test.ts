import { parseEnv } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { baseEnvShape, toCommonConfig } from '../src/common-config.js';

const parse = (env: Record<string, string>) => toCommonConfig(parseEnv(baseEnvShape, env));

describe('topic durability and stall timeout config', () => {
  it('defaults: replication auto (decided from the cluster), stall timeout 5 minutes', () => {
    const c = parse({});
    expect(c.topicReplicationFactor).toBeUndefined();
    expect(c.topicMinInsyncReplicas).toBeUndefined();
    expect(c.stallTimeoutMs).toBe(300_000);
  });

  it('reads explicit values', () => {
    const c = parse({
      DRIFTLINE_TOPIC_REPLICATION_FACTOR: '3',
      DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS: '2',
      DRIFTLINE_STALL_TIMEOUT: '90s',
    });
    expect([c.topicReplicationFactor, c.topicMinInsyncReplicas, c.stallTimeoutMs]).toEqual([3, 2, 90_000]);
    expect(parse({ DRIFTLINE_TOPIC_REPLICATION_FACTOR: 'auto' }).topicReplicationFactor).toBeUndefined();
  });

  it('names the field of a wrong value', () => {
    expect(() => parse({ DRIFTLINE_TOPIC_REPLICATION_FACTOR: '0' })).toThrow(/^DRIFTLINE_TOPIC_REPLICATION_FACTOR: /);
    expect(() => parse({ DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS: 'two' })).toThrow(
      /^DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS: /,
    );
    expect(() => parse({ DRIFTLINE_STALL_TIMEOUT: '10ms' })).toThrow(/^DRIFTLINE_STALL_TIMEOUT: /);
    // A timer's bound: Node fires a timer past 2^31 - 1 ms at once, so `30d` ended the wait at once.
    expect(() => parse({ DRIFTLINE_STARTUP_TIMEOUT: '30d' })).toThrow(
      /^DRIFTLINE_STARTUP_TIMEOUT: must be at most 2147483647 ms/,
    );
    expect(parse({ DRIFTLINE_STARTUP_TIMEOUT: '24d' }).startupTimeoutMs).toBe(24 * 86_400_000);
    expect(() => parse({ DRIFTLINE_TOPIC_REPLICATION_FACTOR: '2', DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS: '3' })).toThrow(
      /^DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS: must be at most DRIFTLINE_TOPIC_REPLICATION_FACTOR/,
    );
  });
});
