#!/usr/bin/env node
import { errorLine } from '@driftline/core';
import { describeError, EXIT, UsageError } from './describe-error.js';

const USAGE = `usage: driftline <command> [options] [--debug]

commands:
  run [service,...]   start services in this process (default: all; or DRIFTLINE_SERVICES)
  drift               offline drift of a current table against a reference (driftline drift --help)
  report              one self-contained HTML drift report of a model (driftline report --help)
  model-card          one model version's card: training, offline and live metrics, stages, lineage (driftline model-card --help)
  model stage         move a model version to another stage by hand (driftline model --help)
  reference           build and store a model version's reference profile from a table (driftline reference --help)
  dlq list|replay     what a topic's dead-letter topic holds, and sending it back after a fix (driftline dlq --help)
  clickhouse serve    share one embedded ClickHouse among processes over HTTP (driftline clickhouse --help)
  clickhouse migrate  apply the warehouse's pending migrations before a rollout, or list them (--status)

--debug (any command) prints the stack trace of an error.
exit codes: 0 done, 1 internal error, 2 usage (a bad or missing option), 3 input data (a file that
cannot be read or parsed, or a model, version or topic the backend does not hold), 69 unavailable (Kafka,
the Schema Registry or a ClickHouse server does not answer: try again once it is up), 78
configuration (an environment variable), 130 forced stop (run).
`;

type Command = (args: readonly string[]) => Promise<number>;

// Loaded on demand: `run` pulls in every service, the offline commands need none of them.
const commands: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./commands/run.js')).runCommand,
  drift: async () => (await import('./commands/drift.js')).driftCommand,
  report: async () => (await import('./commands/report.js')).reportCommand,
  reference: async () => (await import('./commands/reference.js')).referenceCommand,
  'model-card': async () => (await import('./commands/model-card.js')).modelCardCommand,
  model: async () => (await import('./commands/model.js')).modelCommand,
  clickhouse: async () => (await import('./commands/clickhouse.js')).clickhouseCommand,
  dlq: async () => (await import('./commands/dlq.js')).dlqCommand,
};

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name === undefined ? EXIT.usage : EXIT.ok;
  }
  const load = commands[name];
  if (load === undefined) throw new UsageError(`unknown command ${JSON.stringify(name)} — driftline --help lists them`);
  return (await load())(rest);
}

const argv = process.argv.slice(2);
// --debug anywhere: stack traces for errors; the commands never see it.
const debug = argv.includes('--debug');
const args = argv.filter((a) => a !== '--debug');

/**
 * The first error writing stdout (a full disk, /dev/full, a closed pipe). Listened for so a failed
 * write is not an uncaught 'error' event (a stack trace), and reported at exit.
 */
let stdoutError: Error | undefined;
process.stdout.on('error', (error: Error) => {
  stdoutError ??= error;
});

/**
 * Exits once stdout and stderr have written everything: a pipe takes 64 KiB at once and Node
 * writes the rest later, so exiting at once cut a large table piped into `less`, `grep` or
 * `wc` (809 of 200,003 lines of a 200,000-column drift table).
 *
 * Output that could not be written is a failure (`model-card > /dev/full` exited 0): one line on
 * stderr and exit 1. A reader that went away (EPIPE: `| head`) is not: the command stops writing
 * and exits with its own code, saying nothing, as `ls | head` does.
 */
function exitAfterOutput(code: number): void {
  process.exitCode = code;
  process.stdout.write('', (error) => {
    const failed = stdoutError ?? error ?? undefined;
    let exit = code;
    if (failed !== undefined && (failed as NodeJS.ErrnoException).code !== 'EPIPE') {
      const { line } = describeError(new Error(`cannot write the output: ${failed.message}`, { cause: failed }), '');
      process.stderr.write(errorLine(line));
      exit = code === EXIT.ok ? EXIT.internal : code;
    }
    process.stderr.write('', () => process.exit(exit));
  });
}

main(args).then(
  (code) => exitAfterOutput(code),
  (error: unknown) => {
    const command = args[0];
    const help =
      command === undefined || commands[command] === undefined ? 'driftline --help' : `driftline ${command} --help`;
    const { line, code } = describeError(error, help);
    process.stderr.write(errorLine(line));
    if (debug) process.stderr.write(`${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    exitAfterOutput(code);
  },
);
