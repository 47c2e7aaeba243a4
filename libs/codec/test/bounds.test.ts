import { contracts } from '@driftline/schemas';
import { SeededRandom } from '@driftline/test-support/random';
import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { AvroBoundsError, compileBoundsCheck, MAX_AVRO_DEPTH, MAX_AVRO_EMPTY_ITEMS } from '../src/bounds.js';

const featureType = avro.Type.forSchema(contracts.feature.schema as avro.Schema);
const checkFeature = compileBoundsCheck(featureType);

/** Zigzag varint of a non-negative or negative safe integer (as avsc writes longs). */
function varint(value: number): number[] {
  let n = value >= 0 ? value * 2 : -value * 2 - 1;
  const out: number[] = [];
  while (n >= 0x80) {
    out.push((n % 0x80) | 0x80);
    n = Math.floor(n / 0x80);
  }
  out.push(n);
  return out;
}
const str = (s: string): number[] => [...varint(Buffer.byteLength(s)), ...Buffer.from(s)];
/** event_id, view, entity_id, event_time of a FeatureEvent; the features map follows. */
const featureHead = [...str('a'), ...str('b'), ...str('c'), ...varint(2)];

/** The check's verdict on `bytes`, then avsc's decode must never be reached with them. */
function violation(check: (b: Uint8Array) => void, bytes: number[] | Buffer): AvroBoundsError {
  try {
    check(Uint8Array.from(bytes));
  } catch (error) {
    expect(error).toBeInstanceOf(AvroBoundsError);
    return error as AvroBoundsError;
  }
  throw new Error('the bounds check accepted hostile bytes');
}

