import { selectServices, startRunner } from '@driftline/service';
import { allServices } from '../services.js';

/** `driftline run [service,...]`: starts the named services (default: all) in this process. */
export async function runCommand(args: readonly string[]): Promise<number> {
  const names = args[0] ?? process.env.DRIFTLINE_SERVICES;
  const services = selectServices(allServices, names);
  const runner = await startRunner({ services, knownServices: allServices });
  const log = runner.context.logger;
  log.info({ services: services.map((s) => s.name), httpPort: runner.httpPort }, 'driftline running');
  await new Promise<void>((resolve) => {
    const shutdown = (signal: string) => {
      log.info({ signal }, 'shutting down: finishing in-flight batches');
      runner.stop().then(resolve, (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        resolve();
      });
    };
    process.once('SIGTERM', () => shutdown('SIGTERM'));
    process.once('SIGINT', () => shutdown('SIGINT'));
  });
  return 0;
}
