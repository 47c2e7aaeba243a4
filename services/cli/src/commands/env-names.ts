import type { Env } from '@driftline/core';
import { FOREIGN_ENV_PREFIXES, knownEnvNames, rejectUnknownDriftlineEnv } from '@driftline/service';

/**
 * Every command's first step: refuses a DRIFTLINE_* variable that no driftline command or service
 * reads (a misspelt DRIFTLINE_CLICKHOUSE_ULR made `model stage` write to a new embedded store and
 * exit 0), by one rule for all commands. The services' and the ClickHouse host's variables are
 * loaded only when a name is not among the common ones: the offline commands need none of them.
 */
export async function checkEnvNames(env: Env = process.env): Promise<void> {
  const common = knownEnvNames([]);
  const unsure = Object.keys(env).some(
    (name) =>
      name.startsWith('DRIFTLINE_') && !common.has(name) && !FOREIGN_ENV_PREFIXES.some((p) => name.startsWith(p)),
  );
  if (!unsure) return;
  const [{ allServices }, { clickhouseHostEnvShape }] = await Promise.all([
    import('../services.js'),
    import('@driftline/warehouse/http-host'),
  ]);
  rejectUnknownDriftlineEnv([...allServices.map((s) => s.envShape), clickhouseHostEnvShape], env);
}
