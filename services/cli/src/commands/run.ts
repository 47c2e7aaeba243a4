import { cutText } from '@driftline/core';
import { type Runner, StartupTimeoutError, selectServices, startRunner } from '@driftline/service';
import { UnavailableError, UsageError } from '../describe-error.js';
import { allServices } from '../services.js';
import { checkEnvNames } from './env-names.js';

/** A later signal forces the exit only when it comes this long after the first (duplicates come at once). */
const FORCE_AFTER_MS = 2_000;
const PARENT_POLL_MS = 500;

export const runUsage = `usage: driftline run [service,...] [--debug]

Starts services in this process: the comma-separated list, or DRIFTLINE_SERVICES, or all of
${allServices.map((s) => s.name).join(', ')}.
Configuration comes from DRIFTLINE_* environment variables (README: Configuration); a bad or
missing one exits with code 78 naming it. A backend start-up needs (Kafka, the Schema Registry, a
ClickHouse server) that does not answer is waited for DRIFTLINE_STARTUP_TIMEOUT (default 2m), then
one line names it and why, exit 69. One SIGTERM or SIGINT finishes the batches in hand,
commits and exits 0; a third signal 2 s after the first forces exit code 130.
`;

/** Most characters of an argument quoted in a usage line (a pasted 100 KB argument made a 100 KB line). */
const MAX_SHOWN = 128;

/**
 * The one argument `run` takes, a comma-separated service list, or undefined for none. Anything
 * else is a usage error (2) showing the comma form: every argument after the first was ignored
 * (`run drift-monitor skew-monitor` started drift-monitor only), and `run --foo` was taken for a
 * service name (exit 78, "configuration").
 */
function serviceListArgument(args: readonly string[]): string | undefined {
  const shown = (a: string) => JSON.stringify(cutText(a, MAX_SHOWN)) + (a.length > MAX_SHOWN ? '…' : '');
  const option = args.find((a) => a.startsWith('-'));
  if (option !== undefined) {
    throw new UsageError(
      `run: unknown option ${shown(option)}; run takes only a comma-separated list of services (driftline run drift-monitor,skew-monitor) — see driftline run --help`,
    );
  }
  if (args.length > 1) {
    // `run drift-monitor, skew-monitor` suggested `drift-monitor,,skew-monitor`, itself refused.
    const joined = args
      .flatMap((a) => a.split(','))
      .map((a) => a.trim())
      .filter(Boolean)
      .join(',');
    throw new UsageError(
      `run: ${args.length} arguments given; name the services as one comma-separated list: driftline run ${cutText(joined, MAX_SHOWN)}${joined.length > MAX_SHOWN ? '…' : ''} — see driftline run --help`,
    );
  }
  if (args[0] !== undefined && args[0].trim() === '') {
    throw new UsageError(
      'run: the service list is empty; leave it out to start every service (or DRIFTLINE_SERVICES) — see driftline run --help',
    );
  }
  return args[0];
}

/**
 * `driftline run [service,...]`: starts the named services (default: all) in this process.
 *
 * Shutdown: the first SIGTERM or SIGINT — however it arrives: to this process, to its process group,
 * or relayed by a wrapper as well (the same signal two or three times within milliseconds) — finishes
 * the batches in hand, commits them, leaves the consumer groups and exits 0. Signals during the
 * shutdown are logged and ignored, except a third one at least 2 s after the first, which forces an
 * exit with code 130 (nothing more is committed; the uncommitted batches are redelivered).
 * A signal that arrives during start-up stops the services as soon as they have started.
 * Under a package-manager script (`pnpm run`, whose wrapper exits on SIGTERM without passing it on),
 * the exit of the parent process is taken as a SIGTERM, so the service never runs on orphaned.
 */
export async function runCommand(args: readonly string[]): Promise<number> {
  if (args[0] === '--help' || args[0] === '-h') {
    process.stdout.write(runUsage);
    return 0;
  }
  const list = serviceListArgument(args);
  await checkEnvNames();
  const services =
    list === undefined
      ? selectServices(allServices, process.env.DRIFTLINE_SERVICES)
      : selectServices(allServices, list, 'the service list of `driftline run`');

  let runner: Runner | undefined;
  const starting = new AbortController(); // a signal ends start-up retries at once
  let firstSignalAt: number | undefined;
  let signals = 0;
  let requested: string | undefined;
  let finish: (code: number) => void = () => {};
  const done = new Promise<number>((resolve) => {
    finish = resolve;
  });
  const stop = (r: Runner, reason: string) => {
    r.context.logger.info({ signal: reason }, 'shutting down: finishing in-flight batches');
    r.stop().then(
      () => {
        r.context.logger.info({}, 'shutdown complete');
        finish(0);
      },
      (error: unknown) => {
        r.context.logger.error({ err: error }, 'shutdown failed');
        finish(1);
      },
    );
  };
  const onSignal = (signal: string) => {
    signals += 1;
    const now = Date.now();
    if (firstSignalAt === undefined) {
      firstSignalAt = now;
      requested = signal;
      starting.abort();
      if (runner !== undefined) stop(runner, signal);
      return;
    }
    const forced = signals >= 3 && now - firstSignalAt >= FORCE_AFTER_MS;
    const line = forced
      ? 'third signal during shutdown: exiting now without finishing (uncommitted batches are redelivered)'
      : 'signal during shutdown ignored: still finishing in-flight batches (a third one, 2 s after the first, forces the exit)';
    if (runner === undefined) process.stderr.write(`driftline: ${line}\n`);
    else runner.context.logger.warn({ signal, signals }, line);
    if (forced) process.exit(130);
  };
  process.on('SIGTERM', () => onSignal('SIGTERM'));
  process.on('SIGINT', () => onSignal('SIGINT'));
  // `pnpm run` exits on SIGTERM without passing it on: its child would run on, orphaned.
  const parent = process.ppid;
  const watch =
    process.env.npm_lifecycle_event === undefined
      ? undefined
      : setInterval(() => {
          if (process.ppid !== parent && firstSignalAt === undefined) onSignal('parent exited');
        }, PARENT_POLL_MS).unref();
  try {
    try {
      runner = await startRunner({ services, knownServices: allServices, signal: starting.signal });
    } catch (error) {
      // A backend that did not answer within DRIFTLINE_STARTUP_TIMEOUT: exit 69, as for every command.
      if (requested === undefined && error instanceof StartupTimeoutError) {
        throw new UnavailableError(error.message, { cause: error });
      }
      if (requested === undefined) throw error;
      // Asked to stop while start-up waited for a backend: nothing runs, nothing to finish.
      process.stderr.write(`driftline: stopped during start-up (${requested}); nothing was started\n`);
      return 0;
    }
    runner.context.logger.info(
      { services: services.map((s) => s.name), httpPort: runner.httpPort },
      'driftline running',
    );
    if (requested !== undefined) stop(runner, requested);
    return await done;
  } finally {
    // The handlers stay: a late duplicate while the process exits must not turn exit 0 into a kill.
    if (watch !== undefined) clearInterval(watch);
  }
}
