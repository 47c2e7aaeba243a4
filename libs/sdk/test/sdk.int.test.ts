import { SchemaRegistryCodec } from '@driftline/codec';
import { DriftlineError } from '@driftline/core';
import { ensureTopics, topicOffsets } from '@driftline/kafka';
import { contracts, type FeatureEvent, type LabelEvent, type PredictionEvent } from '@driftline/schemas';
import { eventually, kafkaFor, readTopic, uniqueName } from '@driftline/test-support';
import { describe, expect, inject, it } from 'vitest';
import { createDriftlineProducer } from '../src/index.js';
import { loggedErrorLine } from './log-line.js';

const stack = inject('stack');

/** Flushes until a flush succeeds (a topic created meanwhile takes its buffered messages), up to 90 s. */
function flushOnceDelivered(sdk: { flush(): Promise<void> }): Promise<true> {
  return eventually(
    () =>
      sdk.flush().then(
        () => true as const,
        () => undefined,
      ),
    90_000,
    100,
  );
}

// The describes below run at once (but the last three, see there): each test has its own topic prefix,
// client and producer, and most of their time is waiting on the broker (sends refused or retried).

describe.concurrent('producer SDK against real Kafka and Schema Registry', () => {
  it('publishes typed events keyed per contract, through a small bounded buffer, and flushes them all', async () => {
    const prefix = `${uniqueName('sdk')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(
      kafka,
      (['feature', 'prediction', 'label'] as const).map((c) => ({
        topic: `${prefix}${contracts[c].defaultTopic}`,
        partitions: 2,
      })),
    );
    // maxBuffered 100 with 1,000 events: publish must wait for room (backpressure), never drop.
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      batchSize: 50,
      maxBuffered: 100,
      lingerMs: 1,
    });
    let maxPending = 0;
    const features = Array.from({ length: 1_000 }, (_, i) => ({
      view: 'profile',
      entity_id: `user-${i % 10}`,
      features: { age: i, country: 'fr' },
    }));
    for (let i = 0; i < features.length; i += 10) {
      await sdk.publishFeatures(features.slice(i, i + 10));
      maxPending = Math.max(maxPending, sdk.pending);
    }
    expect(maxPending).toBeLessThanOrEqual(110);
    await sdk.publishPrediction({
      prediction_id: 'p1',
      model: 'churn',
      model_version: '3',
      entity_id: 'user-1',
      features: { age: 3 },
      prediction: 0.7,
    });
    await sdk.publishLabel({ prediction_id: 'p1', model: 'churn', label: 1 });

    // A schema violation is refused before anything of the call is buffered.
    const before = sdk.pending;
    await expect(
      sdk.publishFeatures([
        { view: 'profile', entity_id: 'ok', features: { age: 1 } },
        { view: 'profile', entity_id: 42 as unknown as string, features: {} },
      ]),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED', message: expect.stringMatching(/^event \[1\]: .*entity_id/) });
    // Fields missing altogether (untyped callers): the same error naming the field, not a TypeError.
    for (const [event, field] of [
      [{ view: 'profile', entity_id: 'ok' }, /features/],
      [{ view: 'profile', features: { age: 1 } }, /entity_id/],
      [{ view: 'profile', entity_id: 'ok', features: null }, /features/],
    ] as const) {
      await expect(
        sdk.publishFeatures(event as unknown as Parameters<typeof sdk.publishFeatures>[0]),
      ).rejects.toMatchObject({
        code: 'VALIDATION_FAILED',
        message: expect.stringMatching(field),
      });
    }
    expect(sdk.pending).toBe(before);
    await sdk.close();
    expect(sdk.pending).toBe(0);

    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const featureTopic = `${prefix}features.v1`;
    const read = await readTopic(kafka, featureTopic, 1_000);
    const decoded = await Promise.all(
      read.map(async (r) => ({
        key: r.key?.toString(),
        partition: r.partition,
        value: await codec.forTopic<FeatureEvent>(contracts.feature, featureTopic).decode(r.value),
      })),
    );
    expect(decoded).toHaveLength(1_000);
    expect(new Set(decoded.map((d) => d.value.event_id)).size).toBe(1_000); // ids assigned, none lost or doubled
    for (const d of decoded) expect(d.key).toBe(d.value.entity_id);
    expect(decoded.every((d) => d.value.event_time > 0)).toBe(true);
    const [prediction] = await readTopic(kafka, `${prefix}predictions.v1`, 1);
    const [label] = await readTopic(kafka, `${prefix}labels.v1`, 1);
    expect(prediction?.key?.toString()).toBe('p1');
    expect(label?.key?.toString()).toBe('p1');
    // Co-partitioned: the label of a prediction lands in the prediction's partition.
    expect(label?.partition).toBe(prediction?.partition);
    const p = await codec
      .forTopic<PredictionEvent>(contracts.prediction, `${prefix}predictions.v1`)
      .decode(prediction!.value);
    const l = await codec.forTopic<LabelEvent>(contracts.label, `${prefix}labels.v1`).decode(label!.value);
    expect(p).toMatchObject({ model: 'churn', prediction: 0.7, predicted_class: null });
    expect(l).toMatchObject({ model: 'churn', label: 1 });
  });
});

describe.concurrent('producer SDK: what Kafka refuses, and closing', () => {
  const featureAt = (i: number, size = 10) => ({
    view: 'profile',
    entity_id: `user-${i}`,
    features: { note: 'x'.repeat(size) },
  });

  it('dead-letters the events a topic refuses as they are, delivers the rest, and flush resolves', async () => {
    const prefix = `${uniqueName('sdk-refused')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${prefix}features.v1`;
    // A topic that takes record batches of at most 4,000 bytes: events of ~5,000 bytes can never go.
    await ensureTopics(kafka, [
      { topic, partitions: 1, config: { 'max.message.bytes': '4000' } },
      { topic: `${topic}.dlq`, partitions: 1 },
    ]);
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      batchSize: 5,
      lingerMs: 1,
    });
    const events = Array.from({ length: 20 }, (_, i) => featureAt(i, i % 7 === 3 ? 5_000 : 10));
    await sdk.publishFeatures(events);
    await sdk.flush();
    expect(sdk.deadLettered).toBe(3); // events 3, 10, 17
    expect(sdk.pending).toBe(0);
    // The producer goes on: a later event is delivered.
    await sdk.publishFeatures(featureAt(99));
    await sdk.close();
    const delivered = await readTopic(kafka, topic, 18);
    expect(delivered.map((r) => r.key?.toString()).sort()).toEqual(
      [...events.filter((_, i) => i % 7 !== 3).map((e) => e.entity_id), 'user-99'].sort(),
    );
    const letters = await readTopic(kafka, `${topic}.dlq`, 3);
    expect(letters.map((r) => r.key?.toString()).sort()).toEqual(['user-10', 'user-17', 'user-3']);
    expect(letters.every((r) => r.headers?.['driftline.dlq.reason']?.toString().includes('refused'))).toBe(true);
  });

  it('refuses an event larger than maxEventBytes at the publish call, buffering nothing of it', async () => {
    const prefix = `${uniqueName('sdk-large')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    await ensureTopics(kafka, [{ topic: `${prefix}features.v1`, partitions: 1 }]);
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      maxEventBytes: 1_000,
    });
    await expect(sdk.publishFeatures([featureAt(1), featureAt(2, 2_000)])).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringMatching(/^event \[1\]: the event is \d+ bytes encoded, more than maxEventBytes \(1000\)$/),
    });
    expect(sdk.pending).toBe(0);
    await sdk.close();
  });

  it('flush() returns once its own events are in Kafka while another caller keeps publishing (found by a review)', async () => {
    const prefix = `${uniqueName('sdk-flush')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${prefix}labels.v1`;
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      batchSize: 20,
      lingerMs: 0,
    });
    await sdk.publishLabel({ prediction_id: 'first', model: 'm', label: 1 });
    let stop = false;
    let published = 1;
    // A steady publisher: the queue is never empty, so a flush that waited for the send loop to end never returned.
    const steady = (async () => {
      while (!stop) {
        await sdk.publishLabel({ prediction_id: `p${published}`, model: 'm', label: 0 });
        published++;
        if (published % 20 === 0) await new Promise((r) => setImmediate(r));
      }
    })();
    try {
      await sdk.publishLabel({ prediction_id: 'mine', model: 'm', label: 1 });
      const before = published;
      const flushed = await Promise.race([
        sdk.flush().then(() => true),
        new Promise<false>((r) => setTimeout(() => r(false), 15_000)),
      ]);
      expect(flushed).toBe(true);
      expect(published).toBeGreaterThan(before); // the other caller went on publishing meanwhile
    } finally {
      stop = true;
      await steady;
    }
    await sdk.close();
    const ids = (await readTopic(kafka, topic, published)).map((m) => String(m.key));
    expect(ids).toContain('mine');
    expect(ids).toHaveLength(published);
  });

  it('close() delivers what publish calls under way queue, even one that started just before', async () => {
    const prefix = `${uniqueName('sdk-close')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${prefix}features.v1`;
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      maxBuffered: 100,
    });
    // Not awaited: the call is still encoding (its first event registers the schema) when close starts.
    const published = sdk.publishFeatures(Array.from({ length: 500 }, (_, i) => featureAt(i)));
    const closed = sdk.close();
    await published;
    await closed;
    await expect(sdk.publishFeatures(featureAt(1))).rejects.toMatchObject({ code: 'INTERNAL' });
    expect(await readTopic(kafka, topic, 500)).toHaveLength(500);
  });
});

