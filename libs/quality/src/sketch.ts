import { fmix32, hashText32, PoisonRecordError } from '@driftline/core';

/**
 * Distinct-count sketch, exact for small sets: up to EXACT_DISTINCT_LIMIT distinct values it keeps
 * their 32-bit hashes (an open-addressing table, ≤ 16 KiB) and the estimate is the set's size — exact up to hash
 * collisions (probability ≤ n²/2³³, 5·10⁻⁴ at 2,048; a collision undercounts by one). Past the
 * limit it becomes a HyperLogLog: 2^HLL_PRECISION one-byte registers filled from the same hashes
 * (so switching loses nothing), merged by register-wise maximum. Both forms merge associatively,
 * commutatively and idempotently — a replayed value changes nothing. HLL error: relative standard
 * error 1.04/√1024 ≈ 3.25% (less while many registers are empty), without the classic
 * estimator's +2% bias at its switch from linear counting (2.5·1024): Ertl's estimator, `hllEstimate`.
 * Linear counting alone was not enough at a bound: 300 distinct values estimated above 300 in 89 of
 * 200 windows. The 32-bit hash bounds the useful range to ~10^8 distinct values.
 */
export const HLL_PRECISION = 10;
export const HLL_REGISTERS = 1 << HLL_PRECISION;
/** Relative standard error of the estimate (1.04 / √registers). */
export const HLL_RELATIVE_ERROR = 1.04 / Math.sqrt(HLL_REGISTERS);
const BASE64_LENGTH = Math.ceil(HLL_REGISTERS / 3) * 4;
/** Distinct values counted exactly (their hashes kept) before the sketch turns into a HyperLogLog. */
export const EXACT_DISTINCT_LIMIT = 2048;

const f64 = new Float64Array(1);
const u32 = new Uint32Array(f64.buffer);

/** A double's 64 bits, mixed (10× faster than hashing its decimal text); -0 counts as 0. */
function hashNumber(x: number): number {
  f64[0] = x === 0 ? 0 : x;
  return fmix32(Math.imul(u32[0]! ^ fmix32(u32[1]!), 0x9e3779b1) ^ 0x5bd1e995);
}

/** Slots of a new exact set's table; doubled at load 1/2, so 4,096 slots (16 KiB) at EXACT_DISTINCT_LIMIT. */
const FIRST_TABLE_SLOTS = 16;

/**
 * A set of 32-bit hashes in one open-addressing Uint32Array (linear probing, load ≤ 1/2, doubled
 * as it fills): 4 bytes a slot, ≤ 16 KiB at EXACT_DISTINCT_LIMIT. A `Set<number>` of the same
 * 2,048 hashes took ~56 KiB of heap. Slot value 0 means empty, so the hash 0 is a flag of its own.
 */
class HashSet32 {
  private table = new Uint32Array(FIRST_TABLE_SLOTS);
  private hasZero = false;
  private count = 0;

  get size(): number {
    return this.count;
  }

  has(h: number): boolean {
    if (h === 0) return this.hasZero;
    const mask = this.table.length - 1;
    for (let i = h & mask; ; i = (i + 1) & mask) {
      const slot = this.table[i]!;
      if (slot === h) return true;
      if (slot === 0) return false;
    }
  }

  /** Adds a hash known not to be in the set. */
  insertNew(h: number): void {
    this.count++;
    if (h === 0) {
      this.hasZero = true;
      return;
    }
    if (2 * this.size > this.table.length) this.grow();
    this.place(this.table, h);
  }

  /** The members, in table order (a new array of `size`). */
  values(): Uint32Array {
    const out = new Uint32Array(this.size);
    let n = this.hasZero ? 1 : 0; // out[0] is already the hash 0
    for (const h of this.table) if (h !== 0) out[n++] = h;
    return out;
  }

  private grow(): void {
    const old = this.table;
    this.table = new Uint32Array(old.length * 2);
    for (const h of old) if (h !== 0) this.place(this.table, h);
  }

  private place(table: Uint32Array, h: number): void {
    const mask = table.length - 1;
    let i = h & mask;
    while (table[i] !== 0) i = (i + 1) & mask;
    table[i] = h;
  }
}

/** Wire form of a sketch: `hll` always (what every reader reads), `hashes` too while it is exact. */
export interface DistinctSketchJson {
  readonly hll: string;
  readonly hashes?: string;
}

