import { createRequire } from 'node:module';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';

// patches/kafkajs@2.2.4.patch (8): an idempotent producer's sequence numbers after a failed produce.
// kafkajs's own sendMessages and eosManager, driven against a broker written here with Kafka's
// rules for one producer id: a batch whose first sequence is the next expected one is appended; one
// equal to a batch among the last 5 appended is acknowledged as a duplicate and not written; any
// other is refused (OUT_OF_ORDER_SEQUENCE_NUMBER). The real broker is in producer.int and
// producer-outage.int; here every interleaving of answers lost before or after the append.
const require = createRequire(import.meta.url);
type Message = { key: null; value: string; partition: number };
type Entry = { partition: number; firstSequence: number; messages: Message[] };
type TopicData = { topic: string; partitions: Entry[] };
type SendMessages = (request: {
  acks: number;
  timeout: number;
  compression: number;
  topicMessages: Array<{ topic: string; messages: Message[] }>;
}) => Promise<unknown>;
const createSendMessages = require('kafkajs/src/producer/sendMessages') as (options: object) => SendMessages;
const createEosManager = require('kafkajs/src/producer/eosManager') as (options: object) => object;
const createRetry = require('kafkajs/src/retry') as (options: object) => unknown;
const { errorCodes } = require('kafkajs/src/protocol/error') as { errorCodes: Array<{ type: string; code: number }> };
const { parse } = require('kafkajs/src/protocol/requests/produce/v3/response') as {
  parse(data: object): Promise<unknown>;
};
const { KafkaJSConnectionClosedError } = require('kafkajs/src/errors') as {
  KafkaJSConnectionClosedError: new (message: string, where: object) => Error;
};

const TOPIC = 't';
const codeOf = (type: string) => errorCodes.find((e) => e.type === type)?.code ?? Number.NaN;

/** What becomes of one produce request: answered, or its answer lost before or after the append, or refused. */
type Fate = 'answered' | 'lost-before-append' | 'lost-after-append' | { refuse: string; partitions: number[] };

/** Kafka's producer state per partition for one producer id, and the log. */
class Broker {
  readonly log = new Map<number, string[]>();
  private state = new Map<string, { next: number; recent: Array<{ first: number; count: number }> }>();
  readonly requests: Array<Array<{ partition: number; firstSequence: number; values: string[] }>> = [];

  constructor(private readonly fateOf: (request: number) => Fate) {}

  connection(producer: number) {
    return {
      nodeId: 0,
      produce: async ({ topicData }: { topicData: TopicData[] }) => {
        const entries = topicData.flatMap((t) => t.partitions);
        this.requests.push(
          entries.map((e) => ({
            partition: e.partition,
            firstSequence: e.firstSequence,
            values: e.messages.map((m) => m.value),
          })),
        );
        const fate = this.fateOf(this.requests.length - 1);
        if (fate === 'lost-before-append') throw new KafkaJSConnectionClosedError('closed', {});
        const answers = entries.map((e) => ({
          partition: e.partition,
          errorCode:
            typeof fate === 'object' && fate.partitions.includes(e.partition)
              ? codeOf(fate.refuse)
              : this.append(producer, e),
          baseOffset: '0',
          logAppendTime: '-1',
          logStartOffset: '0',
        }));
        if (fate === 'lost-after-append') throw new KafkaJSConnectionClosedError('closed', {});
        // kafkajs's own (patched) parse: an error naming every partition's answer.
        return parse({ topics: [{ topicName: TOPIC, partitions: answers }], throttleTime: 0 });
      },
    };
  }

  private append(producer: number, entry: Entry): number {
    const key = `${producer}:${entry.partition}`;
    const state = this.state.get(key) ?? { next: 0, recent: [] };
    this.state.set(key, state);
    const count = entry.messages.length;
    if (state.recent.some((b) => b.first === entry.firstSequence && b.count === count)) return 0; // a duplicate
    if (entry.firstSequence !== state.next) return codeOf('OUT_OF_ORDER_SEQUENCE_NUMBER');
    this.log.set(entry.partition, [...(this.log.get(entry.partition) ?? []), ...entry.messages.map((m) => m.value)]);
    state.next += count;
    state.recent = [...state.recent, { first: entry.firstSequence, count }].slice(-5);
    return 0;
  }
}

