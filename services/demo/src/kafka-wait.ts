// The traffic loop's calls that wait on Kafka (the SDK's publish calls, the model-server's answer,
// a flush): with Kafka gone under the demo they waited 60 s each (the SDK's bufferWaitMs), one after
// the other, without a word for minutes.

export interface KafkaWaitOptions {
  /** Where Kafka is, for the progress line. */
  readonly brokers: string;
  readonly say: (line: string) => void;
  /** A progress line every `everyMs` while a call waits (default 10 s). */
  readonly everyMs?: number;
  /**
   * How long the run may stay stuck on Kafka in all, across the calls of one stall (default 60 s):
   * a call that ends within `everyMs` ends the stall, a slow one that ends does not.
   */
  readonly limitMs?: number;
}

/** The one line of a run stuck on Kafka for `limitMs` (when the SDK did not fail first with its own). */
export class KafkaStalled extends Error {
  readonly code = 'KAFKA_STALLED';
  constructor(brokers: string, what: string, limitMs: number) {
    super(
      `Kafka at ${brokers} took nothing for ${Math.round(limitMs / 1000)} s (${what} still waiting); is it running?`,
    );
    this.name = 'KafkaStalled';
  }
}

export type KafkaWait = <T>(what: string, call: Promise<T>) => Promise<T>;

/**
 * Wraps calls that need Kafka: while one waits, "waiting for Kafka at … (n s)" every `everyMs`;
 * once the run has been stuck for `limitMs` in all, the call rejects with KafkaStalled. A call's
 * own failure (the SDK's precise SINK_UNAVAILABLE line) passes through unchanged.
 */
export function kafkaWaiter(options: KafkaWaitOptions): KafkaWait {
  const everyMs = options.everyMs ?? 10_000;
  const limitMs = options.limitMs ?? 60_000;
  let stalledSince: number | undefined;
  return <T>(what: string, call: Promise<T>): Promise<T> => {
    const began = Date.now();
    return new Promise<T>((resolve, reject) => {
      // The stall began with an earlier slow call, or begins with this one.
      const deadline = setTimeout(
        () => {
          settle();
          stalledSince ??= began;
          reject(new KafkaStalled(options.brokers, what, limitMs));
        },
        Math.max(0, (stalledSince ?? began) + limitMs - began),
      );
      const progress = setInterval(() => {
        stalledSince ??= began;
        options.say(`waiting for Kafka at ${options.brokers} (${Math.round((Date.now() - stalledSince) / 1000)} s)`);
      }, everyMs);
      function settle() {
        clearTimeout(deadline);
        clearInterval(progress);
        if (Date.now() - began < everyMs) stalledSince = undefined;
      }
      call.then(
        (value) => {
          settle();
          resolve(value);
        },
        (error: unknown) => {
          settle();
          reject(error);
        },
      );
    });
  };
}
