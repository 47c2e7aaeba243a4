import { PoisonRecordError, SinkUnavailableError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { classifyRedisError } from '../src/redis/errors.js';

const classify = (message: string) => classifyRedisError(new Error(message), 'write');

describe('classifyRedisError', () => {
  it('makes outages and transient server states retriable, inside scripts too', () => {
    for (const message of [
      'Connection is closed.',
      'Command timed out',
      "Stream isn't writeable and enableOfflineQueue options is false",
      'connect ECONNREFUSED 127.0.0.1:6379',
      "OOM command not allowed when used memory > 'maxmemory'. script: 0f1e, on @user_script:64.",
      'BUSY Redis is busy running a script.',
      'LOADING Redis is loading the dataset in memory',
      "READONLY You can't write against a read only replica. script: ab12, on @user_script:3.",
    ]) {
      const error = classify(message);
      expect(error, message).toBeInstanceOf(SinkUnavailableError);
      expect(error.retriable).toBe(true);
    }
  });

  it('makes a wrong key type or a cluster a configuration fault (held by the loop, not poison), a script bug non-retriable', () => {
    for (const message of [
      'WRONGTYPE Operation against a key holding the wrong kind of value script: 9a, on @user_script:64.',
      "CROSSSLOT Keys in request don't hash to the same slot",
      'MOVED 14060 127.0.0.1:46392',
    ]) {
      const error = classify(message);
      expect(error, message).not.toBeInstanceOf(PoisonRecordError);
      expect(error.code).toBe('CONFIG_INVALID');
      expect(error.retriable).toBe(false);
    }
    expect(classify("CROSSSLOT Keys in request don't hash to the same slot").message).toMatch(/standalone Redis/);
    for (const message of [
      'ERR user_script:1: attempt to perform arithmetic on a nil value script: d13b, on @user_script:1.',
      'ERR Unknown Redis command called from script script: bd96, on @user_script:1.',
      "ERR Error compiling script (new function): user_script:1: '=' expected near 'x'",
      'ERR Error running script (call to f_0a): @user_script:12: WRONG',
    ]) {
      const error = classify(message);
      expect(error.retriable, message).toBe(false);
      expect(error.code).toBe('INTERNAL');
    }
  });
});

describe('waitReady', () => {
  it('a Redis that does not answer in time is an outage (retriable), not an internal error', async () => {
    const { createRedisClient, waitReady } = await import('../src/redis/client.js');
    const { freePort } = await import('@driftline/test-support');
    const { isRetriable } = await import('@driftline/core');
    // Nothing listens on the port: the client keeps reconnecting, never ready.
    const client = createRedisClient({ url: `redis://127.0.0.1:${await freePort()}`, tls: false }, 'tooling');
    try {
      const error = await waitReady(client, 200).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(String(error)).toMatch(/Redis not ready within 200 ms/);
      expect(isRetriable(error)).toBe(true);
    } finally {
      client.disconnect();
    }
  });
});
