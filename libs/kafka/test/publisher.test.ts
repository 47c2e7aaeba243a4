import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { createPublisher, type EventProducer, type OutboundMessage } from '../src/index.js';

/** An in-memory EventProducer: records what would go to Kafka. */
function recordingProducer() {
  const sent: Array<{ topic: string; messages: readonly OutboundMessage[] }> = [];
  const producer: EventProducer = {
    async send(topic, messages) {
      sent.push({ topic, messages });
    },
    async disconnect() {},
  };
  return { producer, sent };
}

interface Event {
  readonly id: string;
  readonly n: number;
}

const encode = (e: Event) => {
  if (e.n < 0) throw new DriftlineError('VALIDATION_FAILED', `n=${e.n}`);
  return Buffer.from(JSON.stringify(e));
};

describe('publisher', () => {
  it('encodes, keys and sends a batch in one request, after preparing once', async () => {
    const { producer, sent } = recordingProducer();
    let prepared = 0;
    let created = 0;
    const publisher = createPublisher<Event>({
      topic: 't',
      producer: async () => {
        created++;
        return producer;
      },
      encode,
      key: (e) => e.id,
      prepare: async () => void prepared++,
    });
    await publisher.publish([
      { id: 'a', n: 1 },
      { id: 'b', n: 2 },
    ]);
    await publisher.publish([{ id: 'c', n: 3 }]);
    await publisher.publish([]);
    expect(prepared).toBe(1);
    expect(created).toBe(2); // the factory is the context's memoised getter; asked per send
    expect(sent.map((s) => s.topic)).toEqual(['t', 't']);
    expect(sent[0]!.messages.map((m) => [m.key, m.value?.toString()])).toEqual([
      ['a', '{"id":"a","n":1}'],
      ['b', '{"id":"b","n":2}'],
    ]);
  });

  it('sends nothing of a call when one value fails to encode', async () => {
    const { producer, sent } = recordingProducer();
    const publisher = createPublisher<Event>({ topic: 't', producer, encode, key: (e) => e.id });
    await expect(
      publisher.publish([
        { id: 'a', n: 1 },
        { id: 'b', n: -1 },
      ]),
    ).rejects.toMatchObject({ code: 'VALIDATION_FAILED' });
    expect(sent).toEqual([]);
  });

  it('retries a failed preparation on the next call instead of remembering the failure', async () => {
    const { producer, sent } = recordingProducer();
    let attempts = 0;
    const publisher = createPublisher<Event>({
      topic: 't',
      producer,
      encode,
      key: (e) => e.id,
      prepare: async () => {
        attempts++;
        if (attempts === 1) throw new DriftlineError('SOURCE_UNAVAILABLE', 'registry down', { retriable: true });
      },
    });
    await expect(publisher.prepare()).rejects.toThrow('registry down');
    await publisher.publish([{ id: 'a', n: 1 }]);
    expect(attempts).toBe(2);
    expect(sent).toHaveLength(1);
  });
});
