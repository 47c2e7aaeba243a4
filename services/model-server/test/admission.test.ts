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

describe('admission refusing', () => {
  it('refusing from a refusal for lack of room until records are taken or acknowledgements make room', async () => {
    let backlog = 2;
    const admission = createAdmission<string>({
      bound: { records: 2, bytes: 1_000 },
      maxWaitMs: 0,
      backlog: () => backlog,
      enqueue: (records) => {
        backlog += records.length;
      },
    });
    expect(admission.refusing()).toBe(false);
    await expect(admission.admit(['x'])).rejects.toThrow(/backlog full/);
    expect(admission.refusing()).toBe(true);
    admission.settled(0); // nothing acknowledged: still full
    expect(admission.refusing()).toBe(true);
    backlog = 1;
    admission.settled(1); // room again, nobody waiting: no request is needed to find out
    expect(admission.refusing()).toBe(false);
    await expect(admission.admit(['y', 'z'])).rejects.toThrow(/backlog full/); // 1 + 2 > 2
    expect(admission.refusing()).toBe(true);
    await admission.admit(['y']); // taken
    expect(admission.refusing()).toBe(false);
  });
});
