import { randomUUID } from 'node:crypto';
import { DriftlineError } from '@driftline/core';
import { deleteGroup, topicOffsets } from './admin.js';
import { type KafkaClient, kafkajsOf } from './client.js';
import { subscribe } from './consumer.js';
import { type InboundRecord, toBufferHeaders } from './records.js';

/**
 * Reads a topic from its start to the end it had when the call began, batch by batch, handing each
 * to `onBatch` (awaited: a batch is not read past until its handler is done). A throwaway consumer
 * group, deleted at the end; nothing is committed. For tools that walk a topic once (the DLQ).
 * Records written after the call began are not read. A partition whose last offsets hold no record
 * (transaction markers, a compacted tail) never delivers its end offset: once no batch has come for
 * `idleMs` (the time a handler runs does not count), the read ends and names those partitions
 * (`unreached`). A crash of the consumer fails it.
 */
export async function readToEnd(
  client: KafkaClient,
  topic: string,
  onBatch: (records: readonly InboundRecord[]) => Promise<void>,
  idleMs = 30_000,
): Promise<{ readonly unreached: readonly number[] }> {
  const ends = new Map<number, bigint>();
  for (const o of await topicOffsets(client, topic)) if (o.high > o.low) ends.set(o.partition, o.high);
  if (ends.size === 0) return { unreached: [] };
  const groupId = `driftline-read-${randomUUID().slice(0, 8)}`;
  const consumer = kafkajsOf(client).consumer({ groupId, allowAutoTopicCreation: false });
  await consumer.connect();
  try {
    await subscribe(consumer, topic, true);
    const source: BatchSource = {
      onCrash: (listener) =>
        consumer.on(consumer.events.CRASH, (event) =>
          listener(
            new DriftlineError('SOURCE_UNAVAILABLE', `reading ${topic}: the consumer crashed`, {
              retriable: true,
              cause: event.payload.error,
            }),
          ),
        ),
      run: (eachBatch) =>
        consumer.run({
          autoCommit: false,
          eachBatch: ({ batch, resolveOffset, heartbeat }) =>
            eachBatch({
              partition: batch.partition,
              lastOffset: batch.lastOffset(),
              records: batch.messages.map((m) => ({
                topic: batch.topic,
                partition: batch.partition,
                offset: m.offset,
                key: m.key,
                value: m.value,
                headers: toBufferHeaders(m.headers),
                timestamp: Number(m.timestamp),
              })),
              resolveOffset,
              heartbeat,
            }),
        }),
    };
    return await drainToEnd(source, ends, onBatch, idleMs);
  } finally {
    await consumer.disconnect();
    await deleteGroup(client, groupId).catch(() => {}); // it holds no offsets; the broker drops it anyway
  }
}

/** One fetched batch of a partition, as `drainToEnd` needs it (package-internal). */
export interface SourceBatch {
  readonly partition: number;
  readonly lastOffset: string;
  readonly records: readonly InboundRecord[];
  resolveOffset(offset: string): void;
  heartbeat(): Promise<void>;
}

/** A consumer already subscribed, from the start (package-internal: kafkajs in `readToEnd`, a fake in tests). */
export interface BatchSource {
  run(eachBatch: (batch: SourceBatch) => Promise<void>): Promise<void>;
  onCrash(listener: (error: unknown) => void): void;
}

/** The loop of `readToEnd`: hands each batch below `ends` (per partition) to `onBatch`. */
export async function drainToEnd(
  source: BatchSource,
  ends: ReadonlyMap<number, bigint>,
  onBatch: (records: readonly InboundRecord[]) => Promise<void>,
  idleMs: number,
): Promise<{ readonly unreached: readonly number[] }> {
  const left = new Set(ends.keys());
  await new Promise<void>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const idle = () => {
      clearTimeout(timer);
      timer = setTimeout(resolve, idleMs); // what is left has no record to deliver
    };
    // A handler at work is no idleness: a slow one (a DLQ replay's send, up to its 60 s deadline)
    // had the read end early with part replayed, blamed on transaction markers.
    const busy = () => clearTimeout(timer);
    const fail = (error: unknown) => {
      clearTimeout(timer);
      reject(error);
    };
    idle();
    source.onCrash(fail);
    void source
      .run(async (batch) => {
        busy();
        const end = ends.get(batch.partition);
        if (end === undefined || !left.has(batch.partition)) {
          idle();
          return;
        }
        const records: InboundRecord[] = [];
        for (const r of batch.records) {
          if (BigInt(r.offset) >= end) break;
          records.push(r);
          batch.resolveOffset(r.offset);
        }
        try {
          if (records.length > 0) await onBatch(records);
        } catch (error) {
          fail(error);
          return;
        }
        try {
          await batch.heartbeat(); // a rebalance throws here, for kafkajs to handle
        } finally {
          idle();
        }
        if (BigInt(batch.lastOffset) + 1n >= end || records.length < batch.records.length) {
          left.delete(batch.partition);
          if (left.size === 0) {
            clearTimeout(timer);
            resolve();
          }
        }
      })
      .catch(fail);
  });
  return { unreached: [...left].sort((a, b) => a - b) };
}
