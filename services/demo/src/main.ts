// `make demo`: the whole loop on the local stack, in one process with embedded ClickHouse.
// Progress goes to stdout; the last line is a one-line JSON summary.

import { parseArgs } from 'node:util';
import { ConfigError } from '@driftline/core';
import { stackRelease, stackUp, startedByThisProcess } from '@driftline/stack';
import { parseDemoConfig } from './config.js';
import { storyProblems } from './phases.js';
import { runDemo } from './run-demo.js';

const say = (line: string) => process.stdout.write(`${line}\n`);
const warn = (line: string) => process.stderr.write(`${line}\n`);

/** Exit codes like the services': 78 a bad variable or option, 130 / 143 stopped by a signal. */
const EXIT = { failed: 1, config: 78 } as const;
const SIGNAL_EXIT = { SIGINT: 130, SIGTERM: 143 } as const;

class Interrupted extends Error {
  constructor(readonly signal: keyof typeof SIGNAL_EXIT) {
    super(`interrupted by ${signal}`);
  }
}

/**
 * Ctrl-C or SIGTERM aborts the run: the stack start-up or the story stops where it is, the
 * services stop, the run folder is cleaned, and the local stack this run started is released
 * (stopped unless another run uses it); then exit 130 / 143. A second signal exits at once,
 * naming any process this run started that is still running. Before, the handler's release waited
 * for the lock its own `stackUp` held (a hang), and a second Ctrl-C left JVMs running unnamed.
 */
function abortOnSignals(controller: AbortController): void {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (!controller.signal.aborted) {
        warn(`demo: ${signal}: stopping and cleaning up (again to exit at once)…`);
        controller.abort(new Interrupted(signal));
        return;
      }
      const left = startedByThisProcess();
      warn(
        left.length === 0
          ? `demo: ${signal} again: exiting now; nothing this demo started is left running`
          : `demo: ${signal} again: exiting now; left running: ${left.map((p) => `${p.command} pid ${p.pid}`).join(', ')} ` +
              '(stop them with `pnpm -s stack down`)',
      );
      process.exit(SIGNAL_EXIT[signal]);
    });
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: process.argv.slice(2),
    options: { scenario: { type: 'string' } },
    strict: true,
  });
  const config = parseDemoConfig(process.env, values.scenario);
  const controller = new AbortController();
  const { signal } = controller;
  abortOnSignals(controller);
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
    process.exit(SIGNAL_EXIT[error.signal]);
  }
  if (error instanceof ConfigError) {
    warn(`demo: ${error.message}`);
    process.exit(EXIT.config);
  }
  const debug = ['1', 'true', 'yes'].includes(process.env.DRIFTLINE_DEMO_DEBUG ?? '');
  warn(
    `demo failed: ${error instanceof Error ? (debug ? (error.stack ?? error.message) : error.message) : String(error)}`,
  );
  process.exit(EXIT.failed);
});