describe('Avro bounds check (writer schema walk before avsc)', () => {
  it('refuses the 17-byte body whose map block count makes avsc loop (issue 11)', () => {
    const body = [...featureHead, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
    expect(body).toHaveLength(17);
    const started = performance.now();
    const error = violation(checkFeature, body);
    const ms = performance.now() - started;
    expect(error.describe()).toMatch(/^at features \(byte 7\): map block count .* exceeds the 0 bytes left$/);
    console.log(`hostile 17-byte body refused in ${ms.toFixed(3)} ms`);
  });

  it('refuses negative block counts with a huge or inconsistent byte size', () => {
    // count -1, then a block size of 2^31 bytes
    expect(violation(checkFeature, [...featureHead, ...varint(-1), ...varint(2 ** 31)]).problem).toMatch(
      /map block size 2147483648 exceeds the 0 bytes left/,
    );
    // count -(2^40) in a block of 4 bytes
    const block = [...str('k'), 0, 0];
    expect(violation(checkFeature, [...featureHead, ...varint(-(2 ** 40)), ...varint(3), ...block]).problem).toMatch(
      /map block count 1099511627776 × 2 byte\(s\) per item exceeds the 3 bytes left/,
    );
    // a block size that does not match its items
    expect(
      violation(checkFeature, [...featureHead, ...varint(-1), ...varint(4), ...str('k'), 0, 0, 0]).problem,
    ).toMatch(/map block size does not match/);
  });

  it('refuses lengths past the buffer, negative lengths, truncated and overlong varints', () => {
    expect(violation(checkFeature, [...varint(100), 0x61, 0x62]).describe()).toBe(
      'at event_id (byte 0): string length 100 exceeds the 2 bytes left',
    );
    expect(violation(checkFeature, [...varint(-5)]).problem).toMatch(/string length -5/);
    expect(violation(checkFeature, [...str('a'), ...str('b'), ...str('c'), 0x80]).describe()).toBe(
      'at event_time (byte 6): long: truncated varint',
    );
    expect(violation(checkFeature, [...str('a'), ...str('b'), ...str('c'), ...Array(11).fill(0xff), 0]).problem).toBe(
      'long: varint longer than 10 bytes',
    );
    // an empty body, and a map key longer than what is left
    expect(violation(checkFeature, []).problem).toMatch(/truncated varint/);
    expect(violation(checkFeature, [...featureHead, ...varint(1), ...varint(9), 0x61]).describe()).toMatch(
      /^at features .*map key length 9 exceeds the 1 bytes left$/,
    );
  });

  it('decodes a map key "__proto__" as an own key like any other (avsc, patched: it set the prototype or dropped it)', () => {
    const features = JSON.parse('{"__proto__": 1.5, "y": 2, "constructor": null}'); // own keys
    const bytes = featureType.toBuffer({ event_id: 'a', view: 'b', entity_id: 'c', event_time: 1, features });
    checkFeature(bytes);
    const decoded = featureType.fromBuffer(bytes).features as Record<string, unknown>;
    expect(Object.keys(decoded)).toEqual(['__proto__', 'y', 'constructor']);
    expect(Object.getPrototypeOf(decoded)).toBe(Object.prototype);
    expect(Object.getOwnPropertyDescriptor(decoded, '__proto__')?.value).toEqual(1.5);
  });

  it('refuses union and enum indexes out of range, booleans other than 0/1, trailing bytes', () => {
    expect(
      violation(checkFeature, [...featureHead, ...varint(1), ...str('k'), ...varint(7), ...varint(0)]).problem,
    ).toBe('union index 7 is outside [0, 4)');
    expect(violation(checkFeature, [...featureHead, ...varint(1), ...str('k'), ...varint(3), 2, 0]).problem).toBe(
      'boolean byte 2 is not 0 or 1',
    );
    expect(violation(checkFeature, [...featureHead, 0, 0x2a]).problem).toBe('1 trailing byte(s) after the value');
    const model = compileBoundsCheck(avro.Type.forSchema(contracts.model.schema as avro.Schema));
    expect(violation(model, [...str('m'), ...str('v'), ...varint(7)]).describe()).toBe(
      'at kind (byte 4): enum index 7 is outside [0, 7)',
    );
  });

  it('refuses a long beyond 2^53 naming its field (a nanosecond event_time), and takes the largest safe one', () => {
    const check = compileBoundsCheck(
      avro.Type.forSchema({ type: 'record', name: 'E', fields: [{ name: 'event_time', type: 'long' }] }),
    );
    const longVarint = (v: bigint) => {
      let n = v >= 0n ? v * 2n : -v * 2n - 1n;
      const out: number[] = [];
      while (n >= 0x80n) {
        out.push(Number(n & 0x7fn) | 0x80);
        n >>= 7n;
      }
      out.push(Number(n));
      return out;
    };
    expect(violation(check, longVarint(1_733_140_000_000_000_000n)).describe()).toBe(
      'at event_time (byte 0): long of about 1.733e+18 is beyond ±2^53, the integers read exactly (nanoseconds, if it is an epoch time?)',
    );
    expect(violation(check, longVarint(-(2n ** 60n))).problem).toMatch(/^long of about -1\.153e\+18 is beyond/);
    expect(() => check(Uint8Array.from(longVarint(BigInt(Number.MAX_SAFE_INTEGER))))).not.toThrow();
  });

  it('caps recursion depth of a recursive schema and counts of zero-width items', () => {
    const list = avro.Type.forSchema({
      type: 'record',
      name: 'Node',
      fields: [
        { name: 'value', type: 'long' },
        { name: 'next', type: ['null', 'Node'] },
      ],
    });
    const checkList = compileBoundsCheck(list);
    const ok = list.toBuffer({ value: 1, next: { value: 2, next: null } });
    expect(() => checkList(ok)).not.toThrow();
    const deep: number[] = [];
    for (let i = 0; i < 50_000; i++) deep.push(0, 2);
    deep.push(0, 0);
    expect(violation(checkList, deep).problem).toBe(`nesting deeper than ${MAX_AVRO_DEPTH}`);

    const nulls = compileBoundsCheck(avro.Type.forSchema({ type: 'array', items: 'null' }));
    expect(() => nulls(Uint8Array.from([...varint(3), 0]))).not.toThrow();
    expect(violation(nulls, [...varint(2 ** 40), 0]).problem).toMatch(
      new RegExp(`zero-width items exceeds the limit of ${MAX_AVRO_EMPTY_ITEMS}`),
    );
  });

  it('accepts every valid value of every contract; refuses every strict prefix of it', () => {
    for (const contract of Object.values(contracts)) {
      const type = avro.Type.forSchema(contract.schema as avro.Schema);
      const check = compileBoundsCheck(type);
      for (let i = 0; i < 50; i++) {
        const bytes = type.toBuffer(type.random());
        expect(() => check(bytes)).not.toThrow();
        for (let cut = 0; cut < bytes.length; cut++) {
          expect(() => check(bytes.subarray(0, cut))).toThrow(AvroBoundsError);
        }
      }
    }
  });

  it('mutated bytes: the check either refuses them or avsc decodes them; only typed errors', () => {
    const rng = new SeededRandom(11);
    const valid = featureType.toBuffer({
      event_id: 'e-1',
      view: 'user_stats',
      entity_id: 'user-1',
      event_time: 1_700_000_000_000,
      features: { clicks: 3, country: 'fr', active: true, missing: null },
    });
    let refused = 0;
    for (let i = 0; i < 20_000; i++) {
      const bytes = Buffer.from(valid);
      for (let m = 1 + rng.int(3); m > 0; m--) bytes[rng.int(bytes.length)] = rng.int(256);
      try {
        checkFeature(bytes);
      } catch (error) {
        expect(error).toBeInstanceOf(AvroBoundsError);
        refused++;
        continue;
      }
      // What the walker accepts, avsc reads without throwing: the walk matches avsc's reading.
      expect(() => featureType.fromBuffer(bytes)).not.toThrow();
    }
    expect(refused).toBeGreaterThan(0);
  });

  it('accepts every valid event and leaves its decoding unchanged; prints the cost of the check', () => {
    const events = Array.from({ length: 2_000 }, (_, i) => ({
      event_id: `e-${i}`,
      view: 'user_stats',
      entity_id: `user-${i % 100}`,
      event_time: 1_700_000_000_000 + i,
      features: Object.fromEntries(
        Array.from({ length: 12 }, (_, f) => [`f${f}`, f % 3 === 0 ? `v${i % 7}` : f % 3 === 1 ? i * 0.5 : null]),
      ),
    }));
    const values = events.map((e) => featureType.toBuffer(e));
    for (const [i, v] of values.entries()) {
      expect(() => checkFeature(v)).not.toThrow();
      expect(featureType.fromBuffer(v)).toEqual(events[i]);
    }
    const rate = (fn: (b: Buffer) => unknown): number => {
      let n = 0;
      const started = performance.now();
      while (performance.now() - started < 100) {
        for (const v of values) fn(v);
        n += values.length;
      }
      return n / ((performance.now() - started) / 1000);
    };
    // Interleaved rounds, medians: these machines are shared.
    const rounds: Record<'without' | 'withCheck' | 'checkOnly', number[]> = {
      without: [],
      withCheck: [],
      checkOnly: [],
    };
    for (let r = 0; r < 5; r++) {
      rounds.without.push(rate((b) => featureType.fromBuffer(b)));
      rounds.withCheck.push(
        rate((b) => {
          checkFeature(b);
          return featureType.fromBuffer(b);
        }),
      );
      rounds.checkOnly.push(rate(checkFeature));
    }
    const median = (xs: number[]): number => Math.round(xs.sort((a, b) => a - b)[2]!);
    const without = median(rounds.without);
    const withCheck = median(rounds.withCheck);
    const checkOnly = median(rounds.checkOnly);
    console.log(
      `decode of a 12-feature event: ${without} events/s without the check, ${withCheck} with it; ` +
        `the check alone ${checkOnly} events/s (${((without / checkOnly) * 100).toFixed(1)}% of a decode's time)`,
    );
  });
});
