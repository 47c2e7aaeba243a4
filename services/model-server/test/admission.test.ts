import { createServer, type Server } from 'node:http';
import { sendError } from '@driftline/service/http';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AdmissionAbortedError, backlogFull, createAdmission, logNotRunning } from '../src/admission.js';

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
    expect(Date.now() - started).toBeLessThan(2_500); // not the 3 s wait; slack for a loaded run
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

/**
 * Runs fake time for `ms` in steps of 5 ms, every promise continuation of a step run before the
 * next (a real setImmediate between steps: advanceTimersByTimeAsync yields to the event loop after
 * each timer, ~1 ms apiece on a loaded machine, 6 s for the simulation below).
 */
async function runFor(ms: number): Promise<void> {
  for (let t = 0; t < ms; t += 5) {
    vi.advanceTimersByTime(5);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

// Found by a review: a request refused because the waiting room was full set `refusing`, so a
// healthy log saturated by its clients failed /readyz (128 clients of 1,000-record requests, Kafka
// acknowledging 200,000 records a second: unready 73 % of the time, 14,113 503s; none before).
describe('admission under more clients than the waiting room holds, Kafka keeping up', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('answers 503s for lack of room but never reports refusing (readiness holds)', async () => {
    // setImmediate real: runFor's step between fake milliseconds.
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    let backlog = 0;
    const admission = createAdmission<number>({
      bound: { records: 50_000, bytes: Number.POSITIVE_INFINITY },
      maxWaitMs: 1_000,
      backlog: () => backlog,
      enqueue: (records) => {
        backlog += records.length;
      },
    });
    // Sampled after every change the admission sees (an answer to a request, an acknowledgement):
    // `refusing` changes nowhere else.
    let refusingSeen = 0;
    let samples = 0;
    const sample = () => {
      samples++;
      if (admission.refusing()) refusingSeen++;
    };
    // Kafka acknowledges 20,000 records every 100 ms (200,000 a second), steadily.
    const acker = setInterval(() => {
      const n = Math.min(20_000, backlog);
      backlog -= n;
      admission.settled(n);
      sample();
    }, 100);
    const records = Array.from({ length: 1_000 }, (_, i) => i);
    let stop = false;
    let admitted = 0;
    let refused = 0;
    let other = 0;
    const client = async () => {
      while (!stop) {
        try {
          await admission.admit(records);
          admitted++;
        } catch (error) {
          sample();
          if ((error as { status?: unknown }).status !== 503) other++;
          refused++;
          await new Promise((resolve) => setTimeout(resolve, 50));
          continue;
        }
        sample();
      }
    };
    const clients = Array.from({ length: 128 }, client);
    await runFor(2_000);
    stop = true;
    // Drained: every client's last request settles.
    clearInterval(acker);
    for (let i = 0; i < 200 && backlog > 0; i++) {
      const n = backlog;
      backlog = 0;
      admission.settled(n);
      await runFor(50);
    }
    await runFor(1_100);
    await Promise.all(clients);
    const summary = JSON.stringify({ admitted, refused, other, refusingSeen, samples });
    expect(other, summary).toBe(0); // every refusal a 503
    // The waiting room was full (the case under test), and the log kept Kafka's pace.
    expect(refused, summary).toBeGreaterThan(0);
    expect(admitted, summary).toBeGreaterThan(300); // ~200 requests a second for 2 s
    expect(samples, summary).toBeGreaterThan(1_000);
    expect(refusingSeen, summary).toBe(0);
  });

  it('refusing only after a wait during which nothing was acknowledged; a slow but draining log answers 503s', async () => {
    vi.useFakeTimers();
    let backlog = 10;
    const admission = createAdmission<string>({
      bound: { records: 10, bytes: Number.POSITIVE_INFINITY },
      maxWaitMs: 1_000,
      backlog: () => backlog,
      enqueue: (records) => {
        backlog += records.length;
      },
    });
    // Draining 1 record every 200 ms: the waiter of 6 does not fit within its second.
    const slow = admission.admit(['a', 'b', 'c', 'd', 'e', 'f']).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(100);
    for (let t = 0; t < 5; t++) {
      backlog--;
      admission.settled(1);
      await vi.advanceTimersByTimeAsync(t < 4 ? 200 : 100);
    }
    expect(await slow).toMatchObject({ status: 503, message: expect.stringContaining('after waiting 1000 ms') });
    expect(admission.refusing()).toBe(false); // it drained: busy, not out of service
    // Nothing acknowledged for a whole wait: the log does not drain, the instance goes unready.
    const stuck = admission.admit(['x', 'y', 'z', 'w', 'v', 'u']).catch((e: unknown) => e);
    await vi.advanceTimersByTimeAsync(1_000);
    expect(await stuck).toMatchObject({ status: 503 });
    expect(admission.refusing()).toBe(true);
    backlog = 0;
    admission.settled(10);
    expect(admission.refusing()).toBe(false);
  });
});

// Found by a review: a waiter ignored its request's abort signal, so a departed client held its
// place in the waiting room until maxWaitMs, refusing the requests behind it.
describe('admission and a departed client', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('a waiter whose signal aborts leaves the waiting room at once, its place going to the next request', async () => {
    vi.useFakeTimers();
    let backlog = 10; // full: every request waits
    const taken: string[][] = [];
    const admission = createAdmission<string>({
      bound: { records: 10, bytes: Number.POSITIVE_INFINITY },
      maxWaitMs: 60_000,
      backlog: () => backlog,
      enqueue: (records) => {
        backlog += records.length;
        taken.push([...records]);
      },
    });
    const gone = new AbortController();
    const departed = admission.admit(
      Array.from({ length: 10 }, (_, i) => `d${i}`),
      undefined,
      gone.signal,
    );
    let departedOutcome: unknown = 'waiting';
    void departed.then(
      () => {
        departedOutcome = 'taken';
      },
      (e: unknown) => {
        departedOutcome = e;
      },
    );
    // The room is full (10 waiting): refused at once.
    await expect(admission.admit(['r'])).rejects.toMatchObject({ status: 503 });
    gone.abort();
    await vi.advanceTimersByTimeAsync(0);
    expect(departedOutcome).not.toBe('waiting'); // not after maxWaitMs: now
    expect(departedOutcome).toBeInstanceOf(AdmissionAbortedError);
    // Its place is free: the next request waits instead of being refused, and is taken first.
    const next = admission.admit(['n']);
    backlog = 0;
    admission.settled(0);
    await next;
    expect(taken).toEqual([['n']]);
    // Already aborted: nothing taken, whatever the room.
    await expect(admission.admit(['late'], undefined, gone.signal)).rejects.toBeInstanceOf(AdmissionAbortedError);
    expect(taken).toEqual([['n']]);
    expect(admission.refusing()).toBe(false);
  });
});
