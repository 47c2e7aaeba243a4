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

// A review: waiting records sat outside the bound, one request's worth each, so 4,096 requests in
// flight of 1,000 instances (times their versions) could wait at once: RSS 416 MB -> ~1 GB.
describe('admission waiting room', () => {
  it('holds one bound of records waiting at most; beyond it a request is refused at once, and room frees as waiters leave', async () => {
    let backlog = 10; // full: every request waits
    const taken: string[][] = [];
    const admission = createAdmission<string>({
      bound: { records: 10, bytes: 1_000_000 },
      maxWaitMs: 3_000,
      backlog: () => backlog,
      enqueue: (records) => {
        backlog += records.length;
        taken.push([...records]);
      },
    });
    const first = admission.admit(['a', 'b', 'c', 'd', 'e', 'f']); // waits (6)
    const second = admission.admit(['g', 'h', 'i', 'j']); // waits (10)
    const started = Date.now();
    await expect(admission.admit(['k'])).rejects.toThrow(/backlog full/); // 11 > 10: at once
    expect(Date.now() - started).toBeLessThan(1_000);
    backlog = 0;
    admission.settled(0); // room: both waiters taken
    await first;
    await second;
    expect(taken).toEqual([
      ['a', 'b', 'c', 'd', 'e', 'f'],
      ['g', 'h', 'i', 'j'],
    ]);
    // The room is free again: a request waits instead of being refused.
    let third = false;
    const waiting = admission.admit(['k']).then(() => {
      third = true;
    });
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(third).toBe(false);
    backlog = 0;
    admission.settled(0);
    await waiting;
    expect(third).toBe(true);
  });
});
