// Entry point of the prediction log's worker thread (see log-thread.ts): the log's queue, its
// Avro encoding and the Kafka producer run on their own event loop, so logging never delays a
// request; the serving thread only hands records over.
import { parentPort, workerData } from 'node:worker_threads';
import { SchemaRegistryCodec } from '@driftline/codec';
import { createKafkaClient, createProducer, type OutboundMessage } from '@driftline/kafka';
import { contracts, type PredictionEvent } from '@driftline/schemas';
import { forwardingLogger } from '@driftline/service/worker';
import type { FromLogThread, LogThreadData, LogThreadSendPolicy, ToLogThread } from './log-thread-protocol.js';
import { directEncodingApplies, encodePacked, setSchemaId } from './packed-avro.js';
import { type PackedPredictions, textBuffer, textSpan, unpackPredictions } from './packed-predictions.js';
import { createPredictionLog, PartialPublishError, predictionDeadLetters } from './prediction-log.js';

/** Longest wait for the producer's disconnect when the log closes. */
const PRODUCER_DISCONNECT_MS = 2_000;
/** Most encoded bytes per producer send (a quarter of the broker's default message.max.bytes). */
const SEND_CHUNK_BYTES = 256 * 1024;

/** Hand-offs unpacked (for the codec or a dead letter): once each, however many records need it. */
const unpacked = new WeakMap<PackedPredictions, PredictionEvent[]>();

function eventsOf(packed: PackedPredictions): PredictionEvent[] {
  let events = unpacked.get(packed);
  if (events === undefined) {
    events = unpackPredictions(packed);
    unpacked.set(packed, events);
  }
  return events;
}

/**
 * A prediction whose predictions.v1 value was written when it arrived, straight from the packed
 * hand-off (packed-avro.ts); its schema id is set when it is sent. The event itself is unpacked
 * only for a dead letter.
 */
class EncodedPrediction {
  constructor(
    /** The prediction id's UTF-8 bytes (a view of the hand-off's text). */
    readonly key: Buffer,
    readonly value: Buffer,
    private readonly packed: PackedPredictions,
    private readonly index: number,
  ) {}

  event(): PredictionEvent {
    return eventsOf(this.packed)[this.index]!;
  }
}

/** What the log queues: an encoded prediction, or an event the codec encodes (and checks) when sent. */
type QueuedPrediction = EncodedPrediction | PredictionEvent;

/** A queued prediction's Kafka key: its prediction id (as UTF-8 bytes when it came packed). */
const keyOf = (r: QueuedPrediction): Buffer | string =>
  r instanceof EncodedPrediction ? r.key : contracts.prediction.key(r);

/** A queued prediction's id, for log lines. */
const idOf = (r: QueuedPrediction): string => keyOf(r).toString();

/** The queued records of a packed hand-off, in order: encoded, but for those the codec must refuse. */
function queuedFromPacked(packed: PackedPredictions): QueuedPrediction[] {
  const { values } = encodePacked(packed);
  const text = textBuffer(packed);
  const spans = packed.textSpans;
  return values.map((value, r) => {
    if (value === undefined) return eventsOf(packed)[r]!;
    const at = textSpan(r, 0); // the prediction id: the first text field
    return new EncodedPrediction(text.subarray(spans[at], spans[at + 1]), value, packed, r);
  });
}

const port = parentPort!;
const data = workerData as LogThreadData & { readonly policy: LogThreadSendPolicy };
const post = (message: FromLogThread) => port.postMessage(message);
const logger = forwardingLogger(post, { thread: 'prediction-log' });

