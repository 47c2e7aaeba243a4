import { PoisonRecordError } from '@driftline/core';

/**
 * HyperLogLog distinct-count sketch: 2^HLL_PRECISION one-byte registers, merged by taking the
 * register-wise maximum (associative, commutative, idempotent — a replayed value changes nothing).
 * Size is fixed (1,024 bytes, 1,368 base64 characters) whatever the number of values. Error: the
 * relative standard error of the estimate is 1.04/√1024 ≈ 3.25% (≈ 6.5% at two sigma); below
 * 2.5·1024 distinct values linear counting is used, which is much closer (it is exact up to hash
 * collisions for a few dozen values). The 32-bit hash bounds the useful range to ~10^8 distinct
 * values, far above any cardinality bound an expectation can usefully state.
 */
export const HLL_PRECISION = 10;
export const HLL_REGISTERS = 1 << HLL_PRECISION;
/** Relative standard error of the estimate (1.04 / √registers). */
export const HLL_RELATIVE_ERROR = 1.04 / Math.sqrt(HLL_REGISTERS);
const BASE64_LENGTH = Math.ceil(HLL_REGISTERS / 3) * 4;

/** FNV-1a over UTF-16 code units, then murmur3's finaliser for avalanche (FNV alone is weak in its low bits). */
function hash32(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A double's 64 bits, mixed (10× faster than hashing its decimal text); -0 counts as 0. */
function hashNumber(x: number): number {
  f64[0] = x === 0 ? 0 : x;
  return fmix32(Math.imul(u32[0]! ^ fmix32(u32[1]!), 0x9e3779b1) ^ 0x5bd1e995);
}

export class DistinctSketch {
  readonly registers: Uint8Array;

  constructor(registers?: Uint8Array) {
    this.registers = registers ?? new Uint8Array(HLL_REGISTERS);
  }

  add(value: string): void {
    this.addHash(hash32(value));
  }

  addNumber(value: number): void {
    this.addHash(hashNumber(value));
  }

  private addHash(h: number): void {
    const index = h >>> (32 - HLL_PRECISION);
    const rest = (h << HLL_PRECISION) >>> 0;
    // Rank: position of the first 1 bit in the remaining 22 bits (23 when they are all zero).
    const rank = rest === 0 ? 32 - HLL_PRECISION + 1 : Math.clz32(rest) + 1;
    if (rank > this.registers[index]!) this.registers[index] = rank;
  }

  /** Register-wise maximum into a new sketch. */
  merge(other: DistinctSketch): DistinctSketch {
    const out = new Uint8Array(HLL_REGISTERS);
    for (let i = 0; i < HLL_REGISTERS; i++) out[i] = Math.max(this.registers[i]!, other.registers[i]!);
    return new DistinctSketch(out);
  }

  estimate(): number {
    const m = HLL_REGISTERS;
    let sum = 0;
    let zeros = 0;
    for (let i = 0; i < m; i++) {
      const r = this.registers[i]!;
      sum += 2 ** -r;
      if (r === 0) zeros++;
    }
    const alpha = 0.7213 / (1 + 1.079 / m);
    const raw = (alpha * m * m) / sum;
    if (raw <= 2.5 * m && zeros > 0) return m * Math.log(m / zeros);
    return raw;
  }

  toBase64(): string {
    return Buffer.from(this.registers.buffer, this.registers.byteOffset, this.registers.byteLength).toString('base64');
  }

  /** Poison on anything but the exact encoded size with registers in range. */
  static fromBase64(text: unknown, field: string): DistinctSketch {
    if (typeof text !== 'string' || text.length !== BASE64_LENGTH) {
      throw new PoisonRecordError('DECODE_FAILED', `${field} must be ${BASE64_LENGTH} base64 characters`);
    }
    const bytes = Buffer.from(text, 'base64');
    if (bytes.length !== HLL_REGISTERS) throw new PoisonRecordError('DECODE_FAILED', `${field} is not base64`);
    const registers = new Uint8Array(bytes);
    for (const r of registers) {
      if (r > 32 - HLL_PRECISION + 1)
        throw new PoisonRecordError('DECODE_FAILED', `${field} has a register out of range`);
    }
    return new DistinctSketch(registers);
  }
}
