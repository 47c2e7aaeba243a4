import { type Env, rejectUnknownDriftlineVariables } from '@driftline/core';

/**
 * Every command's first step after its arguments parse (never for `--help`): refuses a
 * DRIFTLINE_* variable that no driftline command or service reads (a misspelt
 * DRIFTLINE_CLICKHOUSE_ULR made `model stage` write to a new embedded store and exit 0), by one
 * rule for all commands. From @driftline/core, whose names are written out: @driftline/service
 * loaded kafkajs, pino and prom-client into every command.
 */
export function checkEnvNames(env: Env = process.env): void {
  rejectUnknownDriftlineVariables(env);
}
