import { fmix32 } from '@driftline/core';

const encoder = new TextEncoder();
let scratch = new Uint8Array(256);

/** MurmurHash3 x86_32 of `bytes` (Appleby's reference; reproducible in any language, e.g. Python's mmh3). */
export function murmur3(bytes: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  let h = seed >>> 0;
  const n = bytes.length;
  const whole = n & ~3;
  for (let i = 0; i < whole; i += 4) {
    let k = bytes[i]! | (bytes[i + 1]! << 8) | (bytes[i + 2]! << 16) | (bytes[i + 3]! << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const rest = n & 3;
  if (rest > 0) {
    let k = 0;
    if (rest === 3) k ^= bytes[whole + 2]! << 16;
    if (rest >= 2) k ^= bytes[whole + 1]! << 8;
    k ^= bytes[whole]!;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  return fmix32(h ^ n);
}

/**
 * The entity's sticky position in [0, 1): MurmurHash3 x86_32 (seed 0) of the UTF-8 bytes of
 * `salt + "\0" + entityId`, divided by 2^32. Deterministic across processes and restarts; the salt
 * (e.g. `fraud:v7`, model and canary version) decides WHICH entities a canary gets, so successive
 * canaries do not always land on the same users.
 */
export function canaryPosition(salt: string, entityId: string): number {
  const text = `${salt}\u0000${entityId}`;
  // UTF-8 is at most 3 bytes per UTF-16 unit: encode into a reused buffer (a fresh array per call
  // was most of the cost of sampling a prediction), growing it for the rare long key.
  if (scratch.length < text.length * 3) scratch = new Uint8Array(text.length * 3);
  const { written } = encoder.encodeInto(text, scratch);
  return murmur3(scratch.subarray(0, written)) / 0x1_0000_0000;
}

/**
 * Whether the entity is served by the canary at `share` ∈ [0, 1]: position < share. Raising the
 * share keeps every entity already in the canary there (monotone), so ramping up is sticky too.
 */
export function inCanary(salt: string, entityId: string, share: number): boolean {
  if (!(share >= 0 && share <= 1)) throw new RangeError(`canary share must be in [0, 1], got ${share}`);
  return canaryPosition(salt, entityId) < share;
}
