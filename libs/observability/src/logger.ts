import type { Logger } from '@driftline/core';
import { pino } from 'pino';

/** Keys whose values never reach a log line, wherever they appear one or two levels deep. */
const REDACT = ['password', 'sasl.password', 'token', 'secret', '*.password', '*.token', '*.secret', '*.sasl.password'];

/** Structured JSON logs on stdout (or a given destination), with secrets redacted. */
export function createLogger(options: {
  service: string;
  level?: string;
  destination?: NodeJS.WritableStream;
}): Logger {
  const base = { service: options.service };
  const opts = {
    level: options.level ?? process.env.DRIFTLINE_LOG_LEVEL ?? 'info',
    base,
    redact: { paths: REDACT, censor: '[redacted]' },
    timestamp: pino.stdTimeFunctions.isoTime,
    formatters: { level: (label: string) => ({ level: label }) },
  };
  return (options.destination === undefined ? pino(opts) : pino(opts, options.destination)) as unknown as Logger;
}
