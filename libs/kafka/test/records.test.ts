import { DriftlineError, type ErrorCode, PoisonRecordError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { deliverWithBisect, suspectsProcessor } from '../src/bisect.js';
import {
  capText,
  type DecodedRecord,
  DLQ_HEADERS,
  deadLetterMessage,
  type InboundRecord,
  messageSize,
  toBufferHeaders,
} from '../src/records.js';
import { REPLAYED_FROM_HEADER, readDeadLetter, replayMessageOf } from '../src/replay.js';

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

describe('toBufferHeaders', () => {
  it('keeps bytes as they are, a repeated header as its list, strings as UTF-8, and __proto__ as an own header', () => {
    const raw = Object.fromEntries([
      ['b', Buffer.from([0xff])],
      ['r', [Buffer.from([0xfe]), 'x']],
      ['s', 'é'],
      ['__proto__', Buffer.from('p')],
    ]);
    const headers = toBufferHeaders(raw);
    expect(Object.keys(headers)).toEqual(['b', 'r', 's', '__proto__']);
    expect(headers.b).toEqual(Buffer.from([0xff]));
    expect(headers.r).toEqual([Buffer.from([0xfe]), Buffer.from('x')]);
    expect(headers.s).toEqual(Buffer.from('é'));
    expect(Object.getOwnPropertyDescriptor(headers, '__proto__')?.value).toEqual(Buffer.from('p'));
  });

  it('a dead letter keeps them, and its size counts every value of a repeated header', () => {
    const headers = toBufferHeaders({ r: [Buffer.alloc(100), Buffer.alloc(100)] });
    const msg = deadLetterMessage({ record: { ...record(1), headers }, code: 'DECODE_FAILED', reason: 'x' }, 'g', 0);
    expect(msg.headers?.r).toEqual([Buffer.alloc(100), Buffer.alloc(100)]);
    const one = deadLetterMessage(
      { record: { ...record(1), headers: { r: Buffer.alloc(100) } }, code: 'DECODE_FAILED', reason: 'x' },
      'g',
      0,
    );
    expect(messageSize(msg) - messageSize(one)).toBeGreaterThanOrEqual(100);
  });

  it("leaves out the record's own driftline.dlq.* headers: read back, the letter is its own (found by a review: a record carrying driftline.dlq.truncated was skipped by the replay as truncated)", () => {
    const headers = toBufferHeaders({
      [DLQ_HEADERS.truncated]: Buffer.from('999'),
      [DLQ_HEADERS.code]: Buffer.from('INTERNAL'),
      trace: Buffer.from('t1'),
    });
    const msg = deadLetterMessage(
      { record: { ...record(42), headers }, code: 'VALIDATION_FAILED', reason: 'bad view' },
      'g',
      0,
    );
    const asRead: InboundRecord = {
      ...record(0),
      topic: 't.dlq',
      value: Buffer.isBuffer(msg.value) ? msg.value : null,
      headers: toBufferHeaders(
        Object.fromEntries(
          Object.entries(msg.headers ?? {}).map(([k, v]) => [k, Buffer.isBuffer(v) ? v : Buffer.from(String(v))]),
        ),
      ),
    };
    const view = readDeadLetter(asRead);
    expect(view).toMatchObject({ truncated: false, code: 'VALIDATION_FAILED', sourceOffset: '42' });
    expect(Object.keys(replayMessageOf(view!).headers ?? {}).sort()).toEqual([REPLAYED_FROM_HEADER, 'trace'].sort());
  });
});

describe('capText', () => {
  it('leaves a short text alone', () => {
    expect(capText('short', 1024)).toBe('short');
  });

  it('caps at the byte bound, never splits a character, and names the original size', () => {
    const long = `x${'é'.repeat(5_000)}`; // 10,001 bytes
    const capped = capText(long, 1024);
    expect(Buffer.byteLength(capped)).toBeLessThanOrEqual(1024);
    expect(Buffer.byteLength(capped)).toBeGreaterThan(1000);
    expect(capped).not.toContain('\uFFFD');
    expect(capped.endsWith('…(truncated, 10001 bytes)')).toBe(true);
    expect(capped.startsWith('xéé')).toBe(true);
  });
});

describe('deadLetterMessage bounds', () => {
  const bounds = { maxRecordBytes: 4_096, maxReasonBytes: 256 };
  const big = (value: Buffer, extra: Partial<InboundRecord> = {}): InboundRecord => ({ ...record(1), value, ...extra });

  it('caps the reason header', () => {
    const msg = deadLetterMessage(
      { record: record(1), code: 'DECODE_FAILED', reason: 'r'.repeat(10_000) },
      'g',
      0,
      bounds,
    );
    const reason = String(msg.headers?.[DLQ_HEADERS.reason]);
    expect(Buffer.byteLength(reason)).toBeLessThanOrEqual(256);
    expect(reason).toMatch(/^r+…\(truncated, 10000 bytes\)$/);
    expect(msg.headers?.[DLQ_HEADERS.truncated]).toBeUndefined();
  });

  it('keeps a record that fits whole, without the flag', () => {
    const value = Buffer.alloc(3_000, 1);
    const msg = deadLetterMessage({ record: big(value), code: 'DECODE_FAILED', reason: 'bad' }, 'g', 0, bounds);
    expect(msg.value).toEqual(value);
    expect(msg.headers?.[DLQ_HEADERS.truncated]).toBeUndefined();
    expect(messageSize(msg)).toBeLessThanOrEqual(bounds.maxRecordBytes);
  });

  it('truncates a value too large for the DLQ to its first bytes and flags the original size', () => {
    const value = Buffer.from(Array.from({ length: 2 * 1024 * 1024 }, (_, i) => i % 251));
    const msg = deadLetterMessage({ record: big(value), code: 'DECODE_FAILED', reason: 'bad' }, 'g', 0, bounds);
    expect(messageSize(msg)).toBeLessThanOrEqual(bounds.maxRecordBytes);
    expect(msg.headers?.[DLQ_HEADERS.truncated]).toBe(String(value.length));
    expect(msg.value!.length).toBeGreaterThan(3_000);
    expect(msg.value!.equals(value.subarray(0, msg.value!.length))).toBe(true);
    expect(msg.key).toEqual(Buffer.from('k1'));
    expect(msg.headers).toMatchObject({ trace: Buffer.from('abc'), [DLQ_HEADERS.offset]: '1' });
  });

  it('drops the original headers and cuts the key when they alone do not fit', () => {
    const key = Buffer.alloc(10_000, 'k');
    const headers = { huge: Buffer.alloc(10_000, 'h'), small: Buffer.from('s') };
    const value = Buffer.alloc(10_000, 'v');
    const msg = deadLetterMessage(
      { record: big(value, { key, headers }), code: 'VALIDATION_FAILED', reason: 'bad' },
      'g',
      0,
      bounds,
    );
    expect(messageSize(msg)).toBeLessThanOrEqual(bounds.maxRecordBytes);
    expect(msg.headers).toMatchObject({
      [DLQ_HEADERS.truncated]: '10000',
      [DLQ_HEADERS.truncatedKey]: '10000',
      [DLQ_HEADERS.droppedHeaders]: '2',
      [DLQ_HEADERS.reason]: 'bad',
      [DLQ_HEADERS.code]: 'VALIDATION_FAILED',
    });
    expect(msg.headers?.huge).toBeUndefined();
    expect((msg.key as Buffer).equals(key.subarray(0, (msg.key as Buffer).length))).toBe(true);
  });

  it('keeps a null value null', () => {
    const key = Buffer.alloc(10_000, 'k');
    const msg = deadLetterMessage(
      { record: big(Buffer.alloc(0), { key, value: null }), code: 'DECODE_FAILED', reason: 'x' },
      'g',
      0,
      bounds,
    );
    expect(msg.value).toBeNull();
    expect(messageSize(msg)).toBeLessThanOrEqual(bounds.maxRecordBytes);
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

describe('suspectsProcessor', () => {
  const rejections = (...codes: ErrorCode[]) => codes.map((code) => ({ code }));

  it('suspects the processor only when nothing got through and a record failed with a processor-fault code', () => {
    expect(suspectsProcessor(3, rejections('INTERNAL', 'INTERNAL', 'INTERNAL'))).toBe(true);
    // A poison record next to records a bug failed: still nothing got through.
    expect(suspectsProcessor(2, rejections('VALIDATION_FAILED', 'INTERNAL'))).toBe(true);
    // The deployment's own schema or config refused: never the record's fault.
    expect(suspectsProcessor(1, rejections('SCHEMA_INCOMPATIBLE'))).toBe(true);
    expect(suspectsProcessor(1, rejections('CONFIG_INVALID'))).toBe(true);
  });

  it('leaves classified poison and partial failures to the DLQ', () => {
    expect(suspectsProcessor(3, rejections('INTERNAL'))).toBe(false); // two records got through
    expect(suspectsProcessor(2, rejections('SINK_REJECTED', 'VALIDATION_FAILED'))).toBe(false);
    expect(suspectsProcessor(0, [])).toBe(false);
  });
});
