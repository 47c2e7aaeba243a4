import { createServer, type Server } from 'node:net';
import type { Logger } from '@driftline/core';
import { KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, KafkaJSProtocolError } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import { configDrift, isTransient, unknownTopic, warnOnConfigDrift } from '../src/admin.js';
import { createKafkaClient } from '../src/client.js';

describe('unknownTopic: when partitionCount may say NOT_FOUND', () => {
  it('an unknown topic or one without partitions yet, not a broker that does not answer (found by a review)', () => {
    // Every retriable failure was NOT_FOUND: a broker that never answers named an existing topic
    // missing after 253 s, and the model-controller logged so.
    expect(
      unknownTopic(
        Object.assign(new Error('This server does not host this topic-partition'), {
          type: 'UNKNOWN_TOPIC_OR_PARTITION',
        }),
      ),
    ).toBe(true);
    expect(unknownTopic(Object.assign(new Error('topic t has no partitions yet'), { retriable: true }))).toBe(true);
    expect(unknownTopic(new Error('Broker not connected'))).toBe(false);
    expect(unknownTopic(new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092'))).toBe(
      false,
    );
    expect(unknownTopic(undefined)).toBe(false);
  });
});

describe('isTransient (admin calls)', () => {
  it('a broker that refuses connections is an outage, not a configuration error (found by make chaos)', () => {
    // kafkajs gives up connecting with KafkaJSNumberOfRetriesExceeded (not retriable itself) around
    // the connection error: a service started during a broker restart exited 78 "configuration error".
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:9092');
    expect(isTransient(refused)).toBe(true);
    expect(isTransient(new KafkaJSNumberOfRetriesExceeded(refused, { retryCount: 5, retryTime: 3_000 }))).toBe(true);
  });

  it('a TypeError from inside kafkajs during a broker restart is an outage too (found by make chaos)', () => {
    const tripped = new TypeError("Cannot read properties of null (reading 'topicMetadata')");
    expect(isTransient(tripped)).toBe(true);
    expect(isTransient(new KafkaJSNumberOfRetriesExceeded(tripped, { retryCount: 5, retryTime: 3_000 }))).toBe(true);
    expect(isTransient(new Error('INVALID_REPLICATION_FACTOR'))).toBe(false);
  });

  it('no group coordinator found while the brokers restart is an outage (found by a chaos run: exit 78)', () => {
    // kafkajs' typings give its error classes no constructor arguments: its runtime shape instead.
    const noCoordinator = Object.assign(new Error('Failed to find group coordinator'), {
      name: 'KafkaJSGroupCoordinatorNotFound',
      retriable: false,
    });
    expect(isTransient(noCoordinator)).toBe(true);
    expect(isTransient(new KafkaJSNumberOfRetriesExceeded(noCoordinator, { retryCount: 5, retryTime: 3_000 }))).toBe(
      true,
    );
  });

  it('a broker that takes connections and never answers is an outage (found by a review: exit 78)', () => {
    // kafkajs' connect against a silent listener ends, after about 30 s, in a plain Error of its
    // broker layer; a wait for another connect to that broker ends in a lock timeout.
    const silent = new Error('Broker not connected');
    expect(isTransient(silent)).toBe(true);
    expect(isTransient(new KafkaJSNumberOfRetriesExceeded(silent, { retryCount: 5, retryTime: 3_000 }))).toBe(true);
    // kafkajs' typings give its error classes no constructor arguments: its runtime shape instead.
    const lockTimeout = (message: string) =>
      Object.assign(new Error(message), { name: 'KafkaJSLockTimeout', retriable: false });
    expect(
      isTransient(lockTimeout('Timeout while acquiring lock (1 waiting locks): "connect to broker k1:9092"')),
    ).toBe(true);
    // Only those: another plain Error stays a configuration error.
    expect(isTransient(new Error('Broker not connected: wrong'))).toBe(false);
    expect(isTransient(lockTimeout('Timeout while acquiring lock (1 waiting locks)'))).toBe(false);
  });

  it('a refusal by the broker stays permanent', () => {
    const denied = new KafkaJSProtocolError({
      message: 'denied',
      type: 'TOPIC_AUTHORIZATION_FAILED',
      code: 29,
      retriable: false,
    } as never);
    expect(isTransient(denied)).toBe(false);
    expect(isTransient(new KafkaJSNumberOfRetriesExceeded(denied, { retryCount: 5, retryTime: 3_000 }))).toBe(false);
  });
});

describe('configDrift (a required config an existing topic lacks)', () => {
  const brokers = ['k1:9092', 'k2:9092'];

  it('names each differing key with both values and the command that sets only those', () => {
    const found = new Map([
      ['retention.ms', '604800000'],
      ['retention.bytes', '-1'],
      ['cleanup.policy', 'delete'],
    ]);
    const drift = configDrift(
      'prod.models.v1',
      { 'retention.ms': '-1', 'retention.bytes': '-1', 'cleanup.policy': 'compact,delete' },
      found,
      brokers,
    );
    expect(drift?.mismatches).toEqual([
      { key: 'retention.ms', found: '604800000', required: '-1' },
      { key: 'cleanup.policy', found: 'delete', required: 'compact,delete' },
    ]);
    expect(drift?.command).toBe(
      'kafka-configs.sh --bootstrap-server k1:9092,k2:9092 --alter --entity-type topics --entity-name prod.models.v1' +
        " --add-config 'retention.ms=-1,cleanup.policy=[compact,delete]'",
    );
  });

  it('names a client properties file for a cluster reached with TLS or SASL', () => {
    const drift = configDrift('t', { 'retention.ms': '-1' }, new Map([['retention.ms', '1']]), brokers, true);
    expect(drift?.command).toBe(
      'kafka-configs.sh --bootstrap-server k1:9092,k2:9092 --command-config client.properties' +
        " --alter --entity-type topics --entity-name t --add-config 'retention.ms=-1'",
    );
  });

  it('is undefined when every required value matches, and skips keys the broker does not report', () => {
    expect(configDrift('t', { 'retention.ms': '-1' }, new Map([['retention.ms', '-1']]), brokers)).toBeUndefined();
    expect(configDrift('t', { 'retention.ms': '-1' }, new Map(), brokers)).toBeUndefined();
  });
});

describe('the config check of existing topics', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  it('a failed or unanswered read of the configs is a debug line, never a failed or held start', async () => {
    // A broker gone since the topics were ensured: a port nothing listens on.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as { port: number }).port;
    await new Promise((r) => server.close(r));
    const lines: Array<{ level: string; msg: string }> = [];
    const logger: Logger = {
      debug: (_fields, msg = '') => lines.push({ level: 'debug', msg }),
      info: () => {},
      warn: (_fields, msg = '') => lines.push({ level: 'warn', msg }),
      error: () => {},
      child: () => logger,
    };
    const client = createKafkaClient({ brokers: [`127.0.0.1:${port}`], clientId: 'config-check', ssl: false }, logger);
    const started = Date.now();
    await expect(
      warnOnConfigDrift(client, [{ topic: 'models.v1', config: { 'retention.ms': '-1' } }], 300),
    ).resolves.toBeUndefined();
    expect(Date.now() - started).toBeLessThan(5_000); // the 300 ms bound, not the client's connect retries (~25 s); slack for a loaded run
    expect(lines.filter((l) => l.msg.startsWith('could not read the configs'))).toEqual([
      { level: 'debug', msg: 'could not read the configs of existing topics; not checked' },
    ]);
    expect(lines.filter((l) => l.msg.includes('exists with other configs'))).toEqual([]);
  });
});
