import { describe, expect, it } from 'vitest';
import { withDeadline } from '../src/deadline.js';

/** Settles only when its signal aborts, like a peer that accepts the connection and never answers. */
function hung(signal: AbortSignal): Promise<never> {
  return new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
}

describe('withDeadline', () => {
  it('aborts a call that never answers and says it timed out', async () => {
    const started = Date.now();
    const result = await withDeadline(50, hung);
    expect(result.ok).toBe(false);
    if (!result.ok) {
      expect(result.timedOut).toBe(true);
      expect((result.error as Error).name).toBe('TimeoutError');
    }
    expect(Date.now() - started).toBeLessThan(5_000);
  });

  it('passes a value through, and an error that is not a timeout as such', async () => {
    expect(await withDeadline(1_000, async () => 7)).toEqual({ ok: true, value: 7 });
    const failed = await withDeadline(1_000, async () => {
      throw new Error('refused');
    });
    expect(failed).toMatchObject({ ok: false, timedOut: false });
  });

  it('aborts at once when the stop signal aborts, and says it stopped (not timed out)', async () => {
    const stop = new AbortController();
    setTimeout(() => stop.abort(new Error('shutting down')), 20);
    const result = await withDeadline(60_000, hung, stop.signal);
    expect(result).toMatchObject({ ok: false, stopped: true, timedOut: false });
    if (!result.ok) expect((result.error as Error).message).toBe('shutting down');
    // Already stopped: the call sees an aborted signal from the start.
    const again = await withDeadline(60_000, async (signal) => signal.aborted, stop.signal);
    expect(again).toEqual({ ok: true, value: true });
  });
});
