// What a process's consumers' fetches take of the JS heap once decoded, against V8's heap limit. A
// backlog (after an outage, a restart) makes every fetch full; one that does not fit the heap killed
// the process with V8's "heap out of memory" and nothing naming why, and the restarted process read
// the same records and died again: a crash loop (found by a review).
import { ConfigError } from '@driftline/core';

const MiB = 1_048_576;
/**
 * kafkajs' bound on one fetch response (its `maxBytes` default; libs/kafka leaves it), per broker
 * fetched from. Soft, as Kafka's are: the first record batch of a fetch comes whole, however large.
 */
export const FETCH_MAX_BYTES = 10 * MiB;
/** kafkajs' and libs/kafka's default `maxBytesPerPartition`. */
const DEFAULT_PARTITION_FETCH_BYTES = MiB;
/**
 * Heap a fetched byte takes while its batch is held: kafkajs' message objects and the codec's
 * decoded values. Measured on 8 MiB of record batches of each kind, built and decoded with kafkajs'
 * own protocol code and the registry codec, heap after a full GC: 4.0–5.3 uncompressed (predictions
 * with 5 and with 30 features, feature events, labels: 117 to 743 bytes a record), rounded up;
 * gzip'd batches take 9.7–15.1 per fetched byte, so for them this is a lower bound. In a running
 * consumer (predictions, 12 partitions, full fetches) the process died at heap limits of 96 and
 * 112 MiB and ran at 144 MiB (74 MiB used at most): the warning below starts at 120 MiB.
 */
export const HEAP_BYTES_PER_FETCHED_BYTE = 6;

export interface ConsumerFetch {
  readonly groupId: string;
  /** The consumer's `maxBytesPerPartition` (undefined: the default, 1 MiB). */
  readonly maxBytesPerPartition?: number | undefined;
  /** The variable that set `maxBytesPerPartition`, named when it is what does not fit. */
  readonly fetchBytesField?: string | undefined;
}

/**
 * Bytes one fetch of a consumer may hold, per broker: FETCH_MAX_BYTES, or a partition's bound when
 * larger (a record batch up to it comes whole, on a topic whose `max.message.bytes` allows it).
 */
export function fetchBytes(consumer: ConsumerFetch): number {
  return Math.max(FETCH_MAX_BYTES, consumer.maxBytesPerPartition ?? DEFAULT_PARTITION_FETCH_BYTES);
}

export interface FetchHeap {
  /** More than half the heap: a warning (the process needs heap for more than its batches). */
  readonly tight: boolean;
  readonly message: string;
  readonly fields: Readonly<Record<string, number | string>>;
}

/**
 * The heap the consumer `starting` and those the process started `before` take with one full fetch
 * each from one broker, decoded, against `heapLimit` (V8's `heap_size_limit`). Throws a ConfigError
 * only when the starting consumer's own fetch cannot fit the heap (every backlog then crashes the
 * process), naming its variable when its bound is above FETCH_MAX_BYTES, else NODE_OPTIONS. The
 * consumers together taking more than half the limit is a warning: they rarely hold full fetches
 * at once, and refusing on the sum stopped deployments that ran (every service in one process at
 * --max-old-space-size=512; an alert router with 18 receivers at 1024; found by a review). A
 * lower bound with several brokers: kafkajs fetches from each broker leading a partition at once.
 */
export function checkFetchHeap(
  starting: ConsumerFetch,
  before: readonly ConsumerFetch[],
  heapLimit: number,
): FetchHeap {
  const consumers = [...before, starting];
  const mib = (bytes: number) => Math.ceil(bytes / MiB);
  const decoded = (c: ConsumerFetch) => fetchBytes(c) * HEAP_BYTES_PER_FETCHED_BYTE;
  const total = consumers.reduce((sum, c) => sum + decoded(c), 0);
  const fields = {
    group: starting.groupId,
    fetchMiB: mib(fetchBytes(starting)),
    decodedMiB: mib(decoded(starting)),
    consumersDecodedMiB: mib(total),
    heapLimitMiB: mib(heapLimit),
  };
  if (decoded(starting) > heapLimit) {
    const what =
      `the JS heap limit (${mib(heapLimit)} MiB) is below what consumer ${starting.groupId} holds with one full fetch, ` +
      `decoded: ~${mib(decoded(starting))} MiB (${mib(fetchBytes(starting))} MiB fetched per broker, ×${HEAP_BYTES_PER_FETCHED_BYTE} decoded), ` +
      'so a backlog would run it out of heap at every restart';
    if (starting.fetchBytesField !== undefined && fetchBytes(starting) > FETCH_MAX_BYTES) {
      throw new ConfigError(
        starting.fetchBytesField,
        `${what}: lower it (${starting.maxBytesPerPartition} bytes), or raise --max-old-space-size`,
      );
    }
    throw new ConfigError(
      'NODE_OPTIONS',
      `${what}: raise it with --max-old-space-size=${2 * mib(decoded(starting))} or more`,
    );
  }
  const tight = 2 * total > heapLimit;
  return {
    tight,
    message: tight
      ? `consumer fetch: one full fetch of every consumer of this process, decoded (~${mib(total)} MiB, per broker fetched from), takes more than half the JS heap limit; a backlog on several at once may run the process out of heap (raise --max-old-space-size to ${2 * mib(total)} or more, or run fewer services per process)`
      : 'consumer fetch: bound and JS heap limit',
    fields,
  };
}