describe.concurrent('producer SDK: a full buffer Kafka does not drain (found by a review)', () => {
  it('a publish call waiting for room fails after bufferWaitMs with a retriable SINK_UNAVAILABLE, not for ever', async () => {
    const prefix = `${uniqueName('sdk-full')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${prefix}labels.v1`;
    // The topic does not exist yet (no auto-creation): every send fails retriably, as with Kafka
    // unreachable, and the buffer of one message never frees.
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      batchSize: 1,
      maxBuffered: 1,
      lingerMs: 0,
      bufferWaitMs: 1_500,
    });
    await sdk.publishLabel({ prediction_id: 'a', model: 'm', label: 1 });
    expect(sdk.pending).toBe(1);
    const started = Date.now();
    // Before, this call waited for ever: the race's timer (10 s) ended it.
    const outcome = await Promise.race([
      sdk
        .publishLabel([
          { prediction_id: 'b', model: 'm', label: 0 },
          { prediction_id: 'c', model: 'm', label: 0 },
        ])
        .then(
          () => 'published',
          (error: unknown) => error,
        ),
      new Promise<string>((r) => setTimeout(() => r('still waiting after 10 s'), 10_000)),
    ]);
    expect(outcome).toMatchObject({
      name: 'DriftlineError',
      code: 'SINK_UNAVAILABLE',
      retriable: true,
      message: expect.stringMatching(
        /^driftline SDK: no room in the buffer of 1 messages \(maxBuffered\) within 1500 ms \(bufferWaitMs\): .*\(0 of the call's 2 events were buffered and will be sent\)$/s,
      ),
      details: { maxBuffered: 1, bufferWaitMs: 1_500, buffered: 0, events: 2 },
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_400);
    expect(sdk.pending).toBe(1); // nothing of the refused call was buffered

    // Kafka takes the sends again: the buffered event is delivered, room frees, the producer goes on.
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    await flushOnceDelivered(sdk);
    await sdk.publishLabel({ prediction_id: 'd', model: 'm', label: 1 });
    await sdk.close();
    expect((await readTopic(kafka, topic, 2)).map((r) => r.key?.toString())).toEqual(['a', 'd']);
  });
});

