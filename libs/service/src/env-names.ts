import { ConfigError, type Env, rejectUnknownEnv } from '@driftline/core';
import { commonEnvShape } from './common-config.js';

/**
 * Variables of driftline's own that no service schema declares: the runner's service list, and
 * the trainer bootstrap's overrides (worker/setup-venv.sh), documented as such: one env file
 * serves both, and `run` refused them (exit 78).
 */
const EXTRA_ENV_NAMES = ['DRIFTLINE_SERVICES', 'DRIFTLINE_TRAINER_FLAVOUR', 'DRIFTLINE_TRAINER_VENV'];

/** Prefixes of other tools' variables (the stack tool, the demo, the benchmarks): never checked here. */
export const FOREIGN_ENV_PREFIXES: readonly string[] = ['DRIFTLINE_STACK_', 'DRIFTLINE_DEMO_', 'DRIFTLINE_BENCH_'];

/**
 * Every DRIFTLINE_* name driftline reads: the common and resource variables, each given shape
 * (the services' and, from the CLI, the ClickHouse host's) and the extras above.
 */
export function knownEnvNames(shapes: Iterable<Readonly<Record<string, unknown>>>): Set<string> {
  const names = new Set([...Object.keys(commonEnvShape), ...EXTRA_ENV_NAMES]);
  for (const shape of shapes) for (const name of Object.keys(shape)) names.add(name);
  return names;
}

/**
 * Refuses a DRIFTLINE_* variable no shape declares (a misspelt DRIFTLINE_CLICKHOUSE_ULR fell back
 * to the embedded store), naming the closest known ones. Every command applies this one rule.
 */
export function rejectUnknownDriftlineEnv(
  shapes: Iterable<Readonly<Record<string, unknown>>>,
  env: Env = process.env,
  ignorePrefixes: readonly string[] = [],
): void {
  rejectUnknownEnv('DRIFTLINE_', knownEnvNames(shapes), env, [...FOREIGN_ENV_PREFIXES, ...ignorePrefixes]);
}

/** A listener's port variable: 0 (any free port) never collides. */
const PORT_VARIABLE = /^DRIFTLINE_\w+_PORT$/;

/**
 * Refuses two port variables of one process set to the same port (e.g. DRIFTLINE_FEATURE_API_PORT
 * = DRIFTLINE_HTTP_PORT): the second listener failed as "in use by another process", naming one.
 * `parsed`: the parsed variables of each shape the process reads (port variables are numbers).
 */
export function rejectSharedPorts(parsed: Iterable<Readonly<Record<string, unknown>>>): void {
  const owners = new Map<number, string>();
  for (const values of parsed) {
    for (const [name, port] of Object.entries(values)) {
      if (!PORT_VARIABLE.test(name) || typeof port !== 'number' || port === 0) continue;
      const owner = owners.get(port);
      if (owner !== undefined && owner !== name) {
        throw new ConfigError(
          name,
          `is ${port}, as is ${owner}: two listeners of this process cannot share a port (pick another, or 0 for any free one)`,
        );
      }
      owners.set(port, name);
    }
  }
}
