import { type Logger, parseEnv } from '@driftline/core';
import {
  clickhouseEnvShape,
  createClickHouse,
  migrate,
  migrationStatus,
  migrations,
  toClickHouseConfig,
} from '@driftline/warehouse';
import { clickhouseHostEnvShape, startClickHouseHost, toClickHouseHostOptions } from '@driftline/warehouse/http-host';
import { withWarehouse } from '../with-warehouse.js';
import { checkEnvNames } from './env-names.js';
import { jsonLine } from './json-line.js';

export const clickhouseUsage = `usage: driftline clickhouse serve
       driftline clickhouse migrate [--status]

serve: serves the embedded ClickHouse (chdb) of one data directory over ClickHouse's HTTP interface, so
several driftline processes on this machine share it: start this once, then give every
\`driftline run\` DRIFTLINE_CLICKHOUSE_URL=<the printed url>. The engine binds its directory to one
process; this process is that one. Statements run one at a time.

environment:
  DRIFTLINE_CLICKHOUSE_PATH                 data directory (default .driftline/chdb)
  DRIFTLINE_CLICKHOUSE_HOST_BIND            address (default 127.0.0.1; another one needs a password)
  DRIFTLINE_CLICKHOUSE_HOST_PORT            port (default 8123; 0: a free one)
  DRIFTLINE_CLICKHOUSE_HOST_USER            user name clients give with the password (default "default")
  DRIFTLINE_CLICKHOUSE_HOST_PASSWORD        password clients must give (default: none)
  DRIFTLINE_CLICKHOUSE_HOST_MAX_BODY_BYTES  largest request body (default 67108864)
  DRIFTLINE_CLICKHOUSE_HOST_TIMEOUT         bound on a request, waiting included (default 60s)
  DRIFTLINE_CLICKHOUSE_HOST_MAX_QUEUE       requests waiting for the engine at most (default 256)
  DRIFTLINE_STARTUP_TIMEOUT                 start-up retries a full or read-only disk this long (default 2m)

Prints one JSON line {"url": ..., "path": ...} on stdout once it listens. SIGTERM or SIGINT
answers the requests in hand, closes the engine and exits 0.

migrate: applies the warehouse's pending migrations, as every service does at start, and says how
long each took (a line each on stderr, then {"database", "applied", "already"} on stdout). Run it
once before starting a new release's services on a large warehouse: a migration that rebuilds a
table under a new key copies its rows, which can take minutes, and a service doing it at start may
pass DRIFTLINE_STARTUP_TIMEOUT. Interrupting it is safe: the next run, or a service start, goes on
from where it stopped. With --status it changes nothing and prints {"database", "applied",
"pending"}. ClickHouse comes from DRIFTLINE_CLICKHOUSE_URL, or the embedded engine at
DRIFTLINE_CLICKHOUSE_PATH (not while \`clickhouse serve\` holds it: give its URL), and
DRIFTLINE_CLICKHOUSE_DATABASE.
`;

// JSON lines on stderr: stdout carries the one line a supervisor reads for the URL.
function stderrLogger(bindings: Record<string, unknown>): Logger {
  const line = (level: string) => (obj: object, msg?: string) =>
    process.stderr.write(`${JSON.stringify({ level, time: new Date().toISOString(), ...bindings, ...obj, msg })}\n`);
  return {
    debug: () => {},
    info: line('info'),
    warn: line('warn'),
    error: line('error'),
    child: (more) => stderrLogger({ ...bindings, ...more }),
  };
}

/** Shaped like node's parseArgs errors, so the CLI reports it as a usage error (exit 2), as `dlq` and `model` do. */
function usageError(message: string): Error {
  return Object.assign(new Error(message), { code: 'ERR_PARSE_ARGS_UNKNOWN_SUBCOMMAND' });
}

/** `driftline clickhouse migrate [--status]`: the warehouse's migrations, applied or listed. */
async function migrateCommand(rest: readonly string[]): Promise<number> {
  const status = rest.length === 1 && rest[0] === '--status';
  if (rest.length > 0 && !status) {
    throw usageError(`migrate takes only --status (got ${JSON.stringify(rest.join(' '))})`);
  }
  await checkEnvNames();
  const config = toClickHouseConfig(parseEnv(clickhouseEnvShape));
  // --status creates nothing: not the engine's directory either.
  return withWarehouse(
    () => createClickHouse(config, { createDirectory: !status }),
    async (ch) => {
      await ch.verify();
      const before = await migrationStatus(ch, migrations);
      if (status) {
        process.stdout.write(
          jsonLine(
            { database: ch.database, applied: before.applied, pending: before.pending },
            process.stdout.isTTY === true,
          ),
        );
        return 0;
      }
      const applied = await migrate(ch, migrations, {
        onStart: (id) => process.stderr.write(`applying ${id}…\n`),
        onApplied: (id, ms) => process.stderr.write(`applied ${id} in ${(ms / 1000).toFixed(1)} s\n`),
      });
      process.stdout.write(
        jsonLine({ database: ch.database, applied, already: before.applied.length }, process.stdout.isTTY === true),
      );
      return 0;
    },
  );
}

/** `driftline clickhouse serve|migrate`: the ClickHouse host until a signal, or the warehouse's migrations. */
export async function clickhouseCommand(args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (
    sub === '--help' ||
    sub === '-h' ||
    ((sub === 'serve' || sub === 'migrate') && rest.length === 1 && ['--help', '-h'].includes(rest[0]!))
  ) {
    process.stdout.write(clickhouseUsage);
    return 0;
  }
  // One error line on stderr, as `dlq` and `model` give: the whole usage on stdout was no error.
  if (sub === undefined) throw usageError('a subcommand is needed: serve or migrate');
  if (sub === 'migrate') return migrateCommand(rest);
  if (sub !== 'serve') throw usageError(`unknown subcommand ${JSON.stringify(sub)}: serve or migrate`);
  if (rest.length > 0) {
    throw usageError(
      `serve takes no arguments (got ${JSON.stringify(rest.join(' '))}); it is configured by the environment`,
    );
  }
  await checkEnvNames();
  const options = toClickHouseHostOptions(parseEnv(clickhouseHostEnvShape));
  const logger = stderrLogger({ service: 'clickhouse-host' });
  // Listened for from the start: a signal while start-up waits for the disk ends the wait.
  const stopping = new AbortController();
  let requested: string | undefined;
  const stopped = new Promise<void>((resolve) => {
    const onSignal = (signal: string) => {
      requested ??= signal;
      stopping.abort();
      resolve();
    };
    process.once('SIGTERM', () => onSignal('SIGTERM'));
    process.once('SIGINT', () => onSignal('SIGINT'));
  });
  let host: Awaited<ReturnType<typeof startClickHouseHost>>;
  try {
    host = await startClickHouseHost({ ...options, logger, signal: stopping.signal });
  } catch (error) {
    if (requested === undefined) throw error;
    process.stderr.write(`driftline: stopped during start-up (${requested}); nothing was started\n`);
    return 0;
  }
  process.stdout.write(`${JSON.stringify({ url: host.url, path: host.path })}\n`);
  logger.info({ url: host.url, path: host.path }, 'clickhouse host listening');
  await stopped;
  await host.close();
  logger.info({}, 'clickhouse host stopped');
  return 0;
}