describe.concurrent('producer SDK: a buffer bounded in bytes too (found by a review)', () => {
  it('a publish call waits for byte room up to bufferWaitMs and fails naming maxBufferedBytes; an event larger than the whole buffer is refused at once', async () => {
    const prefix = `${uniqueName('sdk-bytes')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${prefix}features.v1`;
    const predictionsTopic = `${prefix}predictions.v1`;
    // The topics do not exist yet: every send fails retriably, as with Kafka unreachable. Before,
    // only the message count (20,000) bounded the buffer: events of 900 KB filled the heap. Two
    // topics fill it, as each may hold only half of it until a send to it is delivered.
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      lingerMs: 0,
      maxBufferedBytes: 10_000,
      bufferWaitMs: 1_000,
    });
    const sized = (i: number, chars: number) => ({
      view: 'profile',
      entity_id: `user-${i}`,
      features: { note: 'x'.repeat(chars) },
    });
    const sizedPrediction = (i: number, chars: number) => ({
      prediction_id: `p${i}`,
      model: 'm',
      model_version: '1',
      entity_id: `user-${i}`,
      features: { note: 'x'.repeat(chars) },
      prediction: 0.5,
    });
    await sdk.publishFeatures([sized(1, 2_300), sized(2, 2_300)]);
    await sdk.publishPrediction([sizedPrediction(1, 2_300), sizedPrediction(2, 2_300)]);
    expect(sdk.pending).toBe(4);
    const held = sdk.pendingBytes;
    expect(held).toBeGreaterThan(9_000);
    expect(held).toBeLessThanOrEqual(10_000);

    const started = Date.now();
    await expect(sdk.publishFeatures(sized(4, 2_300))).rejects.toMatchObject({
      code: 'SINK_UNAVAILABLE',
      retriable: true,
      message: expect.stringMatching(
        /^driftline SDK: no room in the buffer of 10000 bytes \(maxBufferedBytes; \d+ held\) for an event of \d+ bytes within 1000 ms \(bufferWaitMs\)/,
      ),
      details: { bound: 'maxBufferedBytes', maxBufferedBytes: 10_000, bufferWaitMs: 1_000, buffered: 0, events: 1 },
    });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    expect(sdk.pending).toBe(4);
    expect(sdk.pendingBytes).toBe(held);

    // Larger than the whole buffer: no wait could ever make room for it.
    const refusedAt = Date.now();
    await expect(sdk.publishFeatures(sized(5, 20_000))).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringMatching(
        /^the event is \d+ bytes encoded, more than the whole buffer of maxBufferedBytes \(10000\)$/,
      ),
    });
    expect(Date.now() - refusedAt).toBeLessThan(900);
    expect(sdk.pending).toBe(4);

    // Kafka takes the sends again: the buffered events go, their bytes are released, the next fits.
    await ensureTopics(kafka, [
      { topic, partitions: 1 },
      { topic: predictionsTopic, partitions: 1 },
    ]);
    await flushOnceDelivered(sdk);
    expect(sdk.pendingBytes).toBe(0);
    await sdk.publishFeatures(sized(6, 3_000));
    await sdk.close();
    expect((await readTopic(kafka, topic, 3)).map((r) => r.key?.toString())).toEqual(['user-1', 'user-2', 'user-6']);
    expect((await readTopic(kafka, predictionsTopic, 2)).map((r) => r.key?.toString())).toEqual(['p1', 'p2']);
  });
});

