import { getHeapStatistics } from 'node:v8';
import { fmix32 } from './hash.js';
import type { Logger } from './logger.js';

/** A second, independent seed: two 32-bit hashes of an id make one 53-bit key. */
const SECOND_SEED = 0x9e3779b9;

/**
 * 53 bits of two 32-bit hashes of `text` (`hashText32` from its default seed and from a second
 * one, in one pass): an exact integer in a double.
 */
export function hashText53(text: string): number {
  let a = 0x811c9dc5;
  let b = SECOND_SEED;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x01000193);
  }
  return fmix32(a) * 2 ** 21 + (fmix32(b) >>> 11);
}

/** Slots of a new table and ring: memory grows with the ids remembered, not with `capacity`. */
const INITIAL_SLOTS = 1_024;

/** Most bytes one remembered id takes: a table slot pair at load 1/2 doubled just after growth, and its ring slot. */
export const RECENT_IDS_MAX_BYTES_PER_ID = 40;

/**
 * A warning when `tables` memories of `capacity` ids each (`setting`, the variable that sets it)
 * can grow past half of `heapLimit` (V8's `heap_size_limit`): memory grows with traffic, so a capacity that fits at start-up can run the
 * process out of heap hours later, on the partition that took it over the edge. Undefined when it
 * fits or the memory is off (`capacity` 0).
 */
export function recentIdsHeapWarning(
  setting: string,
  tables: number,
  capacity: number,
  heapLimit: number,
): string | undefined {
  const most = tables * capacity * RECENT_IDS_MAX_BYTES_PER_ID;
  if (capacity <= 0 || most <= heapLimit / 2) return undefined;
  const mb = (bytes: number) => `${Math.round(bytes / 1_048_576)} MB`;
  return (
    `the prediction ids remembered for re-sends can take up to ${mb(most)} ` +
    `(${tables} partitions × ${capacity} ids × ${RECENT_IDS_MAX_BYTES_PER_ID} B), over half the heap limit of ${mb(heapLimit)}: ` +
    `lower ${setting}, run more instances, or raise node's --max-old-space-size`
  );
}

/**
 * A watch over the memories of one process's partitions (`capacity` ids each, set by `setting`):
 * called with the number held whenever it grows, it warns once (recentIdsHeapWarning; `heapLimit`:
 * the process's by default).
 */
export function recentIdsHeapWatch(
  setting: string,
  capacity: number,
  logger: Logger,
  heapLimit: number = getHeapStatistics().heap_size_limit,
): (tables: number) => void {
  let warned = false;
  return (tables) => {
    if (warned) return;
    const warning = recentIdsHeapWarning(setting, tables, capacity, heapLimit);
    if (warning === undefined) return;
    warned = true;
    logger.warn({ partitions: tables, recentIds: capacity }, warning);
  };
}

/**
 * The last `capacity` distinct ids seen, to recognise an event sent again (an at-least-once
 * producer's retry of a whole call) without keeping every id: each is kept as a 53-bit hash, so a
 * new id is taken for a repeat only on a hash collision — about `capacity` / 2^53 per id, 1.1e-11
 * at 100,000. Oldest first out; a repeat does not renew its place, so an id sent over and over is
 * forgotten `capacity` ids after its first time.
 *
 * Typed arrays, not a Set: an open-addressing table (linear probing, load ≤ 1/2, deletion by
 * backward shift) and a ring of arrival order, 24–40 B per id, no garbage. A `Set<number>` of the
 * same keys cost 27% of the drift monitor's stage-one throughput (53-bit keys are heap numbers);
 * this costs under a tenth of that.
 */
export class RecentIds {
  /** key + 1 per slot (0: empty). */
  private table = new Float64Array(INITIAL_SLOTS);
  private mask = INITIAL_SLOTS - 1;
  /** key + 1 in arrival order; once full, `next` is the oldest. */
  private ring: Float64Array;
  private count = 0;
  private next = 0;

  constructor(readonly capacity: number) {
    if (!Number.isSafeInteger(capacity) || capacity < 1 || capacity > 2 ** 30) {
      throw new RangeError(`RecentIds capacity must be a whole number from 1 to 2^30, got ${capacity}`);
    }
    this.ring = new Float64Array(Math.min(capacity, INITIAL_SLOTS));
  }

  /** Whether `id` is among the remembered ids; when not, it is remembered from now on. */
  repeat(id: string): boolean {
    const stored = hashText53(id) + 1;
    if (this.find(stored) >= 0) return true;
    this.keep(stored);
    return false;
  }

  /** Whether `id` is among the remembered ids (remembering nothing). */
  has(id: string): boolean {
    return this.find(hashText53(id) + 1) >= 0;
  }

  /** Remembers `id` (no change when it is remembered already: its place is not renewed). */
  add(id: string): void {
    const stored = hashText53(id) + 1;
    if (this.find(stored) < 0) this.keep(stored);
  }

  /** How many ids are remembered (at most `capacity`). */
  get size(): number {
    return this.count;
  }

  private home(stored: number): number {
    // ToUint32 of an integer below 2^54 is exact: its low 32 bits, well mixed by fmix32.
    return (stored >>> 0) & this.mask;
  }

  private find(stored: number): number {
    for (let i = this.home(stored); ; i = (i + 1) & this.mask) {
      const v = this.table[i]!;
      if (v === stored) return i;
      if (v === 0) return -1;
    }
  }

  private insert(stored: number): void {
    let i = this.home(stored);
    while (this.table[i] !== 0) i = (i + 1) & this.mask;
    this.table[i] = stored;
  }

  private keep(stored: number): void {
    if (this.count === this.capacity) {
      this.remove(this.ring[this.next]!);
      this.ring[this.next] = stored;
      this.next = (this.next + 1) % this.capacity;
      this.insert(stored);
      return;
    }
    if (2 * (this.count + 1) > this.table.length) this.grow();
    if (this.count === this.ring.length) {
      const ring = new Float64Array(Math.min(this.capacity, 2 * this.ring.length));
      ring.set(this.ring);
      this.ring = ring;
    }
    this.ring[this.count++] = stored;
    this.insert(stored);
  }

  private remove(stored: number): void {
    let hole = this.find(stored);
    // Backward shift: move up each later entry of the run whose home is not after the hole.
    for (let j = (hole + 1) & this.mask; ; j = (j + 1) & this.mask) {
      const v = this.table[j]!;
      if (v === 0) break;
      if (((j - this.home(v)) & this.mask) >= ((j - hole) & this.mask)) {
        this.table[hole] = v;
        hole = j;
      }
    }
    this.table[hole] = 0;
  }

  private grow(): void {
    this.table = new Float64Array(2 * this.table.length);
    this.mask = this.table.length - 1;
    // Only while filling (count < capacity): the ring's first `count` slots are every id.
    for (let i = 0; i < this.count; i++) this.insert(this.ring[i]!);
  }
}
