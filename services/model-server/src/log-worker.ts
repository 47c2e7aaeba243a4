// Entry point of the prediction log's worker thread (see log-thread.ts): Avro encoding and the
// Kafka producer run on their own event loop, so logging a batch never delays a request.
import { parentPort, workerData } from 'node:worker_threads';
import { SchemaRegistryCodec } from '@driftline/codec';
import { toDriftlineError } from '@driftline/core';
import { createKafkaClient, createProducer, type OutboundMessage } from '@driftline/kafka';
import { contracts, type PredictionEvent } from '@driftline/schemas';
import { forwardingLogger } from '@driftline/service/worker';
import type { FromLogThread, LogThreadData, ToLogThread } from './log-thread-protocol.js';

/** Most encoded bytes per producer send (a quarter of the broker's default message.max.bytes). */
const SEND_CHUNK_BYTES = 256 * 1024;

const port = parentPort!;
const data = workerData as LogThreadData;
const post = (message: FromLogThread) => port.postMessage(message);
const logger = forwardingLogger(post, { thread: 'prediction-log' });

try {
  const kafka = createKafkaClient(data.kafka, logger);
  const producer = await createProducer(kafka);
  const codec = new SchemaRegistryCodec(data.registry).forTopic(contracts.prediction, data.topic);
  // Encoded first, then sent in chunks of at most SEND_CHUNK_BYTES: a batch of thousands of wide
  // feature vectors stays far below the broker's default 1 MiB per record batch.
  const publish = async (events: readonly PredictionEvent[]): Promise<void> => {
    let chunk: OutboundMessage[] = [];
    let bytes = 0;
    for (const e of events) {
      const value = await codec.encode(e);
      if (chunk.length > 0 && bytes + value.length > SEND_CHUNK_BYTES) {
        await producer.send(data.topic, chunk);
        chunk = [];
        bytes = 0;
      }
      chunk.push({ key: contracts.prediction.key(e), value });
      bytes += value.length;
    }
    await producer.send(data.topic, chunk);
  };
  port.on('message', (message: ToLogThread) => {
    if (message.type === 'send') {
      publish(message.events).then(
        () => post({ type: 'sent', id: message.id }),
        (thrown: unknown) => {
          const e = toDriftlineError(thrown);
          post({ type: 'error', id: message.id, code: e.code, message: e.message, retriable: e.retriable });
        },
      );
    } else if (message.type === 'close') {
      void producer
        .disconnect()
        .catch(() => {})
        .then(() => {
          post({ type: 'closed' });
          port.close();
        });
    }
  });
  post({ type: 'ready' });
} catch (error) {
  post({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
}
