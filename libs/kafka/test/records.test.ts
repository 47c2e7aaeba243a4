import { DriftlineError, PoisonRecordError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { deliverWithBisect } from '../src/bisect.js';
import { type DecodedRecord, DLQ_HEADERS, deadLetterMessage, type InboundRecord } from '../src/records.js';

function record(offset: number): InboundRecord {
  return {
    topic: 't',
    partition: 2,
    offset: String(offset),
    key: Buffer.from(`k${offset}`),
    value: Buffer.from([0, 1, 2, offset]),
    headers: { trace: Buffer.from('abc') },
    timestamp: 1_700_000_000_000,
  };
}

describe('deadLetterMessage', () => {
  it('keeps the original key, bytes and headers and adds the reason', () => {
    const msg = deadLetterMessage({ record: record(7), code: 'DECODE_FAILED', reason: 'bad magic byte' }, 'g1', 0);
    expect(msg.key).toEqual(Buffer.from('k7'));
    expect(msg.value).toEqual(Buffer.from([0, 1, 2, 7]));
    expect(msg.headers).toMatchObject({
      trace: Buffer.from('abc'),
      [DLQ_HEADERS.reason]: 'bad magic byte',
      [DLQ_HEADERS.code]: 'DECODE_FAILED',
      [DLQ_HEADERS.topic]: 't',
      [DLQ_HEADERS.partition]: '2',
      [DLQ_HEADERS.offset]: '7',
      [DLQ_HEADERS.group]: 'g1',
      [DLQ_HEADERS.failedAt]: '1970-01-01T00:00:00.000Z',
    });
  });
});

describe('deliverWithBisect', () => {
  const items: Array<DecodedRecord<number>> = Array.from({ length: 10 }, (_, i) => ({ record: record(i), value: i }));

  it('isolates exactly the records the sink refuses and delivers all the others', async () => {
    const delivered = new Set<number>();
    const dead = await deliverWithBisect(items, async (batch) => {
      const bad = batch.find((b) => b.value === 3 || b.value === 8);
      if (bad !== undefined) throw new PoisonRecordError('VALIDATION_FAILED', `value ${bad.value} refused`);
      for (const b of batch) delivered.add(b.value);
    });
    expect(dead.map((d) => d.record.offset)).toEqual(['3', '8']);
    expect(dead[0]?.reason).toBe('value 3 refused');
    expect([...delivered].sort((a, b) => a - b)).toEqual([0, 1, 2, 4, 5, 6, 7, 9]);
  });

  it('rethrows a retriable failure instead of dead-lettering', async () => {
    const down = new DriftlineError('SINK_UNAVAILABLE', 'redis down', { retriable: true });
    await expect(
      deliverWithBisect(items, async () => {
        throw down;
      }),
    ).rejects.toBe(down);
  });

  it('treats connection errors from foreign clients as retriable', async () => {
    const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6379'), { code: 'ECONNREFUSED' });
    await expect(
      deliverWithBisect(items, async () => {
        throw refused;
      }),
    ).rejects.toMatchObject({ retriable: true });
  });
});
