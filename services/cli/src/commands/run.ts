import { type Runner, StartupTimeoutError, selectServices, startRunner } from '@driftline/service';
import { UnavailableError } from '../describe-error.js';
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
  await checkEnvNames();
  const services =
    args[0] === undefined
      ? selectServices(allServices, process.env.DRIFTLINE_SERVICES)
      : selectServices(allServices, args[0], 'the service list of `driftline run`');

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
