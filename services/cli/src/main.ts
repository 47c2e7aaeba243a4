#!/usr/bin/env node
import { ConfigError, DriftlineError } from '@driftline/core';
import { driftCommand } from './commands/drift.js';
import { runCommand } from './commands/run.js';

const USAGE = `usage: driftline <command> [options]

commands:
  run [service,...]   start services in this process (default: all; or DRIFTLINE_SERVICES)
  drift               offline drift of a current table against a reference (driftline drift --help)
`;

type Command = (args: readonly string[]) => Promise<number>;

const commands: Record<string, Command> = {
  run: runCommand,
  drift: driftCommand,
};

async function main(argv: readonly string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h') {
    process.stdout.write(USAGE);
    return name === undefined ? 2 : 0;
  }
  const command = commands[name];
  if (command === undefined) {
    process.stderr.write(`driftline: unknown command ${JSON.stringify(name)}\n${USAGE}`);
    return 2;
  }
  return command(rest);
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