export class DistinctSketch {
  /** Hashes of the distinct values while there are at most EXACT_DISTINCT_LIMIT; else undefined. */
  private hashes: HashSet32 | undefined;
  private registerBytes: Uint8Array | undefined;

  /** An empty (exact) sketch, or a HyperLogLog with these registers. */
  constructor(registers?: Uint8Array) {
    if (registers === undefined) this.hashes = new HashSet32();
    else this.registerBytes = registers;
  }

  /** True while the estimate is the exact count of distinct hashes. */
  get exact(): boolean {
    return this.hashes !== undefined;
  }

  /** The HyperLogLog registers (filled from the kept hashes while exact). */
  get registers(): Uint8Array {
    if (this.registerBytes !== undefined) return this.registerBytes;
    const out = new Uint8Array(HLL_REGISTERS);
    for (const h of this.hashes!.values()) addToRegisters(out, h);
    return out;
  }

  add(value: string): void {
    this.addHash(hashText32(value));
  }

  addNumber(value: number): void {
    this.addHash(hashNumber(value));
  }

  private addHash(h: number): void {
    const hashes = this.hashes;
    if (hashes !== undefined) {
      if (hashes.has(h)) return;
      if (hashes.size < EXACT_DISTINCT_LIMIT) {
        hashes.insertNew(h);
        return;
      }
      // One past the limit: the same hashes fill the registers, and the table is dropped.
      const registers = this.registers;
      addToRegisters(registers, h);
      this.registerBytes = registers;
      this.hashes = undefined;
      return;
    }
    addToRegisters(this.registerBytes!, h);
  }

  /** Union into a new sketch: exact while the union fits the limit, else register-wise maximum. */
  merge(other: DistinctSketch): DistinctSketch {
    if (this.hashes !== undefined && other.hashes !== undefined) {
      const union = new DistinctSketch();
      for (const h of this.hashes.values()) union.addHash(h);
      for (const h of other.hashes.values()) union.addHash(h);
      return union;
    }
    const a = this.registers;
    const b = other.registers;
    const out = new Uint8Array(HLL_REGISTERS);
    for (let i = 0; i < HLL_REGISTERS; i++) out[i] = Math.max(a[i]!, b[i]!);
    return new DistinctSketch(out);
  }

  /**
   * Distinct values: the count while exact, else Ertl's improved estimator over the registers
   * (see `hllEstimate`).
   */
  estimate(): number {
    if (this.hashes !== undefined) return this.hashes.size;
    return hllEstimate(this.registerBytes!);
  }

  /** The registers, base64 (the HyperLogLog wire form, `hll`). */
  toBase64(): string {
    const r = this.registers;
    return Buffer.from(r.buffer, r.byteOffset, r.byteLength).toString('base64');
  }

  /**
   * Wire form: `hll` always, and while exact `hashes` too (sorted little-endian uint32, base64).
   * The previous release reads only `hll`: during a rolling upgrade its merge stage keeps
   * evaluating cardinality (as a HyperLogLog) instead of silently skipping it.
   */
  toJSON(): DistinctSketchJson {
    const hll = this.toBase64();
    if (this.hashes === undefined) return { hll };
    const sorted = this.hashes.values().sort();
    return { hll, hashes: Buffer.from(sorted.buffer).toString('base64') };
  }

