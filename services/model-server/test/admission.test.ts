import { createServer, type Server } from 'node:http';
import { sendError } from '@driftline/service/http';
import { afterEach, describe, expect, it } from 'vitest';
import { backlogFull, createAdmission, logNotRunning } from '../src/admission.js';

describe('admission 503s', () => {
  let server: Server | undefined;
  afterEach(() => server?.close());

  it('a full prediction log and a log not running are answered 503 with a Retry-After (there was none)', async () => {
    const admission = createAdmission<string>({
      bound: { records: 1, bytes: 1_000 },
      maxWaitMs: 0,
      backlog: () => 1,
      enqueue: () => {},
    });
    const refused = await admission.admit(['x']).catch((e: unknown) => e);
    expect(refused).toMatchObject({ status: 503, message: expect.stringContaining('backlog full') });
    const errors = [refused, logNotRunning(), backlogFull({ records: 1, bytes: 1 }, 50)];
    let next = 0;
    server = createServer((_req, res) => sendError(res, errors[next++] as never, 'r'));
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const port = (server.address() as { port: number }).port;
    for (let i = 0; i < errors.length; i++) {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      expect(res.status).toBe(503);
      expect(Number(res.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    }
  });
});
