import { describe, expect, it } from 'vitest';
import { DLQ_HEADERS, type InboundRecord } from '../src/records.js';
import { DeadLetterSummary, REPLAYED_FROM_HEADER, readDeadLetter, replayMessageOf, selects } from '../src/replay.js';

const letter = (offset: number, headers: Record<string, string>, value = 'v'): InboundRecord => ({
  topic: 'p.v1.dlq',
  partition: 2,
  offset: String(offset),
  key: Buffer.from('k'),
  value: Buffer.from(value),
  headers: Object.fromEntries(Object.entries(headers).map(([k, v]) => [k, Buffer.from(v)])),
  timestamp: 0,
});
const dead = (offset: number, code: string, reason: string, failedAt: string, extra: Record<string, string> = {}) =>
  letter(offset, {
    [DLQ_HEADERS.topic]: 'p.v1',
    [DLQ_HEADERS.partition]: '0',
    [DLQ_HEADERS.offset]: String(offset),
    [DLQ_HEADERS.code]: code,
    [DLQ_HEADERS.reason]: reason,
    [DLQ_HEADERS.failedAt]: failedAt,
    [DLQ_HEADERS.group]: 'g',
    ...extra,
  });

describe('dead letters read back for listing and replay', () => {
  it('reads what the loop wrote; a record without its headers is not a dead letter', () => {
    const d = readDeadLetter(dead(7, 'INTERNAL', 'boom', '2026-12-05T01:00:00.000Z'))!;
    expect(d).toMatchObject({
      sourceTopic: 'p.v1',
      sourcePartition: 0,
      sourceOffset: '7',
      code: 'INTERNAL',
      truncated: false,
    });
    expect(d.failedAt).toBe(Date.UTC(2026, 11, 5, 1));
    expect(readDeadLetter(letter(1, { trace: 'x' }))).toBeUndefined();
  });

  it('replays the original key, value and headers, without the loop headers, naming the dead letter', () => {
    const d = readDeadLetter(dead(7, 'INTERNAL', 'boom', '2026-12-05T01:00:00Z', { trace: 't-1' }))!;
    const m = replayMessageOf(d);
    expect(m.key?.toString()).toBe('k');
    expect(m.value?.toString()).toBe('v');
    expect(Object.keys(m.headers ?? {}).sort()).toEqual([REPLAYED_FROM_HEADER, 'trace']);
    expect(m.headers?.[REPLAYED_FROM_HEADER]?.toString()).toBe('p.v1.dlq/2/7');
  });

  it('selects by code, failure time and reason; every condition must hold', () => {
    const d = readDeadLetter(dead(1, 'INTERNAL', 'x is undefined', '2026-12-05T01:00:00Z'))!;
    const at = Date.UTC(2026, 11, 5, 1);
    expect(selects({}, d)).toBe(true);
    expect(selects({ codes: new Set(['INTERNAL']) }, d)).toBe(true);
    expect(selects({ codes: new Set(['DECODE_FAILED']) }, d)).toBe(false);
    expect(selects({ group: 'g' }, d)).toBe(true);
    expect(selects({ group: 'other' }, d)).toBe(false);
    expect(selects({ since: at, until: at + 1 }, d)).toBe(true);
    expect(selects({ until: at }, d)).toBe(false); // until is exclusive
    expect(selects({ reasonContains: 'undefined', since: at + 1 }, d)).toBe(false);
    // No failure time: never inside a time range.
    expect(selects({ since: 0 }, readDeadLetter(dead(2, 'INTERNAL', 'x', 'not a time'))!)).toBe(false);
  });

  it('counts by code and reason, most frequent first; past the group bound, under "(other reasons)"', () => {
    const s = new DeadLetterSummary();
    for (let i = 0; i < DeadLetterSummary.MAX_GROUPS + 5; i++)
      s.add(readDeadLetter(dead(i, 'VALIDATION_FAILED', `reason ${i}`, '2026-12-05T01:00:00Z'))!);
    s.add(readDeadLetter(dead(9, 'INTERNAL', 'boom', '2026-12-05T02:00:00Z', { [DLQ_HEADERS.truncated]: '99' }))!);
    const groups = s.list();
    // The bound, then one "(other reasons)" per code.
    expect(groups).toHaveLength(DeadLetterSummary.MAX_GROUPS + 2);
    expect(groups[0]).toMatchObject({ code: 'VALIDATION_FAILED', reason: '(other reasons)', count: 5 });
    expect(groups.find((g) => g.code === 'INTERNAL')).toMatchObject({
      reason: '(other reasons)',
      count: 1,
      truncated: 1,
    });
  });
});
