import { ConfigError, hashText32 } from '@driftline/core';

/**
 * Membership sketch of a categorical reference's tail (the categories beyond the profile's cap): a
 * Bloom filter, so a live category can be told apart as "in the reference's tail" or "never in the
 * reference". Without it both shared one "other" bin and a window whose rare values were all new
 * looked like the reference. A category of the tail is always found; a new one is taken for a tail
 * category with probability `falsePositiveRate` = (1 − e^(−k·n/m))^k (n tail categories, m bits,
 * k hashes), which then counts it as reference mass: the sketch can hide new categories, never
 * invent them.
 */
export interface TailSketch {
  /** Bits, base64 (m = 8 · bytes, a power of two). */
  readonly bits: string;
  readonly hashes: number;
  /** Distinct tail categories it holds. */
  readonly size: number;
  readonly falsePositiveRate: number;
}

/** At most 2^18 bits (32 KB, 44 KB as base64): a 1 % false-positive rate up to ~27,000 tail categories. */
export const TAIL_SKETCH_MAX_BITS = 1 << 18;
const MIN_BITS = 64;
/** ~9.6 bits per category give a 1 % false-positive rate at the best k. */
const BITS_PER_CATEGORY = 10;

function falsePositiveRate(size: number, bits: number, hashes: number): number {
  return (1 - Math.exp((-hashes * size) / bits)) ** hashes;
}

/** Bit positions of a category: double hashing, h1 + i·h2 mod m (h2 odd, m a power of two). */
function forEachBit(value: string, hashes: number, mask: number, visit: (bit: number) => boolean): boolean {
  const h1 = hashText32(value, 0x811c9dc5);
  const h2 = hashText32(value, 0x9747b28c) | 1;
  for (let i = 0; i < hashes; i++) if (!visit((h1 + Math.imul(i, h2)) & mask)) return false;
  return true;
}

export function buildTailSketch(categories: readonly string[]): TailSketch {
  let bits = MIN_BITS;
  while (bits < categories.length * BITS_PER_CATEGORY && bits < TAIL_SKETCH_MAX_BITS) bits *= 2;
  const hashes = Math.max(1, Math.min(16, Math.round((bits / Math.max(1, categories.length)) * Math.LN2)));
  const bytes = new Uint8Array(bits / 8);
  const mask = bits - 1;
  for (const c of categories) {
    forEachBit(c, hashes, mask, (bit) => {
      bytes[bit >>> 3]! |= 1 << (bit & 7);
      return true;
    });
  }
  return {
    bits: Buffer.from(bytes).toString('base64'),
    hashes,
    size: categories.length,
    falsePositiveRate: falsePositiveRate(categories.length, bits, hashes),
  };
}

const decoded = new WeakMap<TailSketch, Uint8Array>();

/** True when `value` may be a tail category (always for one); false when it surely is not. */
export function tailSketchHas(sketch: TailSketch, value: string): boolean {
  let bytes = decoded.get(sketch);
  if (bytes === undefined) {
    bytes = new Uint8Array(Buffer.from(sketch.bits, 'base64'));
    decoded.set(sketch, bytes);
  }
  const b = bytes;
  return forEachBit(value, sketch.hashes, b.length * 8 - 1, (bit) => (b[bit >>> 3]! & (1 << (bit & 7))) !== 0);
}

/** Validates a stored sketch; ConfigError naming the field. */
export function parseTailSketch(value: unknown, path: string): TailSketch {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ConfigError(path, 'expected an object');
  }
  const o = value as Record<string, unknown>;
  const { bits, hashes, size } = o;
  if (typeof bits !== 'string' || bits.length > Math.ceil(TAIL_SKETCH_MAX_BITS / 8 / 3) * 4) {
    throw new ConfigError(`${path}.bits`, `expected base64 of at most ${TAIL_SKETCH_MAX_BITS / 8} bytes`);
  }
  const bytes = Buffer.from(bits, 'base64');
  const m = bytes.length * 8;
  if (m < MIN_BITS || (m & (m - 1)) !== 0 || bytes.toString('base64') !== bits) {
    throw new ConfigError(`${path}.bits`, 'expected base64 of a power-of-two number of bits, at least 64');
  }
  if (typeof hashes !== 'number' || !Number.isInteger(hashes) || hashes < 1 || hashes > 16) {
    throw new ConfigError(`${path}.hashes`, 'expected an integer from 1 to 16');
  }
  if (typeof size !== 'number' || !Number.isInteger(size) || size < 1) {
    throw new ConfigError(`${path}.size`, 'expected a positive integer');
  }
  return { bits, hashes, size, falsePositiveRate: falsePositiveRate(size, m, hashes) };
}
