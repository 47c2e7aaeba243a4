import { createServer, type Server } from 'node:net';
import { admitLine, type Logger, lineLimit } from '@driftline/core';
import { type LogEntry, logLevel } from 'kafkajs';
import { afterEach, describe, expect, it } from 'vitest';
import {
  CONNECTION_FAILURE_LOG_INTERVAL_MS,
  createKafkaClient,
  kafkajsLogging,
  kafkajsOf,
  socketFactoryReporting,
} from '../src/client.js';

interface Line {
  readonly level: 'debug' | 'warn';
  readonly msg: string;
  readonly obj: Record<string, unknown>;
}

function recordingLogger(lines: Line[]): Logger {
  const logger: Logger = {
    debug: (obj, msg) => lines.push({ level: 'debug', msg: msg ?? '', obj: obj as Record<string, unknown> }),
    info: () => {},
    warn: (obj, msg) => lines.push({ level: 'warn', msg: msg ?? '', obj: obj as Record<string, unknown> }),
    error: () => {},
    child: () => logger,
  };
  return logger;
}

const REFUSED = 'Connection error: connect ECONNREFUSED 127.0.0.1:9092';
const SEED = `Failed to connect to seed broker, trying another broker from the list: ${REFUSED}`;
const entry = (message: string, extra: Record<string, unknown> = {}): LogEntry => ({
  namespace: 'Connection',
  level: logLevel.ERROR,
  label: 'ERROR',
  log: { timestamp: new Date(0).toISOString(), logger: 'kafkajs', message, ...extra },
});

/** A client's kafkajs log routing on a clock the test moves. */
function routing() {
  const lines: Line[] = [];
  const clock = { now: 0 };
  const logging = kafkajsLogging(recordingLogger(lines), new Set(), new Set(), () => clock.now);
  // Each kafkajs instance made from the client calls the log creator: a producer's own one too.
  const [client, producer] = [logging.logCreator(logLevel.WARN), logging.logCreator(logLevel.WARN)];
  /** A refused connect, as kafkajs logs it: two lines. */
  const refused = (log = producer) => {
    log(entry(REFUSED, { broker: '127.0.0.1:9092' }));
    log(entry(SEED, { retryCount: 0, retryTime: 100 }));
  };
  return { lines, clock, logging, client, producer, refused, warned: () => lines.filter((l) => l.level === 'warn') };
}

describe('kafkajs logs: the bounded-retries warning of an idempotent producer', () => {
  it('goes to debug: the producer bounds its retries on purpose, and a resend keeps its sequence numbers', () => {
    const { lines, producer } = routing();
    producer({
      ...entry('Limiting retries for the idempotent producer may invalidate EoS guarantees'),
      level: logLevel.WARN,
    });
    producer({ ...entry('Limiting retries for the idempotent producer, or not'), level: logLevel.WARN });
    expect(lines.map((l) => [l.level, l.msg])).toEqual([
      ['debug', 'Limiting retries for the idempotent producer may invalidate EoS guarantees'],
      ['warn', 'Limiting retries for the idempotent producer, or not'],
    ]);
  });
});

