import { writeSync } from 'node:fs';
import { CONFIG_ERROR_EXIT_CODE, type ConfigError, configErrorLine, errorLine } from '@driftline/core';

/** What a running process does with a configuration error found after start-up (see `ServiceContext.fatal`). */
export type FatalHandler = (error: ConfigError) => void;

/**
 * The runner's default `onFatal`: one line naming the field on stderr, the CLI's line for a
 * configuration error found at start-up, then exit 78 at once. Written synchronously and not
 * through the logger: pino's asynchronous write was lost by the exit when stdout's pipe was full,
 * and DRIFTLINE_LOG_LEVEL=fatal or silent dropped it (found by a review). No graceful stop:
 * whatever the services did since start went by a wrong configuration (a database the server
 * refused, so ioredis wrote to database 0), and a graceful stop would commit the offsets of that
 * work; exiting leaves it uncommitted, to be redone once the config is fixed.
 */
export function exitOnConfigError(): FatalHandler {
  return (error) => {
    writeSync(2, errorLine(configErrorLine(error)));
    process.exit(CONFIG_ERROR_EXIT_CODE);
  };
}