/** A kafkajs producer's send path on `broker` (one leader for both partitions), under producer id `producer`. */
async function producerOn(
  broker: Broker,
  producer: number,
  retries = 0,
): Promise<(messages: Message[]) => Promise<void>> {
  const connection = broker.connection(producer);
  const cluster = {
    findControllerBroker: async () => ({ initProducerId: async () => ({ producerId: producer, producerEpoch: 0 }) }),
    retry: { retries: 0 },
    refreshMetadataIfNecessary: async () => {},
    refreshMetadata: async () => {},
    addMultipleTargetTopics: async () => {},
    isConnected: () => true,
    connect: async () => {},
    removeBroker: () => {},
    findTopicPartitionMetadata: () => [
      { partitionId: 0, leader: 0 },
      { partitionId: 1, leader: 0 },
    ],
    findLeaderForPartitions: (_topic: string, partitions: string[]) => ({ 0: partitions.map(Number) }),
    findBroker: async () => connection,
  };
  const silent = { debug() {}, info() {}, warn() {}, error() {} };
  const eosManager = createEosManager({ logger: silent, cluster, transactional: false }) as {
    initProducerId(): Promise<void>;
  };
  await eosManager.initProducerId();
  const send = createSendMessages({
    logger: silent,
    cluster,
    partitioner: ({ message }: { message: Message }) => message.partition,
    eosManager,
    retrier: createRetry({ retries, initialRetryTime: 1, maxRetryTime: 2 }),
  });
  return async (messages) => {
    await send({ acks: -1, timeout: 1_000, compression: 0, topicMessages: [{ topic: TOPIC, messages }] });
  };
}

const batch = (partition: number, ...values: string[]): Message[] =>
  values.map((value) => ({ key: null, value, partition }));
const firstSequences = (broker: Broker, request: number) =>
  Object.fromEntries(broker.requests[request]?.map((e) => [e.partition, e.firstSequence]) ?? []);

