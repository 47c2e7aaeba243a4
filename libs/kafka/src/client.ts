import type { Logger } from '@driftline/core';
import { Kafka, logLevel } from 'kafkajs';
import type { KafkaConfig } from './config.js';

/** Routes kafkajs' own logs into our structured logger (kafkajs logs error-level noise during rebalances). */
function logCreatorFor(logger: Logger) {
  const log = logger.child({ component: 'kafkajs' });
  return () =>
    ({ level, log: entry }: { level: logLevel; log: { message: string } & Record<string, unknown> }) => {
      const { message, timestamp: _t, logger: _l, ...rest } = entry;
      if (level === logLevel.ERROR) log.warn(rest, message);
      else if (level === logLevel.WARN) log.warn(rest, message);
      else if (level === logLevel.INFO) log.debug(rest, message);
      else log.debug(rest, message);
    };
}

export function createKafka(config: KafkaConfig, logger: Logger): Kafka {
  return new Kafka({
    clientId: config.clientId,
    brokers: [...config.brokers],
    ssl: config.ssl,
    ...(config.sasl === undefined ? {} : { sasl: { ...config.sasl } as never }),
    logLevel: logLevel.WARN,
    logCreator: logCreatorFor(logger),
    retry: { initialRetryTime: 100, retries: 8 },
  });
}

export type { Kafka } from 'kafkajs';
