import { Writable } from 'node:stream';
import { createLogger } from '@driftline/observability';

/** The line the services' logger (pino with its error serializer) writes for a failed publish call. */
export function loggedErrorLine(error: unknown): string {
  let line = '';
  const destination = new Writable({
    write(chunk: Buffer, _encoding, done) {
      line += chunk.toString();
      done();
    },
  });
  createLogger({ service: 'sdk-test', destination }).error({ err: error }, 'publish failed');
  return line;
}
