// `make demo`: the whole loop on the local stack, in one process with embedded ClickHouse.
// Progress goes to stdout; the last line is a one-line JSON summary.

import { parseArgs } from 'node:util';
import { stackRelease, stackUp } from '@driftline/stack';
import { storyProblems } from './phases.js';
import { type DemoScenario, runDemo } from './run-demo.js';

const say = (line: string) => process.stdout.write(`${line}\n`);

const SCENARIOS: readonly DemoScenario[] = ['retrain', 'bad-candidate'];

/** `--scenario` (or DRIFTLINE_DEMO_SCENARIO): retrain (default) or bad-candidate. */
function scenarioOf(args: readonly string[]): DemoScenario {
  const { values } = parseArgs({ args: [...args], options: { scenario: { type: 'string' } }, strict: true });
  const value = values.scenario ?? process.env.DRIFTLINE_DEMO_SCENARIO ?? 'retrain';
  if (!(SCENARIOS as readonly string[]).includes(value)) {
    throw new Error(`--scenario: must be one of ${SCENARIOS.join(', ')} (got ${JSON.stringify(value)})`);
  }
  return value as DemoScenario;
}

/**
 * Ctrl-C or SIGTERM: stop the local stack this run started, then exit 130 / 143. Without it the
 * stack's processes (their own process groups) ran on until the next demo or test in the checkout.
 */
function stopOnSignals(): void {
  let stopping = false;
  for (const [signal, code] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    process.once(signal, () => {
      if (stopping) return;
      stopping = true;
      process.stderr.write(`demo: ${signal}: stopping the local stack…\n`);
      void stackRelease({ log: (l) => process.stderr.write(`  ${l}\n`) })
        .catch(() => {})
        .finally(() => process.exit(code));
    });
  }
}

async function main(): Promise<void> {
  const scenario = scenarioOf(process.argv.slice(2));
  stopOnSignals();
  say('driftline demo: starting the local stack (Kafka, Schema Registry, Redis)…');
  const stack = await stackUp({ testRun: true, log: (l) => say(`  ${l}`) });
  say(`stack ready in ${(stack.startupMs / 1000).toFixed(1)} s`);
  try {
    const result = await runDemo({
      endpoints: stack.endpoints,
      say,
      speed: Number(process.env.DRIFTLINE_DEMO_SPEED ?? 30),
      rate: Number(process.env.DRIFTLINE_DEMO_RATE ?? 40),
      keep: process.env.DRIFTLINE_DEMO_KEEP === '1',
      scenario,
    });
    await stackRelease({ log: (l) => say(`  ${l}`) });
    say(JSON.stringify(result.summary));
    const problems = storyProblems(result.summary);
    if (problems.length > 0) throw new Error(`the story did not happen: ${problems.join('; ')}`);
  } catch (error) {
    await stackRelease({ log: (l) => say(`  ${l}`) }).catch(() => {});
    throw error;
  }
}

main().catch((error: unknown) => {
  const debug = process.env.DRIFTLINE_DEBUG === '1';
  process.stderr.write(
    `demo failed: ${error instanceof Error ? (debug ? (error.stack ?? error.message) : error.message) : String(error)}\n`,
  );
  process.exit(1);
});
