#!/usr/bin/env node
import { ConfigError, DriftlineError } from '@driftline/core';

const USAGE = `usage: driftline <command> [options]

commands:
  run [service,...]   start services in this process (default: all; or DRIFTLINE_SERVICES)
  drift               offline drift of a current table against a reference (driftline drift --help)
  report              one self-contained HTML drift report of a model (driftline report --help)
  reference           build and store a model version's reference profile from a CSV (driftline reference --help)
`;

type Command = (args: readonly string[]) => Promise<number>;

// Loaded on demand: `run` pulls in every service, the offline commands need none of them.
const commands: Record<string, () => Promise<Command>> = {
  run: async () => (await import('./commands/run.js')).runCommand,
  drift: async () => (await import('./commands/drift.js')).driftCommand,
  report: async () => (await import('./commands/report.js')).reportCommand,
  reference: async () => (await import('./commands/reference.js')).referenceCommand,
};

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (load === undefined) {
    process.stderr.write(`driftline: unknown command ${JSON.stringify(name)} (driftline --help lists them)\n`);
    return 2;
  }
  return (await load())(rest);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    // Config errors name the field; print them plainly and exit non-zero without a stack trace.
    if (error instanceof ConfigError || (error instanceof DriftlineError && error.code === 'CONFIG_INVALID')) {
      process.stderr.write(`driftline: configuration error: ${error.message}\n`);
      process.exit(78);
    }
    process.stderr.write(`driftline: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exit(1);
  },
);
