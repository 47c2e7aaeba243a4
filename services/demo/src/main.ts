// `make demo`: the whole loop on the local stack, in one process with embedded ClickHouse.
// Progress goes to stdout; the last line is a one-line JSON summary.

import { parseArgs } from 'node:util';
import { ConfigError } from '@driftline/core';
import { abortOnSignals, Interrupted, StackConfigError, stackRelease, stackUp } from '@driftline/stack';
import { parseDemoConfig } from './config.js';
import { storyProblems } from './phases.js';
import { runDemo } from './run-demo.js';

const say = (line: string) => process.stdout.write(`${line}\n`);
const warn = (line: string) => process.stderr.write(`${line}\n`);

/** Exit codes like the services': 78 a bad variable or option (130 / 143 stopped by a signal: Interrupted). */
const EXIT = { failed: 1, config: 78 } as const;

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { scenario: { type: 'string' } },
    strict: true,
  });
  const config = parseDemoConfig(process.env, values.scenario);
  const controller = new AbortController();
  const { signal } = controller;
  // Ctrl-C or SIGTERM aborts the run: the stack start-up or the story stops where it is, the
  // services stop, the run folder is cleaned, and the local stack this run started is released.
  abortOnSignals(controller, { program: 'demo', warn });
  say('driftline demo: starting the local stack (Kafka, Schema Registry, Redis)…');
  const stack = await stackUp({ testRun: true, log: (l) => say(`  ${l}`), signal });
  say(`stack ready in ${(stack.startupMs / 1000).toFixed(1)} s`);
  try {
    const result = await runDemo({ endpoints: stack.endpoints, say, ...config, signal });
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
  if (error instanceof Interrupted) {
    warn(`demo: stopped (${error.signal})`);
    process.exit(error.exitCode);
  }
  // A bad DRIFTLINE_STACK_* value (found when the stack starts) is a configuration error too.
  if (error instanceof ConfigError || error instanceof StackConfigError) {
    warn(`demo: ${error.message}`);
    process.exit(EXIT.config);
  }
  const debug = ['1', 'true', 'yes'].includes(process.env.DRIFTLINE_DEMO_DEBUG ?? '');
  warn(
    `demo failed: ${error instanceof Error ? (debug ? (error.stack ?? error.message) : error.message) : String(error)}`,
  );
  process.exit(EXIT.failed);
});