describe('kafkajs patch: sequence numbers after a failed produce', () => {
  it('an answer lost after the append: the next batch goes after it, a resend of the same records gets its numbers', async () => {
    const broker = new Broker((r) => (r === 1 ? 'lost-after-append' : 'answered'));
    const send = await producerOn(broker, 1);
    await send(batch(0, 'a0'));
    await expect(send(batch(0, 'a1', 'a2'))).rejects.toThrow();
    await send(batch(0, 'b')); // unpatched: sequence 1, a duplicate of a1-a2, never written
    await send(batch(0, 'a1', 'a2')); // the caller's resend: new objects, the same records
    await send(batch(0, 'c'));
    expect(broker.requests.map((_, i) => firstSequences(broker, i)[0])).toEqual([0, 1, 3, 1, 4]);
    expect(broker.log.get(0)).toEqual(['a0', 'a1', 'a2', 'b', 'c']);
  });

  it("kafkajs's own retry of a request whose answer was lost reuses its numbers, and it is settled after", async () => {
    const broker = new Broker((r) => (r === 0 ? 'lost-after-append' : 'answered'));
    const send = await producerOn(broker, 1, 1);
    await send(batch(0, 'a'));
    await send(batch(0, 'a')); // the same record again, a new send: new numbers, written again
    expect(broker.requests.map((_, i) => firstSequences(broker, i)[0])).toEqual([0, 0, 1]);
    expect(broker.log.get(0)).toEqual(['a', 'a']);
  });

  it("one partition refused, another written in the same request: only the refused one's numbers go back", async () => {
    const broker = new Broker((r) => (r === 0 ? { refuse: 'MESSAGE_TOO_LARGE', partitions: [0] } : 'answered'));
    const send = await producerOn(broker, 1);
    await expect(send([...batch(0, 'big'), ...batch(1, 's1')])).rejects.toThrow(/larger than/i);
    await send(batch(1, 's2')); // unpatched: sequence 0 again, a duplicate of s1
    await send(batch(0, 's3'));
    expect(firstSequences(broker, 1)).toEqual({ 1: 1 });
    expect(firstSequences(broker, 2)).toEqual({ 0: 0 });
    expect(broker.log.get(1)).toEqual(['s1', 's2']);
    expect(broker.log.get(0)).toEqual(['s3']);
  });

  it.each([
    ['NOT_LEADER_FOR_PARTITION', true],
    ['NOT_ENOUGH_REPLICAS', true],
    ['INVALID_RECORD', true],
    ['REQUEST_TIMED_OUT', false], // acks=all: appended by the leader, the replicas too slow
    ['NOT_ENOUGH_REPLICAS_AFTER_APPEND', false],
    ['DUPLICATE_SEQUENCE_NUMBER', false],
    ['KAFKA_STORAGE_ERROR', false], // not known to be before the append
  ])('an answer %s hands the numbers back: %s', async (type, handedBack) => {
    const broker = new Broker((r) => (r === 0 ? { refuse: type, partitions: [0] } : 'answered'));
    const send = await producerOn(broker, 1);
    await expect(send(batch(0, 'a', 'b'))).rejects.toThrow();
    await send(batch(0, 'c')).catch(() => {});
    expect(firstSequences(broker, 1)).toEqual({ 0: handedBack ? 0 : 2 });
  });

  it('remembers the last 5 unsettled batches of a partition: a resend of an older one gets new numbers', async () => {
    const broker = new Broker((r) => (r < 6 ? 'lost-before-append' : 'answered'));
    const send = await producerOn(broker, 1);
    for (let i = 0; i < 6; i++) await expect(send(batch(0, `f${i}`))).rejects.toThrow();
    await send(batch(0, 'f1')).catch(() => {}); // among the last 5: its own number back
    await send(batch(0, 'f0')).catch(() => {}); // the oldest, forgotten: a new one
    expect(firstSequences(broker, 6)).toEqual({ 0: 1 });
    expect(firstSequences(broker, 7)).toEqual({ 0: 6 });
  });

  it('no acknowledged record is lost, whatever becomes of each request (a fresh producer after OUT_OF_ORDER, as libs/kafka does)', async () => {
    const fate = fc.oneof(
      fc.constant<Fate>('answered'),
      fc.constant<Fate>('lost-before-append'),
      fc.constant<Fate>('lost-after-append'),
      fc.record({
        refuse: fc.constantFrom('NOT_LEADER_FOR_PARTITION', 'REQUEST_TIMED_OUT', 'NOT_ENOUGH_REPLICAS'),
        partitions: fc.subarray([0, 1], { minLength: 1 }),
      }),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(fate, { minLength: 1, maxLength: 40 }),
        fc.array(
          fc.record({ partitions: fc.subarray([0, 1], { minLength: 1 }), size: fc.integer({ min: 1, max: 3 }) }),
          {
            minLength: 1,
            maxLength: 12,
          },
        ),
        fc.array(fc.boolean(), { maxLength: 60 }),
        async (fates, batches, resendFirst) => {
          // The broker applies the scripted fates, then answers every later request.
          const broker = new Broker((r) => fates[r] ?? 'answered');
          let producer = 1;
          let send = await producerOn(broker, producer);
          const pending = batches.map((b, i) =>
            b.partitions.flatMap((p) => batch(p, ...Array.from({ length: b.size }, (_, j) => `${i}.${p}.${j}`))),
          );
          const acknowledged: string[] = [];
          // A caller with several batches to deliver: after a failure it may resend that batch at
          // once, or send the next one first and come back to it (a stage with many inputs).
          for (let step = 0; pending.length > 0; step++) {
            if (step > 500) throw new Error('no progress');
            const which = pending.length > 1 && resendFirst[step % Math.max(1, resendFirst.length)] ? 1 : 0;
            const [messages] = pending.splice(which, 1) as [Message[]];
            try {
              await send(messages);
              acknowledged.push(...messages.map((m) => m.value));
            } catch (error) {
              pending.push(messages);
              if (/out of order sequence/i.test((error as Error).message)) send = await producerOn(broker, ++producer);
            }
          }
          const written = new Set([...(broker.log.get(0) ?? []), ...(broker.log.get(1) ?? [])]);
          expect(acknowledged.filter((v) => !written.has(v))).toEqual([]);
        },
      ),
      { numRuns: 500 },
    );
  });
});
