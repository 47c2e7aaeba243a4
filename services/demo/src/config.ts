import { ConfigError, type Env, envField, parseEnv, rejectUnknownEnv } from '@driftline/core';
import type { DemoScenario } from './run-demo.js';

const SCENARIOS: readonly DemoScenario[] = ['retrain', 'bad-candidate'];

const isScenario = (value: string): value is DemoScenario => (SCENARIOS as readonly string[]).includes(value);

/**
 * The demo's variables, with bounds: a rate of 0 or a NaN speed ran for minutes before failing
 * ("the story did not happen"), a speed of 0 waited forever. 1000 predictions per event-time second
 * and 600× the wall clock are far beyond what one process on two cores keeps up with.
 */
const demoEnvShape = {
  DRIFTLINE_DEMO_RATE: envField.int(1, 1_000).default(40),
  DRIFTLINE_DEMO_SPEED: envField.number(0.1, 600).default(30),
  DRIFTLINE_DEMO_KEEP: envField.bool().default(false),
  /** A failed demo prints its stack (read by main.ts; declared so it is a known name). */
  DRIFTLINE_DEMO_DEBUG: envField.bool().default(false),
  // `make demo SCENARIO=…` sets it.
  DRIFTLINE_DEMO_SCENARIO: envField
    .string()
    .refine(isScenario, `must be one of ${SCENARIOS.join(', ')} (make demo SCENARIO=…)`)
    .default('retrain'),
};

export interface DemoConfig {
  readonly rate: number;
  readonly speed: number;
  readonly keep: boolean;
  readonly scenario: DemoScenario;
}

/**
 * Parses the demo's variables and its one option, `--scenario` (which wins over
 * DRIFTLINE_DEMO_SCENARIO). Throws a ConfigError naming what the user set: the variable, or
 * `--scenario`; an unknown DRIFTLINE_DEMO_* variable (a typo) is refused too.
 */
export function parseDemoConfig(env: Env, scenarioOption: string | undefined): DemoConfig {
  rejectUnknownEnv('DRIFTLINE_DEMO_', Object.keys(demoEnvShape), env);
  const parsed = parseEnv(demoEnvShape, env);
  const scenario = scenarioOption ?? parsed.DRIFTLINE_DEMO_SCENARIO;
  if (!isScenario(scenario)) {
    const named = scenarioOption === undefined ? 'DRIFTLINE_DEMO_SCENARIO' : '--scenario';
    throw new ConfigError(named, `must be one of ${SCENARIOS.join(', ')} (got ${JSON.stringify(scenario)})`);
  }
  return {
    rate: parsed.DRIFTLINE_DEMO_RATE,
    speed: parsed.DRIFTLINE_DEMO_SPEED,
    keep: parsed.DRIFTLINE_DEMO_KEEP,
    scenario,
  };
}