describe.concurrent('producer SDK: input of the wrong type or text that UTF-8 cannot carry (found by a review)', () => {
  it('refuses null events, lone surrogates and a string event_time with a rejected VALIDATION_FAILED, buffering nothing', async () => {
    const prefix = `${uniqueName('sdk-input')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
    });
    type Untyped = (events: unknown) => Promise<unknown>;
    const features = sdk.publishFeatures as Untyped;
    const prediction = sdk.publishPrediction as Untyped;
    const label = sdk.publishLabel as Untyped;
    const okPrediction = {
      prediction_id: 'p1',
      model: 'churn',
      model_version: '3',
      entity_id: 'u1',
      features: {},
      prediction: 0.5,
    };
    const cases: Array<[() => Promise<unknown>, RegExp]> = [
      // A bare TypeError thrown synchronously by the call, before.
      [() => features(null), /^an event must be an object, got null$/],
      [() => features([undefined]), /^an event must be an object, got undefined$/],
      [() => features([{ view: 'v', entity_id: 'u', features: {} }, null]), /^event \[1\]: .* got null$/],
      [() => prediction(undefined), /^an event must be an object, got undefined$/],
      [() => label(null), /^an event must be an object, got null$/],
      // Two ids that arrived as one ("e\uFFFD"): each is refused, naming the field.
      [
        () => features({ event_id: 'e\uD800', view: 'v', entity_id: 'u', features: {} }),
        /^event_id is not well-formed/,
      ],
      [
        () => features({ view: 'v', entity_id: 'u', features: { note: 'a\uDC00' } }),
        /^feature "note" is not well-formed/,
      ],
      [() => prediction({ ...okPrediction, model_version: '3\uD800' }), /^model_version is not well-formed/],
      [() => label({ prediction_id: 'p\uD801', model: 'churn', label: 1 }), /^prediction_id is not well-formed/],
      [
        () => label({ prediction_id: 'p1', model: 'churn', label: 1, event_time: String(Date.now()) }),
        /^event_time must be a number of epoch milliseconds, got a string$/,
      ],
      // Accepted and flushed, then dead-lettered by the label-joiner and the drift-monitor, before.
      [
        () => prediction({ ...okPrediction, model_version: '' }),
        /^model_version must be 1\.\.256 characters \(got 0\)$/,
      ],
      [() => prediction({ ...okPrediction, role: 'Canary' }), /^role "Canary" is not production, canary or shadow$/],
      [() => label({ prediction_id: 'p1', model: 'churn', label: 1, value: 1e200 }), /^value is 1e\+200: beyond/],
    ];
    for (const [call, message] of cases) {
      let promise: Promise<unknown> | undefined;
      expect(() => {
        promise = call();
      }).not.toThrow();
      await expect(promise).rejects.toMatchObject({ name: 'DriftlineError', code: 'VALIDATION_FAILED', message });
    }
    expect(sdk.pending).toBe(0);
    await sdk.close();
  });
});

describe.concurrent('producer SDK: a partial failure names exactly the events it did not send (found by a review)', () => {
  it('retrying details.unsent delivers each prediction once, and a logged error carries counts, not events', async () => {
    const prefix = `${uniqueName('sdk-unsent')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${prefix}predictions.v1`;
    // predictions.v1 is missing: the topic may hold half of the 4-message buffer, 2 of the 6.
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      batchSize: 1,
      maxBuffered: 4,
      lingerMs: 0,
      bufferWaitMs: 300,
    });
    const predictions = Array.from({ length: 6 }, (_, i) => ({
      prediction_id: `p${i}`,
      model: 'm',
      model_version: '1',
      entity_id: `e${i}`,
      features: { secret_income: 1_000 + i },
      prediction: 0.5,
    }));
    const failed = await sdk.publishPrediction(predictions).then(
      () => undefined,
      (error: unknown) => error as DriftlineError,
    );
    expect(failed).toBeInstanceOf(DriftlineError);
    expect(failed).toMatchObject({ code: 'SINK_UNAVAILABLE', details: { buffered: 2, events: 6 } });
    // The first `buffered` events are buffered and will be delivered: unsent are the others.
    const unsent = failed!.details.unsent as readonly PredictionEvent[];
    expect(unsent.map((p) => p.prediction_id)).toEqual(['p2', 'p3', 'p4', 'p5']);

    // Logged as the services log it: counts, no events (before, every event with its features).
    const line = loggedErrorLine(failed);
    expect(line).toContain('"buffered":2');
    expect(line).not.toContain('secret_income');
    expect(line).not.toContain('"p5"');

    // Retried once the topic exists: the drift monitor counts every prediction record, so a
    // prediction sent twice counted twice (the whole call retried: p0 and p1 twice).
    await ensureTopics(kafka, [{ topic, partitions: 1 }]);
    await flushOnceDelivered(sdk);
    await sdk.publishPrediction(unsent);
    await sdk.close();
    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const delivered = await Promise.all(
      (await readTopic(kafka, topic, 6)).map((r) =>
        codec.forTopic<PredictionEvent>(contracts.prediction, topic).decode(r.value),
      ),
    );
    expect(delivered.map((p) => p.prediction_id)).toEqual(['p0', 'p1', 'p2', 'p3', 'p4', 'p5']);
    // The retried ones keep the event time the failed call assigned (so their drift window).
    expect(delivered.slice(2).map((p) => p.event_time)).toEqual(unsent.map((p) => p.event_time));
    // Nothing more behind them: a read for a seventh finds none.
    await expect(readTopic(kafka, topic, 7, 5_000)).rejects.toThrow(`read 6/7 messages of ${topic}`);
  }, 120_000);
});

// These three, one after the other once the others are done: they need Kafka to acknowledge soon
// (within 15 s, and within bufferWaitMs for a full buffer to free), which other tests' encoding and
// schema registrations running at once could delay. bufferWaitMs is 5 s where a publish waits for an
// acknowledgement: at 1 s and 300 ms it was a bound on how fast a loaded broker answers.
describe('producer SDK: one topic failing holds no other topic back (found by a review)', () => {
  it('delivers predictions and features promptly while labels.v1 is missing, and flush() names the failing topic', async () => {
    const prefix = `${uniqueName('sdk-lanes')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const labels = `${prefix}labels.v1`;
    // labels.v1 is not created (the broker does not auto-create topics): every send to it fails
    // retriably, each attempt only after the client's retries (tens of seconds).
    await ensureTopics(kafka, [
      { topic: `${prefix}predictions.v1`, partitions: 2 },
      { topic: `${prefix}features.v1`, partitions: 2 },
    ]);
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      batchSize: 10,
      lingerMs: 1,
      maxBuffered: 20,
      bufferWaitMs: 5_000,
    });
    const prediction = (i: number) => ({
      prediction_id: `p${i}`,
      model: 'churn',
      model_version: '3',
      entity_id: `u${i % 3}`,
      features: {},
      prediction: i / 100,
    });
    // The labels are published first: they head the buffer, as in the review's run.
    await sdk.publishLabel([0, 1, 2].map((i) => ({ prediction_id: `p${i}`, model: 'churn', label: 1 })));
    await new Promise((r) => setTimeout(r, 200)); // their send is under way
    const started = Date.now();
    for (let i = 0; i < 30; i++) {
      await sdk.publishPrediction(prediction(i));
      await sdk.publishFeatures({ view: 'profile', entity_id: `u${i % 3}`, features: { age: i } });
      if (i % 10 === 0) await sdk.publishLabel({ prediction_id: `p${i}`, model: 'churn', label: 0 });
    }
    // Acknowledged by Kafka (acks=all) within a bound far below one failing send to labels.v1:
    // only the 6 labels stay buffered. Before, all 66 waited behind the labels (73 s in the review).
    await eventually(async () => (sdk.pending === 6 ? true : undefined), 15_000, 20);
    expect(Date.now() - started).toBeLessThan(15_000);

    // The failing topic gives one clear error naming it, once its send has failed.
    const failure = await sdk.flush().then(
      () => 'flushed',
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({
      name: 'DriftlineError',
      code: 'SINK_UNAVAILABLE',
      retriable: true,
      message: expect.stringContaining(`6 messages to ${labels} not delivered: `),
      details: { undelivered: { [labels]: 6 } },
    });
    expect(sdk.pending).toBe(6);

    // A failing topic holds at most half the buffer (10 of 20): its fifth label finds no room,
    // and the other topics keep theirs.
    const more = ['q0', 'q1', 'q2', 'q3', 'q4'].map((id) => ({ prediction_id: id, model: 'churn', label: 1 }));
    await expect(sdk.publishLabel(more)).rejects.toMatchObject({
      code: 'SINK_UNAVAILABLE',
      retriable: true,
      message: expect.stringContaining(
        `no room in the half of the buffer ${labels} may hold until a send to it is delivered`,
      ),
      details: { bound: 'topicShare', topic: labels, buffered: 4, events: 5 },
    });
    const sharedAt = Date.now();
    for (let i = 30; i < 45; i++) await sdk.publishPrediction(prediction(i));
    await eventually(async () => (sdk.pending === 10 ? true : undefined), 15_000, 20);
    expect(Date.now() - sharedAt).toBeLessThan(15_000);

    // Order is kept per topic: each partition holds its keys' predictions in publish order.
    const predictions = await readTopic(kafka, `${prefix}predictions.v1`, 45);
    for (const partition of [0, 1]) {
      const ids = predictions.filter((r) => r.partition === partition).map((r) => Number(String(r.key).slice(1)));
      expect(ids).toEqual([...ids].sort((a, b) => a - b));
    }
    expect(new Set(predictions.map((r) => String(r.key))).size).toBe(45);
    expect(await readTopic(kafka, `${prefix}features.v1`, 30)).toHaveLength(30);

    // Once the topic exists the labels go too, in publish order.
    await ensureTopics(kafka, [{ topic: labels, partitions: 1 }]);
    await flushOnceDelivered(sdk);
    await sdk.close();
    const labelled = await readTopic(kafka, labels, 10);
    expect(labelled.map((r) => String(r.key))).toEqual(['p0', 'p1', 'p2', 'p0', 'p10', 'p20', 'q0', 'q1', 'q2', 'q3']);
  }, 180_000);
});

describe('producer SDK: a missing <topic>.dlq holds back no other event (found by a review)', () => {
  it('delivers each accepted event once, and later ones, while the DLQ is missing; flush names it; once it exists the refused go', async () => {
    const prefix = `${uniqueName('sdk-nodlq')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const topic = `${prefix}features.v1`;
    // Batches of at most 4,000 bytes, and no features.v1.dlq: the ~5,000-byte events have nowhere to go.
    await ensureTopics(kafka, [{ topic, partitions: 1, config: { 'max.message.bytes': '4000' } }]);
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      batchSize: 5,
      lingerMs: 1,
    });
    const records = async () => (await topicOffsets(kafka, topic)).reduce((sum, p) => sum + Number(p.high), 0);
    const featureAt = (i: number, size = 10) => ({
      view: 'profile',
      entity_id: `user-${i}`,
      features: { note: 'x'.repeat(size) },
    });
    const events = Array.from({ length: 20 }, (_, i) => featureAt(i, i % 7 === 3 ? 5_000 : 10));
    await sdk.publishFeatures(events);
    // The 17 others are in within seconds, each once. Before, the failing dead-letter write put the
    // whole send back: the first 4 were written again every ~13 s and the 16 behind never went.
    await eventually(async () => ((await records()) >= 17 ? true : undefined), 15_000, 50);
    const failure = await sdk.flush().then(
      () => 'flushed',
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({
      code: 'SINK_UNAVAILABLE',
      retriable: true,
      message: expect.stringContaining(`3 messages to ${topic}.dlq not delivered: `),
      details: { undelivered: { [`${topic}.dlq`]: 3 } },
    });
    expect(sdk.pending).toBe(3);
    expect(sdk.deadLettered).toBe(0);
    // Later events go while the DLQ still fails.
    await sdk.publishFeatures([featureAt(20), featureAt(21)]);
    await eventually(async () => ((await records()) >= 19 ? true : undefined), 15_000, 50);
    expect(sdk.pending).toBe(3);

    // Once the DLQ exists the refused events are written there, and nothing was sent twice.
    await ensureTopics(kafka, [{ topic: `${topic}.dlq`, partitions: 1 }]);
    await flushOnceDelivered(sdk);
    expect(sdk.deadLettered).toBe(3);
    await sdk.close();
    expect(await records()).toBe(19);
    const delivered = await readTopic(kafka, topic, 19);
    expect(delivered.map((r) => r.key?.toString()).sort()).toEqual(
      [...events.filter((_, i) => i % 7 !== 3).map((e) => e.entity_id), 'user-20', 'user-21'].sort(),
    );
    const letters = await readTopic(kafka, `${topic}.dlq`, 3);
    expect(letters.map((r) => r.key?.toString()).sort()).toEqual(['user-10', 'user-17', 'user-3']);
  }, 180_000);
});

describe('producer SDK: a missing topic whose first send is not answered yet (found by a review)', () => {
  it('holds at most half the buffer, so a prediction published next is buffered and delivered at once', async () => {
    const prefix = `${uniqueName('sdk-share')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const labels = `${prefix}labels.v1`;
    await ensureTopics(kafka, [{ topic: `${prefix}predictions.v1`, partitions: 1 }]); // labels.v1 missing
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      batchSize: 5,
      maxBuffered: 20,
      lingerMs: 5,
      bufferWaitMs: 1_000,
    });
    // A burst of labels before the first send to the missing topic has failed: before, all 20 were
    // buffered and the prediction after them waited bufferWaitMs for room, then failed.
    const burst = Array.from({ length: 20 }, (_, i) => ({ prediction_id: `l${i}`, model: 'm', label: 1 }));
    await expect(sdk.publishLabel(burst)).rejects.toMatchObject({
      code: 'SINK_UNAVAILABLE',
      retriable: true,
      message: expect.stringContaining(
        `no room in the half of the buffer ${labels} may hold until a send to it is delivered (10 of 20 messages`,
      ),
      details: { bound: 'topicShare', topic: labels, buffered: 10, events: 20 },
    });
    const publishedAt = Date.now();
    await sdk.publishPrediction({
      prediction_id: 'x',
      model: 'm',
      model_version: '1',
      entity_id: 'e',
      features: { a: 1 },
      prediction: 0.5,
    });
    await eventually(async () => (sdk.pending === 10 ? true : undefined), 15_000, 20);
    expect(Date.now() - publishedAt).toBeLessThan(15_000);
    expect((await readTopic(kafka, `${prefix}predictions.v1`, 1)).map((r) => String(r.key))).toEqual(['x']);

    // Once the topic exists its 10 buffered labels go, in order.
    await ensureTopics(kafka, [{ topic: labels, partitions: 1 }]);
    await flushOnceDelivered(sdk);
    await sdk.close();
    expect((await readTopic(kafka, labels, 10)).map((r) => String(r.key))).toEqual(
      burst.slice(0, 10).map((l) => l.prediction_id),
    );
  }, 120_000);
});

