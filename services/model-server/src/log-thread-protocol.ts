import type { RegistryConfig } from '@driftline/codec';
import type { ErrorCode } from '@driftline/core';
import type { KafkaConfig } from '@driftline/kafka';
import type { PredictionEvent } from '@driftline/schemas';
import type { ForwardedLog } from '@driftline/service/worker';

/** What the prediction log's thread needs to open its own clients (structured-cloneable). */
export interface LogThreadData {
  readonly kafka: KafkaConfig;
  readonly registry: RegistryConfig;
  readonly topic: string;
}

/** Main → thread. */
export type ToLogThread =
  | { readonly type: 'send'; readonly id: number; readonly events: readonly PredictionEvent[] }
  | { readonly type: 'close' };

/** Thread → main. */
export type FromLogThread =
  | { readonly type: 'ready' }
  | { readonly type: 'failed'; readonly message: string }
  | { readonly type: 'sent'; readonly id: number }
  | {
      readonly type: 'error';
      readonly id: number;
      readonly code: ErrorCode;
      readonly message: string;
      readonly retriable: boolean;
    }
  | ForwardedLog
  | { readonly type: 'closed' };
