import { CONFIG_ERROR_EXIT_CODE, type ConfigError, configErrorLine, type Logger } from '@driftline/core';

/** What a running process does with a configuration error found after start-up (see `ServiceContext.fatal`). */
export type FatalHandler = (error: ConfigError) => void;

/**
 * The runner's default `onFatal`: one error line naming the field, then exit 78 at once. No
 * graceful stop: whatever the services did since start went by a wrong configuration (a database
 * the server refused, so ioredis wrote to database 0), and a graceful stop would commit the
 * offsets of that work; exiting leaves it uncommitted, to be redone once the config is fixed.
 */
export function exitOnConfigError(logger: Logger): FatalHandler {
  return (error) => {
    logger.error({ field: error.field }, configErrorLine(error));
    process.exit(CONFIG_ERROR_EXIT_CODE);
  };
}