describe('kafkajs logs: failed connections, rate-limited per client', () => {
  it('writes the first of an outage at warn, then at most one per 10 s with the count left out; the rest at debug', () => {
    const { lines, clock, refused, warned } = routing();
    // The review's refusal: a connect refused every ~300 ms (two lines each) for a minute.
    for (clock.now = 0; clock.now < 60_000; clock.now += 300) refused();
    expect(lines).toHaveLength(400);
    const warnings = warned();
    expect(warnings).toHaveLength(6); // before: all 400
    expect(warnings[0]).toMatchObject({ msg: REFUSED, obj: { broker: '127.0.0.1:9092', linesLeftOut: 0 } });
    // Every warning after the first stands for the lines left out since the one before.
    // 10.2 s apart (the first line past 10 s): 34 refusals, the last one's second line included.
    expect(warnings.slice(1).map((w) => w.obj.linesLeftOut)).toEqual([67, 67, 67, 67, 67]);
    expect(lines.filter((l) => l.level === 'debug')).toHaveLength(394);
  });

  it('counts the lines of every kafkajs instance of the client together', () => {
    const { clock, client, producer, refused, warned } = routing();
    refused(client);
    clock.now = 1_000;
    refused(producer);
    clock.now = CONNECTION_FAILURE_LOG_INTERVAL_MS;
    refused(client);
    expect(warned().map((w) => w.obj.linesLeftOut)).toEqual([0, 3]);
  });

  it('a broker answering again reports the lines left out since the last one written (none are lost to the count)', () => {
    const { clock, logging, refused, warned } = routing();
    refused(); // written, and its second line left out
    clock.now = 1_000;
    refused(); // both left out
    logging.answered();
    expect(warned().map((w) => [w.msg, w.obj.linesLeftOut])).toEqual([
      [REFUSED, 0],
      ['a broker answered again; failed-connection lines left out since the last one written', 3],
    ]);
    logging.answered(); // nothing left out since: no line
    expect(warned()).toHaveLength(2);
  });

  it('a broker answering again ends the outage: the next failure is written at once', () => {
    const { clock, logging, refused, warned } = routing();
    refused();
    clock.now = 1_000;
    refused();
    expect(warned()).toHaveLength(1);
    logging.answered();
    clock.now = 2_000;
    refused();
    expect(warned().map((w) => [w.msg, w.obj.linesLeftOut])).toEqual([
      [REFUSED, 0],
      ['a broker answered again; failed-connection lines left out since the last one written', 3],
      [REFUSED, 0],
    ]);
  });

  it('also limits connect timeouts; other lines keep their level, crash and restart lines go to debug', () => {
    const { lines, producer, warned } = routing();
    for (let i = 0; i < 3; i++) producer(entry('Connection timeout', { broker: 'b:9092' }));
    producer(entry('The group is rebalancing, re-joining'));
    producer(entry('The group is rebalancing, re-joining'));
    producer(entry('Crash: KafkaJSNumberOfRetriesExceeded: Connection error'));
    producer({ ...entry('Connecting'), level: logLevel.DEBUG, label: 'DEBUG' });
    expect(warned().map((w) => w.msg)).toEqual([
      'Connection timeout',
      'The group is rebalancing, re-joining',
      'The group is rebalancing, re-joining',
    ]);
    expect(lines.filter((l) => l.level === 'debug')).toHaveLength(4);
  });

  it('is what createKafkaClient routes kafkajs logs through', () => {
    const lines: Line[] = [];
    const client = createKafkaClient(
      { brokers: ['127.0.0.1:9092'], clientId: 'logs', ssl: false },
      recordingLogger(lines),
    );
    const log = kafkajsOf(client).logger();
    for (let i = 0; i < 50; i++) {
      log.error(REFUSED, { broker: '127.0.0.1:9092' });
      log.error(SEED, {});
    }
    expect(lines.filter((l) => l.level === 'warn')).toHaveLength(1); // before: 100
  });
});

describe("line limits (shared with the consumer loop's crash lines)", () => {
  it('admits the first line, then one per interval, counting the others', () => {
    const limit = lineLimit();
    expect(admitLine(limit, 5, 1_000)).toBe(0);
    expect(admitLine(limit, 500, 1_000)).toBeUndefined();
    expect(admitLine(limit, 1_004, 1_000)).toBeUndefined();
    expect(admitLine(limit, 1_005, 1_000)).toBe(2);
    expect(limit).toEqual({ loggedAt: 1_005, unlogged: 0 });
  });
});

describe('socketFactoryReporting: a broker answered on a connection', () => {
  const servers: Server[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });
  async function listening(onConnection: Parameters<typeof createServer>[1]): Promise<number> {
    const server = createServer(onConnection);
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as { port: number }).port;
  }
  /** Opens a socket through the factory; resolves when it closes, with whether `answered` was called. */
  function connect(port: number): Promise<boolean> {
    let answered = 0;
    const socket = socketFactoryReporting(() => answered++)({
      host: '127.0.0.1',
      port,
      ssl: undefined as never,
      onConnect: () => socket.write('request'),
    });
    socket.on('error', () => {});
    return new Promise((resolve) =>
      socket.on('close', () => {
        expect(answered).toBeLessThanOrEqual(1);
        resolve(answered === 1);
      }),
    );
  }

  it('reports the first bytes read, once', async () => {
    const port = await listening((s) => s.once('data', () => s.end('answer')));
    expect(await connect(port)).toBe(true);
  });

  it('does not report a connection accepted and closed unanswered (a load balancer before a broker that is down), nor a refused one', async () => {
    const port = await listening((s) => s.destroy());
    expect(await connect(port)).toBe(false);
    await new Promise((r) => servers.pop()?.close(r));
    expect(await connect(port)).toBe(false);
  });
});
