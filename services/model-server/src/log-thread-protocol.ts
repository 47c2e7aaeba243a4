import type { RegistryConfig } from '@driftline/codec';
import type { KafkaConfig } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import type { ForwardedLog } from '@driftline/service/worker';
import type { PackedPredictions } from './packed-predictions.js';

/** What the prediction log's thread needs to open its own clients (structured-cloneable). */
export interface LogThreadData {
  readonly kafka: KafkaConfig;
  readonly registry: RegistryConfig;
  readonly topic: string;
  /**
   * How often the thread confirms the schema id it frames records with (default
   * SCHEMA_ID_RECHECK_MS of libs/codec, 60 s); shorter in tests.
   */
  readonly schemaIdRecheckMs?: number;
}

/** The thread's own log: when it sends (the bound on what is held stays on the serving thread). */
export interface LogThreadSendPolicy {
  readonly flushIntervalMs: number;
  readonly maxBatch: number;
}

/** Main → thread. */
export type ToLogThread =
  /** Records of one or more requests, in the order they were answered. */
  | { readonly type: 'append'; readonly events: readonly PredictionEvent[] }
  /** The same, packed (what the serving thread sends whenever the records can be packed). */
  | { readonly type: 'append-packed'; readonly packed: PackedPredictions }
  | { readonly type: 'drain'; readonly id: number; readonly deadlineMs: number }
  | { readonly type: 'close'; readonly deadlineMs: number };

/** Thread → main. */
export type FromLogThread =
  | { readonly type: 'ready' }
  | { readonly type: 'failed'; readonly message: string }
  /** Records Kafka acknowledged since the thread started (cumulative), after every send. */
  | { readonly type: 'acked'; readonly records: number }
  /** Records sent to the dead-letter topic instead (counted in `acked` too: they left the log). */
  | { readonly type: 'rejected'; readonly records: number }
  | { readonly type: 'drained'; readonly id: number; readonly left: number }
  | ForwardedLog
  /** What the close could not drain (`left`), split as unacknowledgedAtClose does. */
  | { readonly type: 'closed'; readonly left: number; readonly lost: number; readonly unknown: number };