try {
  const kafka = createKafkaClient(data.kafka, logger);
  // A send of the log is at most SEND_CHUNK_BYTES: on a healthy cluster it takes milliseconds. One
  // unanswered for 10 s (a connection left half-open by a broker restart: kafkajs would wait 30 s
  // per attempt, minutes over its retries) or failing for 10 s gets a fresh producer, so the log
  // recovers seconds after Kafka does instead of refusing requests meanwhile.
  const producer = await createProducer(kafka, { health: { replaceAfterMs: 10_000, sendDeadlineMs: 10_000 } });
  // The id the directly written values are framed with is the codec's (schemaIdToWrite): registered
  // on the first send (an unreachable registry then fails that send, retriable), then confirmed at
  // most every SCHEMA_ID_RECHECK_MS by a lookup that runs behind the sends while predictions come;
  // only the first send after an idle interval waits for it, up to 2 s. It was kept for the
  // thread's life: after the subject was deleted for good or the registry lost its schemas, every
  // logged prediction was dead-lettered until the model server restarted.
  const codec = new SchemaRegistryCodec(data.registry, {
    logger,
    ...(data.schemaIdRecheckMs === undefined ? {} : { schemaIdRecheckMs: data.schemaIdRecheckMs }),
  }).forTopic(contracts.prediction, data.topic);
  // The direct writer covers the contract it was written for; any other goes through the codec.
  const direct = directEncodingApplies();
  let acked = 0;
  // Encoded first, then sent in chunks of at most SEND_CHUNK_BYTES: a batch of thousands of wide
  // feature vectors stays far below the broker's default 1 MiB per record batch.
  // A failure after some chunks were acknowledged says how many (PartialPublishError): the log
  // keeps only the rest, so a retry does not write those again.
  const publish = async (records: readonly QueuedPrediction[]): Promise<void> => {
    let chunk: OutboundMessage[] = [];
    let bytes = 0;
    let sent = 0;
    // Once per send, not per record.
    let id: number | undefined;
    try {
      for (const r of records) {
        let value: Buffer;
        if (r instanceof EncodedPrediction) {
          id ??= await codec.schemaIdToWrite();
          setSchemaId(r.value, id);
          value = r.value;
        } else value = await codec.encode(r);
        if (chunk.length > 0 && bytes + value.length > SEND_CHUNK_BYTES) {
          await producer.send(data.topic, chunk);
          sent += chunk.length;
          chunk = [];
          bytes = 0;
        }
        chunk.push({ key: keyOf(r), value });
        bytes += value.length;
      }
      await producer.send(data.topic, chunk);
    } catch (error) {
      throw sent > 0 ? new PartialPublishError(sent, error) : error;
    }
  };
  // The bound on records held is enforced by the serving thread, which counts what it handed
  // over against what is acknowledged: this queue never refuses what it was given.
  const eventOf = (r: QueuedPrediction): PredictionEvent => (r instanceof EncodedPrediction ? r.event() : r);
  const deadLetter = predictionDeadLetters(producer, data.topic);
  // What the close could not drain, as its log split it (told to the serving thread, which counts it).
  let lostAtClose = 0;
  let unknownAtClose = 0;
  const log = createPredictionLog<QueuedPrediction>({
    ...data.policy,
    maxBuffered: Number.MAX_SAFE_INTEGER,
    maxWaitMs: 0,
    publish,
    deadLetter: (rejected) => deadLetter(rejected.map(({ record, error }) => ({ record: eventOf(record), error }))),
    idOf,
    onRejected: (records) => post({ type: 'rejected', records }),
    // Acknowledged or dead-lettered, each record once: the serving thread's bound frees them.
    onSettled(records) {
      acked += records;
      post({ type: 'acked', records: acked });
    },
    onLost: (records) => {
      lostAtClose += records;
    },
    onUnknown: (records) => {
      unknownAtClose += records;
    },
    logger,
  });
  port.on('message', (message: ToLogThread) => {
    if (message.type === 'append')
      void log.append(message.events); // never waits: no bound here
    else if (message.type === 'append-packed')
      void log.append(direct ? queuedFromPacked(message.packed) : unpackPredictions(message.packed));
    else if (message.type === 'drain') {
      void log.drain(message.deadlineMs).then((left) => post({ type: 'drained', id: message.id, left }));
    } else if (message.type === 'close') {
      void (async () => {
        await log.drain(message.deadlineMs);
        await log.close(0);
        // What the close logged: a send answered between the drain and the close is not left.
        const left = lostAtClose + unknownAtClose;
        // Bounded: a hung broker must not hold the stop (the serving thread stops this one after
        // CLOSE_GRACE_MS anyway, and then nobody hears what was lost).
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          producer.disconnect().catch(() => {}),
          new Promise((resolve) => {
            timer = setTimeout(resolve, PRODUCER_DISCONNECT_MS);
          }),
        ]);
        clearTimeout(timer);
        post({ type: 'closed', left, lost: lostAtClose, unknown: unknownAtClose });
        port.close();
      })();
    }
  });
  post({ type: 'ready' });
} catch (error) {
  post({ type: 'failed', message: error instanceof Error ? error.message : String(error) });
}
