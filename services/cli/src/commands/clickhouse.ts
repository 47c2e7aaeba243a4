import { type Logger, parseEnv } from '@driftline/core';
import { clickhouseHostEnvShape, startClickHouseHost, toClickHouseHostOptions } from '@driftline/warehouse/http-host';
import { checkEnvNames } from './env-names.js';

export const clickhouseUsage = `usage: driftline clickhouse serve

Serves the embedded ClickHouse (chdb) of one data directory over ClickHouse's HTTP interface, so
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

/** `driftline clickhouse serve`: the ClickHouse host (libs/warehouse http-host) until a signal. */
export async function clickhouseCommand(args: readonly string[]): Promise<number> {
  const [sub, ...rest] = args;
  if (
    sub === '--help' ||
    sub === '-h' ||
    (sub === 'serve' && rest.length === 1 && ['--help', '-h'].includes(rest[0]!))
  ) {
    process.stdout.write(clickhouseUsage);
    return 0;
  }
  // One error line on stderr, as `dlq` and `model` give: the whole usage on stdout was no error.
  if (sub === undefined) throw usageError('a subcommand is needed: serve');
  if (sub !== 'serve') throw usageError(`unknown subcommand ${JSON.stringify(sub)}: the only one is "serve"`);
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
