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
 * `idleMs`, the read ends and names those partitions (`unreached`). A crash of the consumer fails it.
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
  const left = new Set(ends.keys());
  await consumer.connect();
  try {
    await subscribe(consumer, topic, true);
    await new Promise<void>((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      const idle = () => {
        clearTimeout(timer);
        timer = setTimeout(resolve, idleMs); // what is left has no record to deliver
      };
      const fail = (error: unknown) => {
        clearTimeout(timer);
        reject(error);
      };
      idle();
      consumer.on(consumer.events.CRASH, (event) =>
        fail(
          new DriftlineError('SOURCE_UNAVAILABLE', `reading ${topic}: the consumer crashed`, {
            retriable: true,
            cause: event.payload.error,
          }),
        ),
      );
      void consumer
        .run({
          autoCommit: false,
          eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
            idle();
            const end = ends.get(batch.partition);
            if (end === undefined || !left.has(batch.partition)) return;
            const records: InboundRecord[] = [];
            for (const m of batch.messages) {
              if (BigInt(m.offset) >= end) break;
              records.push({
                topic: batch.topic,
                partition: batch.partition,
                offset: m.offset,
                key: m.key,
                value: m.value,
                headers: toBufferHeaders(m.headers),
                timestamp: Number(m.timestamp),
              });
              resolveOffset(m.offset);
            }
            try {
              if (records.length > 0) await onBatch(records);
            } catch (error) {
              fail(error);
              return;
            }
            await heartbeat();
            idle();
            if (BigInt(batch.lastOffset()) + 1n >= end || records.length < batch.messages.length) {
              left.delete(batch.partition);
              if (left.size === 0) {
                clearTimeout(timer);
                resolve();
              }
            }
          },
        })
        .catch(fail);
    });
  } finally {
    await consumer.disconnect();
    await deleteGroup(client, groupId).catch(() => {}); // it holds no offsets; the broker drops it anyway
  }
  return { unreached: [...left].sort((a, b) => a - b) };
}
