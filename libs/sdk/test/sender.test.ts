import { DriftlineError, silentLogger } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { type Outgoing, TopicSender } from '../src/sender.js';

/** Largest value the fake topic takes, as a topic's `max.message.bytes`. */
const LIMIT = 100;

/**
 * A producer whose topic refuses, as they are, values over LIMIT (non-retriable, as the broker's
 * MESSAGE_TOO_LARGE) and whose `<topic>.dlq` fails retriably while `dlqDown` (missing).
 */
function fakeProducer() {
  const state = { dlqDown: true, dlqAttempts: 0 };
  const delivered: string[] = [];
  const deadLetters: string[] = [];
  const send = async (topic: string, messages: readonly { key: unknown; value: Buffer | null }[]) => {
    await new Promise((r) => setTimeout(r, 1));
    const keys = messages.map((m) => String(m.key));
    if (topic.endsWith('.dlq')) {
      state.dlqAttempts++;
      if (state.dlqDown) {
        throw new DriftlineError('SINK_UNAVAILABLE', `producing to ${topic} failed: no such topic`, {
          retriable: true,
        });
      }
      deadLetters.push(...keys);
      return;
    }
    if (messages.some((m) => (m.value?.length ?? 0) > LIMIT)) {
      throw new DriftlineError('SINK_REJECTED', `${topic} refused the batch: MESSAGE_TOO_LARGE`);
    }
    delivered.push(...keys);
  };
  return { send, state, delivered, deadLetters };
}

const message = (i: number): Outgoing => ({ key: `k${i}`, value: Buffer.alloc(i % 7 === 3 ? 500 : 10) });

const senderOver = (producer: ReturnType<typeof fakeProducer>) =>
  new TopicSender({
    producer,
    producedBy: 'test',
    batchSize: 5,
    maxSendBytes: 100_000,
    lingerMs: 0,
    retryAfterMs: 20,
    onSent: () => {},
    logger: silentLogger,
  });

const waitFor = async (condition: () => boolean, ms = 5_000) => {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met');
    await new Promise((r) => setTimeout(r, 2));
  }
};

const keys = (from: number, to: number, keep: (i: number) => boolean = () => true) =>
  Array.from({ length: to - from }, (_, j) => from + j)
    .filter(keep)
    .map((i) => `k${i}`);

// A review: with <topic>.dlq missing, the dead-letter failure put the whole send back, delivered
// messages included: the same 4 events written 7 times in 90 s, and the 16 behind them never sent.
describe('TopicSender: events Kafka refuses, and a dead-letter topic that fails', () => {
  it('sends each good event once and the later ones too while the DLQ fails; flush names the DLQ and its events', async () => {
    const producer = fakeProducer();
    const sender = senderOver(producer);
    for (let i = 0; i < 20; i++) sender.lanes.push('t', message(i));

    const failure = await sender.flush().then(
      () => 'flushed',
      (error: unknown) => error,
    );
    expect(failure).toMatchObject({
      code: 'SINK_UNAVAILABLE',
      retriable: true,
      message: expect.stringContaining('3 messages to t.dlq not delivered: producing to t.dlq failed: no such topic'),
      details: { undelivered: { 't.dlq': 3 } },
    });
    const good = keys(0, 20, (i) => i % 7 !== 3);
    expect([...producer.delivered].sort()).toEqual([...good].sort()); // each once: none re-sent
    expect(sender.lanes.pending).toBe(3); // the refused ones, still owed to the DLQ
    expect(sender.deadLettered).toBe(0);

    // Later events go while the DLQ keeps failing (it is retried in the background meanwhile).
    const attempts = producer.state.dlqAttempts;
    for (let i = 20; i < 30; i++) sender.lanes.push('t', message(i));
    await waitFor(() => producer.delivered.length === good.length + 9); // k24 is refused
    expect([...producer.delivered].sort()).toEqual(keys(0, 30, (i) => i % 7 !== 3).sort());
    await waitFor(() => producer.state.dlqAttempts > attempts + 1);
    expect(producer.deadLetters).toEqual([]);

    // Once the DLQ takes them, a flush resolves with every refused event dead-lettered, once.
    producer.state.dlqDown = false;
    await sender.flush();
    expect([...producer.deadLetters].sort()).toEqual(['k10', 'k17', 'k24', 'k3']);
    expect(sender.deadLettered).toBe(4);
    expect(sender.lanes.pending).toBe(0);
    expect(producer.delivered).toHaveLength(26);
    sender.lanes.stop();
  });
});
