import {
  endpointsFromEnv,
  envLines,
  type MonitoringEndpoints,
  monitoringStatus,
  monitoringUp,
  StackConfigError,
  type StackEndpoints,
  stackDown,
  stackStatus,
  stackUp,
  writeScrapeTargets,
} from './index.js';
import { formatMs } from './util.js';

/** sysexits' EX_CONFIG, like the services: a bad DRIFTLINE_STACK_* value is no failed start. */
const CONFIG_ERROR_EXIT = 78;

const USAGE = `usage: pnpm -s stack <command>

  up      start Kafka (KRaft), the Apicurio schema registry and redis-server (or reuse a running stack)
          --with monitoring (or DRIFTLINE_STACK_MONITORING=1): also Prometheus and Alertmanager
  down    stop exactly the processes recorded in .stack/state.json (and .stack/monitoring/state.json)
  scrape  host:port ...  the driftline services Prometheus scrapes besides 127.0.0.1:9464
          (writes .stack/monitoring/targets/cli.json; no argument: none)
  status  show the recorded processes and endpoints (exit code 3 when the stack is not running)
  env     print export lines for DRIFTLINE_KAFKA_BROKERS, DRIFTLINE_SCHEMA_REGISTRY_URL, DRIFTLINE_REDIS_URL
`;

const log = (line: string) => process.stderr.write(`[stack] ${line}\n`);

function printMonitoring(endpoints: MonitoringEndpoints): void {
  process.stdout.write(
    `prometheus:      ${endpoints.prometheusUrl}\n` +
      `alertmanager:    ${endpoints.alertmanagerUrl}\n` +
      `scrape targets:  ${endpoints.targetsDir}/*.json\n`,
  );
}

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
      const withIndex = argv.indexOf('--with');
      const monitoring =
        (withIndex > 0 && argv[withIndex + 1] === 'monitoring') ||
        /^(1|true|yes)$/i.test(process.env.DRIFTLINE_STACK_MONITORING ?? '');
      if (withIndex > 0 && argv[withIndex + 1] !== 'monitoring') {
        process.stderr.write(`--with takes \`monitoring\` (got ${JSON.stringify(argv[withIndex + 1] ?? '')})\n`);
        return 2;
      }
      // Where Alertmanager sends what fires (a generic webhook: a local receiver, a chat bridge...).
      const webhookUrl = process.env.DRIFTLINE_STACK_ALERT_WEBHOOK_URL?.trim() || undefined;
      if (webhookUrl !== undefined && !/^https?:\/\/\S+$/.test(webhookUrl)) {
        process.stderr.write(
          `DRIFTLINE_STACK_ALERT_WEBHOOK_URL must be an http(s) URL (got ${JSON.stringify(webhookUrl)})\n`,
        );
        return 2;
      }
      const result = await stackUp({ log });
      printEndpoints(result.endpoints);
      if (monitoring) {
        printMonitoring((await monitoringUp(webhookUrl === undefined ? { log } : { log, webhookUrl })).endpoints);
      }
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
      const monitoring = monitoringStatus();
      const processes = [...status.processes, ...(monitoring?.processes ?? [])];
      if (processes.length === 0) {
        process.stdout.write('stack: not running (no state)\n');
        return 3;
      }
      for (const p of processes) {
        process.stdout.write(`${p.name.padEnd(16)} pid ${String(p.pid).padEnd(8)} ${p.alive ? 'alive' : 'DEAD'}\n`);
      }
      if (status.endpoints) printEndpoints(status.endpoints);
      if (monitoring !== undefined) printMonitoring(monitoring.endpoints);
      process.stdout.write(`stack: ${status.running ? 'running' : 'NOT running (run `pnpm -s stack up`)'}\n`);
      return status.running ? 0 : 3;
    }
    case 'scrape': {
      const monitoring = monitoringStatus();
      if (monitoring === undefined) {
        log('monitoring is not running; start it with `pnpm -s stack up --with monitoring`');
        return 1;
      }
      const file = writeScrapeTargets(monitoring.endpoints.targetsDir, 'cli', argv.slice(1), { source: 'cli' });
      process.stdout.write(`${argv.length > 1 ? `wrote ${file}` : `removed ${file}`}\n`);
      return 0;
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
    process.exitCode = err instanceof StackConfigError ? CONFIG_ERROR_EXIT : 1;
  },
);
