import { type ICustomPartitioner, Partitioners } from 'kafkajs';

const SEED = 0x9747b28c;
const M = 0x5bd1e995;

/** Kafka's murmur2 over the bytes `at(0..length-1)`, as the Java client's `Utils.murmur2` (an int32). */
function murmur2Bytes(length: number, at: (i: number) => number): number {
  let h = (SEED ^ length) | 0;
  const length4 = length & ~3;
  for (let i = 0; i < length4; i += 4) {
    let k = at(i) | (at(i + 1) << 8) | (at(i + 2) << 16) | (at(i + 3) << 24);
    k = Math.imul(k, M);
    k ^= k >>> 24;
    k = Math.imul(k, M);
    h = Math.imul(h, M) ^ k;
  }
  // The last 1 to 3 bytes (Java's fall-through switch).
  const rest = length & 3;
  if (rest === 3) h ^= at(length4 + 2) << 16;
  if (rest >= 2) h ^= at(length4 + 1) << 8;
  if (rest >= 1) h = Math.imul(h ^ at(length4), M);
  h ^= h >>> 13;
  h = Math.imul(h, M);
  h ^= h >>> 15;
  return h;
}

/** True when every UTF-16 unit of `s` is ASCII: its UTF-8 bytes are then its char codes. */
function isAscii(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0x7f) return false;
  return true;
}

/**
 * Kafka's murmur2 of a key as the Java client and kafkajs compute it: over the key's UTF-8 bytes
 * (a string) or its bytes (a Buffer). ASCII strings are hashed from their char codes, without the
 * Buffer kafkajs allocates per message; anything else through `Buffer.from`, as kafkajs does.
 */
export function murmur2(key: string | Buffer): number {
  if (typeof key === 'string' && isAscii(key)) return murmur2Bytes(key.length, (i) => key.charCodeAt(i));
  const bytes = typeof key === 'string' ? Buffer.from(key) : key;
  return murmur2Bytes(bytes.length, (i) => bytes[i]!);
}

/**
 * The partition a record keyed `key` goes to in a topic of `partitions` partitions, as every
 * producer of ours (and the Java client) chooses it: murmur2 of the key modulo the count. Readers
 * that need to know where a key's records live (the model-controller's ownership of a model by its
 * models.v1 partition) use this, never a hash of their own.
 */
export function partitionOf(key: string | Buffer, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

/**
 * The producers' partitioner: kafkajs's `DefaultPartitioner` (the Java client's choice — explicit
 * partition, else murmur2 of the key modulo the partition count, else round robin over available
 * partitions), with the key hash in 32-bit integer arithmetic. kafkajs hashes with a 64-bit `Long`
 * emulation and a Buffer per message, which was about a sixth of the prediction log's CPU; every
 * key lands on the partition kafkajs and the Java client choose (co-partitioning of predictions and
 * labels depends on it; the unit test checks it against kafkajs's own partitioner).
 */
export const keyHashPartitioner: ICustomPartitioner = () => {
  const fallback = Partitioners.DefaultPartitioner();
  return (args) => {
    const { message, partitionMetadata } = args;
    if (message.partition != null || message.key == null) return fallback(args);
    return partitionOf(message.key, partitionMetadata.length);
  };
};
