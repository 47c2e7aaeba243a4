import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { type FloatBits, floatText, integerText } from '../src/number-text.js';

// Stored numbers and the text pandas' DataFrame.to_csv writes for each, made by
// fixtures/make-number-text.py with real pandas: [bits, big-endian hex, text] or ['int64', digits, text].
type Case = [FloatBits, string, string] | ['int64', string, string];
const cases = JSON.parse(readFileSync(new URL('fixtures/number-text.json', import.meta.url), 'utf8')) as Case[];

function storedFloat(bits: FloatBits, hex: string): number {
  const bytes = Buffer.from(hex, 'hex');
  if (bits === 64) return bytes.readDoubleBE(0);
  if (bits === 32) return bytes.readFloatBE(0);
  // float16: sign, 5 exponent bits, 10 fraction bits.
  const h = bytes.readUInt16BE(0);
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  return exponent === 0 ? sign * fraction * 2 ** -24 : sign * (1 + fraction / 1024) * 2 ** (exponent - 15);
}

describe('floatText and integerText: the text pandas writes to a CSV', () => {
  for (const width of [64, 32, 16, 'int64'] as const) {
    it(`matches pandas on every ${width} case of the fixture`, () => {
      const mine = cases.filter((c) => c[0] === width);
      expect(mine.length).toBeGreaterThan(30);
      const wrong = mine
        .map(([bits, stored, text]) => {
          const got = bits === 'int64' ? integerText(BigInt(stored)) : floatText(storedFloat(bits, stored), bits);
          return { stored, text, got };
        })
        .filter((c) => c.got !== c.text);
      expect(wrong).toEqual([]);
    });
  }

  it('writes NaN as missing, and integers held as numbers as digits (never exponent notation)', () => {
    expect(floatText(Number.NaN)).toBeNull();
    expect(integerText(1e21)).toBe('1000000000000000000000');
    expect(integerText(-7)).toBe('-7');
  });
});
