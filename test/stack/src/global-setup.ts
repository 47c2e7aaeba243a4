import type { TestProject } from 'vitest/node';
import { endpointsFromEnv, type StackEndpoints, stackRelease, stackUp } from './index.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Endpoints of the running stack; read them in tests with `inject('stack')`. */
    stack: StackEndpoints;
  }
}

const log = (line: string) => process.stderr.write(`[stack] ${line}\n`);

/**
 * Vitest global setup of the `integration` project:
 * - DRIFTLINE_KAFKA_BROKERS, DRIFTLINE_SCHEMA_REGISTRY_URL and DRIFTLINE_REDIS_URL all set: use that stack;
 * - a stack already running (state.json): reuse it; one started with `stack up` is left running;
 * - otherwise start one and stop it at teardown (unless DRIFTLINE_STACK_KEEP=1). Each test run holds a
 *   lease in state.json, so when several runs share a stack the last one to finish stops it.
 */
export default async function setup(project: TestProject): Promise<(() => Promise<void>) | undefined> {
  const external = endpointsFromEnv();
  if (external !== undefined) {
    log(`using the external stack from DRIFTLINE_* variables (kafka ${external.kafkaBrokers.join(',')})`);
    project.provide('stack', external);
    return undefined;
  }
  const result = await stackUp({ log, testRun: true });
  project.provide('stack', result.endpoints);
  const keep = /^(1|true|yes)$/i.test(process.env.DRIFTLINE_STACK_KEEP ?? '');
  log(
    result.startedNow
      ? `stack started in ${(result.startupMs / 1000).toFixed(1)} s${keep ? ' (DRIFTLINE_STACK_KEEP: left running)' : ''}`
      : 'reusing the running stack',
  );
  return async () => {
    const { stopped } = await stackRelease({ log, keep });
    if (stopped > 0) log(`stopped ${stopped} stack processes`);
  };
}
