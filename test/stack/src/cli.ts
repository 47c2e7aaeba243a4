import { endpointsFromEnv, envLines, type StackEndpoints, stackDown, stackStatus, stackUp } from './index.js';
import { formatMs } from './util.js';

const USAGE = `usage: pnpm -s stack <command>

  up      start Kafka (KRaft), the Apicurio schema registry and redis-server (or reuse a running stack)
  down    stop exactly the processes recorded in .stack/state.json
  status  show the recorded processes and endpoints (exit code 3 when the stack is not running)
  env     print export lines for DRIFTLINE_KAFKA_BROKERS, DRIFTLINE_SCHEMA_REGISTRY_URL, DRIFTLINE_REDIS_URL
`;

const log = (line: string) => process.stderr.write(`[stack] ${line}\n`);

function printEndpoints(endpoints: StackEndpoints): void {
  process.stdout.write(
    `kafka brokers:   ${endpoints.kafkaBrokers.join(',')}\n` +
      `schema registry: ${endpoints.schemaRegistryUrl}\n` +
      `redis:           ${endpoints.redisUrl}\n`,
  );
}

async function main(argv: string[]): Promise<number> {
  const command = argv[0];
  switch (command) {
    case 'up': {
      const result = await stackUp({ log });
      printEndpoints(result.endpoints);
      process.stdout.write(
        result.startedNow
          ? `stack started in ${formatMs(result.startupMs)}\n`
          : `stack already running (checked in ${formatMs(result.startupMs)})\n`,
      );
      return 0;
    }
    case 'down': {
      const { stopped } = await stackDown({ log });
      process.stdout.write(`stopped ${stopped} process${stopped === 1 ? '' : 'es'}\n`);
      return 0;
    }
    case 'status': {
      const status = await stackStatus();
      if (status.processes.length === 0) {
        process.stdout.write('stack: not running (no state)\n');
        return 3;
      }
      for (const p of status.processes) {
        process.stdout.write(`${p.name.padEnd(16)} pid ${String(p.pid).padEnd(8)} ${p.alive ? 'alive' : 'DEAD'}\n`);
      }
      if (status.endpoints) printEndpoints(status.endpoints);
      process.stdout.write(`stack: ${status.running ? 'running' : 'NOT running (run `pnpm -s stack up`)'}\n`);
      return status.running ? 0 : 3;
    }
    case 'env': {
      const external = endpointsFromEnv();
      const status = external === undefined ? await stackStatus() : undefined;
      const endpoints = external ?? (status?.running ? status.endpoints : undefined);
      if (endpoints === undefined) {
        log('the stack is not running; start it with `pnpm -s stack up`');
        return 1;
      }
      process.stdout.write(`${envLines(endpoints).join('\n')}\n`);
      return 0;
    }
    case undefined:
    case '-h':
    case '--help':
    case 'help':
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`[stack] ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