  /**
   * A sketch from its wire form: the exact one from `hashes` when present (poison when `hll` is
   * there too and does not hold the same hashes), else the HyperLogLog from `hll`.
   */
  static fromJSON(hll: unknown, hashes: unknown, field: string): DistinctSketch {
    if (hashes === undefined) return DistinctSketch.fromBase64(hll, `${field}.hll`);
    const exact = DistinctSketch.fromHashes(hashes, `${field}.hashes`);
    if (hll !== undefined) {
      const registers = DistinctSketch.fromBase64(hll, `${field}.hll`).registers;
      const expected = exact.registers;
      for (let i = 0; i < HLL_REGISTERS; i++) {
        if (registers[i] !== expected[i]) {
          throw new PoisonRecordError('DECODE_FAILED', `${field}.hll does not hold the hashes of ${field}.hashes`);
        }
      }
    }
    return exact;
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

  /** The exact form from its wire text; poison unless it is 1 to EXACT_DISTINCT_LIMIT increasing hashes. */
  static fromHashes(text: unknown, field: string): DistinctSketch {
    const most = Math.ceil((EXACT_DISTINCT_LIMIT * 4) / 3) * 4;
    if (typeof text !== 'string' || text.length > most) {
      throw new PoisonRecordError('DECODE_FAILED', `${field} must be base64 of at most ${EXACT_DISTINCT_LIMIT} hashes`);
    }
    const bytes = Buffer.from(text, 'base64');
    if (bytes.length % 4 !== 0 || bytes.toString('base64') !== text) {
      throw new PoisonRecordError('DECODE_FAILED', `${field} is not base64 of 4-byte hashes`);
    }
    const sketch = new DistinctSketch();
    let previous = -1;
    for (let i = 0; i < bytes.length; i += 4) {
      const h = bytes.readUInt32LE(i);
      if (h <= previous) throw new PoisonRecordError('DECODE_FAILED', `${field} hashes must be increasing`);
      previous = h;
      sketch.addHash(h);
    }
    return sketch;
  }
}

function addToRegisters(registers: Uint8Array, h: number): void {
  const index = h >>> (32 - HLL_PRECISION);
  const rest = (h << HLL_PRECISION) >>> 0;
  // Rank: position of the first 1 bit in the remaining 22 bits (23 when they are all zero).
  const rank = rest === 0 ? 32 - HLL_PRECISION + 1 : Math.clz32(rest) + 1;
  if (rank > registers[index]!) registers[index] = rank;
}

/** Largest register value: the rank of a hash whose QUERY_BITS bits below the index are all zero. */
const QUERY_BITS = 32 - HLL_PRECISION;
/** α∞ = 1 / (2 ln 2), the asymptotic HyperLogLog constant. */
const ALPHA_INF = 1 / (2 * Math.LN2);

/**
 * Ertl's improved estimator: O. Ertl, "New cardinality estimation algorithms for HyperLogLog
 * sketches" (2017, arXiv:1702.01284) — the one Redis's PFCOUNT uses. It reads only the
 * histogram of the register values, so registers written by any release estimate alike, and it has
 * no empirical table and no switch between estimators: the classic estimator (linear counting up
 * to 2.5·m, then raw HLL) jumps at the switch and overestimated by 2% at 2,560–2,800 distinct
 * values (m = 1,024), failing 81–84% of windows against a `max_cardinality` equal to the true
 * count instead of ~50%. Measured mean error: within ±0.25% from 100 to 20,000 distinct values,
 * ≈ +0.1% over 6,000 windows up to 50,000 (α∞ in place of α_m); standard deviation 2.2–3.3%
 * (quality.test.ts checks ≤ 0.5% up to 20,000).
 *
 * With C[k] the number of registers holding k (0 ≤ k ≤ q + 1, q = QUERY_BITS):
 *   z = m·τ(1 − C[q+1]/m); for k = q … 1: z = (z + C[k]) / 2; z += m·σ(C[0]/m); n ≈ α∞·m² / z.
 * σ corrects for empty registers (small counts), τ for saturated ones (near the hash's range).
 */
function hllEstimate(registers: Uint8Array): number {
  const m = registers.length;
  const histogram = new Array<number>(QUERY_BITS + 2).fill(0);
  for (const r of registers) histogram[r]!++;
  let z = m * tau((m - histogram[QUERY_BITS + 1]!) / m);
  for (let k = QUERY_BITS; k >= 1; k--) z = 0.5 * (z + histogram[k]!);
  z += m * sigma(histogram[0]! / m);
  return (ALPHA_INF * m * m) / z; // 0 when every register is empty (σ(1) = ∞)
}

/** σ(x) = x + Σ_{k≥1} x^(2^k)·2^(k−1), summed until it stops changing. */
function sigma(x: number): number {
  if (x === 1) return Number.POSITIVE_INFINITY;
  let y = 1;
  let z = x;
  let previous: number;
  do {
    x *= x;
    previous = z;
    z += x * y;
    y += y;
  } while (z !== previous);
  return z;
}

/** τ(x) = (1 − x − Σ_{k≥1} (1 − x^(2^−k))²·2^−k) / 3, summed until it stops changing. */
function tau(x: number): number {
  if (x === 0 || x === 1) return 0;
  let y = 1;
  let z = 1 - x;
  let previous: number;
  do {
    x = Math.sqrt(x);
    previous = z;
    y *= 0.5;
    z -= (1 - x) ** 2 * y;
  } while (z !== previous);
  return z / 3;
}