describe('producer SDK: a safe retry with the defaults a call assigned (found by a review)', () => {
  it('returns the events as published, and names them in a failed call, so publishing them again repeats the same ids and times', async () => {
    const prefix = `${uniqueName('sdk-retry')}.`;
    const kafka = kafkaFor(stack.kafkaBrokers);
    const featureTopic = `${prefix}features.v1`;
    const labelTopic = `${prefix}labels.v1`;
    await ensureTopics(kafka, [
      { topic: featureTopic, partitions: 1 },
      { topic: `${prefix}predictions.v1`, partitions: 1 },
    ]);
    const sdk = await createDriftlineProducer({
      client: kafka,
      registry: { url: stack.schemaRegistryUrl },
      topicPrefix: prefix,
      maxBuffered: 1,
      batchSize: 1,
      bufferWaitMs: 5_000,
    });
    const batch = [{ view: 'spend', entity_id: 'retry1', features: { amount: 10 } }];
    const published = await sdk.publishFeatures(batch);
    expect(published).toEqual([{ ...batch[0], event_id: expect.any(String), event_time: expect.any(Number) }]);
    expect(batch[0]).not.toHaveProperty('event_id'); // the caller's objects untouched
    // The retry of the same call (at-least-once) re-publishes what the first call assigned.
    expect(await sdk.publishFeatures(published)).toEqual(published);
    const prediction = {
      prediction_id: 'p1',
      model: 'm',
      model_version: '1',
      entity_id: 'e',
      features: {},
      prediction: 1,
    };
    const predicted = await sdk.publishPrediction(prediction);
    expect(predicted[0]).toMatchObject({ event_time: expect.any(Number), predicted_class: null });
    await sdk.flush();

    // labels.v1 is missing: the first label fills the buffer of one, the second call gives up. Its
    // error names the events it did not send with their assigned times, the retry once the topic exists.
    await sdk.publishLabel({ prediction_id: 'a', model: 'm', label: 1 });
    const failed = await sdk.publishLabel({ prediction_id: 'b', model: 'm', label: 0 }).then(
      () => undefined,
      (error: unknown) => error as { code: string; details: { unsent: readonly LabelEvent[] } },
    );
    expect(failed).toMatchObject({ code: 'SINK_UNAVAILABLE', details: { buffered: 0, events: 1 } });
    const toRetry = failed!.details.unsent;
    expect(toRetry).toEqual([{ prediction_id: 'b', model: 'm', label: 0, event_time: expect.any(Number) }]);
    await ensureTopics(kafka, [{ topic: labelTopic, partitions: 1 }]);
    await flushOnceDelivered(sdk);
    await sdk.publishLabel(toRetry);
    await sdk.close();

    const codec = new SchemaRegistryCodec({ url: stack.schemaRegistryUrl });
    const features = await Promise.all(
      (await readTopic(kafka, featureTopic, 2)).map((r) =>
        codec.forTopic<FeatureEvent>(contracts.feature, featureTopic).decode(r.value),
      ),
    );
    // Twice the same event: the materializer's dedup by event_id counts it once.
    expect(features).toEqual([published[0], published[0]]);
    const labels = await Promise.all(
      (await readTopic(kafka, labelTopic, 2)).map((r) =>
        codec.forTopic<LabelEvent>(contracts.label, labelTopic).decode(r.value),
      ),
    );
    expect(labels[1]).toMatchObject({ ...toRetry[0] });
  });
});
