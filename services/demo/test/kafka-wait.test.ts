import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { KafkaStalled, kafkaWaiter } from '../src/kafka-wait.js';

const never = () => new Promise<never>(() => {});
const after = <T>(ms: number, value: T) => new Promise<T>((resolve) => setTimeout(() => resolve(value), ms));

describe('the traffic loop waiting on Kafka (found by a review: minutes of silence, then one line)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('says it waits every 10 s and fails within 60 s in all, in one line naming Kafka', async () => {
    const lines: string[] = [];
    const kafka = kafkaWaiter({ brokers: '127.0.0.1:9092', say: (l) => lines.push(l) });
    const outcome = kafka('publishing features', never()).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(60_000);
    expect(lines).toEqual([10, 20, 30, 40, 50].map((s) => `waiting for Kafka at 127.0.0.1:9092 (${s} s)`));
    const error = await outcome;
    expect(error).toBeInstanceOf(KafkaStalled);
    expect((error as Error).message).toBe(
      'Kafka at 127.0.0.1:9092 took nothing for 60 s (publishing features still waiting); is it running?',
    );
  });

  it('counts one stall across slow calls in a row: 60 s in all, not 60 s each', async () => {
    const lines: string[] = [];
    const kafka = kafkaWaiter({ brokers: 'k:1', say: (l) => lines.push(l) });
    await Promise.all([kafka('a', after(45_000, 1)), vi.advanceTimersByTimeAsync(45_000)]);
    const outcome = kafka('b', never()).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(await outcome).toBeInstanceOf(KafkaStalled);
    expect(lines.at(-1)).toBe('waiting for Kafka at k:1 (55 s)');
  });

  it('passes a quick call and a call’s own failure (the SDK’s line) through unchanged, silently', async () => {
    const lines: string[] = [];
    const kafka = kafkaWaiter({ brokers: 'k:1', say: (l) => lines.push(l) });
    const sdkError = new Error('driftline SDK: no room in the buffer … within 45000 ms (bufferWaitMs)');
    const failing = kafka('publishing labels', Promise.reject(sdkError)).catch((e: unknown) => e);
    expect(await failing).toBe(sdkError);
    const [flushed] = await Promise.all([kafka('flush', after(3_000, 'ok')), vi.advanceTimersByTimeAsync(3_000)]);
    expect(flushed).toBe('ok');
    await vi.advanceTimersByTimeAsync(120_000); // nothing is left ticking
    expect(lines).toEqual([]);
  });
});
