// Small non-cryptographic 32-bit hashes shared by the sketches and the canary split: the same
// mixing everywhere, so a value hashes alike wherever it is counted.

/** murmur3's 32-bit finaliser: full avalanche of a 32-bit value. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** FNV-1a over UTF-16 code units from `seed`, then {@link fmix32} (FNV alone is weak in its low bits). */
export function hashText32(text: string, seed = 0x811c9dc5): number {
  let h = seed;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return fmix32(h);
}
