import { Redis } from 'ioredis';
import type { LabelJoinerConfig } from './config.js';

/**
 * Redis client of the joiner: fail fast instead of queueing while disconnected (the consumer loop
 * backs off and retries the whole batch, which is idempotent), and never resend half-sent commands
 * on its own after a reconnect.
 */
export function createJoinerRedis(config: LabelJoinerConfig['redis'], name = 'driftline-label-joiner'): Redis {
  return new Redis(config.url, {
    ...(config.password === undefined ? {} : { password: config.password }),
    ...(config.tls ? { tls: {} } : {}),
    connectionName: name,
    enableOfflineQueue: true,
    autoResendUnfulfilledCommands: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (times) => Math.min(50 * times, 1_000),
  });
}
