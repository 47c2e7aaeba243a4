import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { RoomWaiters } from '../src/room.js';

describe('RoomWaiters (publish calls waiting for room in the buffer)', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  const settled = (p: Promise<void>) => {
    const state = { value: 'pending' as 'pending' | 'woken' | 'timed out', error: undefined as unknown };
    p.then(
      () => {
        state.value = 'woken';
      },
      (error: unknown) => {
        state.value = 'timed out';
        state.error = error;
      },
    );
    return state;
  };

  it('rejects a wait past its deadline and takes it out of the queue; the others wait on and are woken', async () => {
    const waiters = new RoomWaiters();
    const now = Date.now();
    const early = settled(waiters.wait(now + 1_000, () => new Error('early: no room')));
    const late = settled(waiters.wait(now + 5_000, () => new Error('late: no room')));
    expect(waiters.size).toBe(2);

    await vi.advanceTimersByTimeAsync(1_000);
    expect(early.value).toBe('timed out');
    expect((early.error as Error).message).toBe('early: no room');
    expect(late.value).toBe('pending');
    expect(waiters.size).toBe(1); // no leak: the timed-out waiter is gone

    // Room frees: the remaining waiter is woken, not the gone one (no double settle).
    waiters.wake(() => true);
    await vi.advanceTimersByTimeAsync(0);
    expect(late.value).toBe('woken');
    expect(waiters.size).toBe(0);
    // Its timer was cleared: nothing fires at its deadline.
    expect(vi.getTimerCount()).toBe(0);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(late.value).toBe('woken');
  });

  it('a waiter woken before its deadline never times out; wake stops when there is no room', async () => {
    const waiters = new RoomWaiters();
    const now = Date.now();
    const first = settled(waiters.wait(now + 1_000, () => new Error('first')));
    const second = settled(waiters.wait(now + 1_000, () => new Error('second')));
    let room = 1;
    waiters.wake(() => room-- > 0);
    await vi.advanceTimersByTimeAsync(0);
    expect([first.value, second.value]).toEqual(['woken', 'pending']);
    await vi.advanceTimersByTimeAsync(1_000);
    expect([first.value, second.value]).toEqual(['woken', 'timed out']);
    expect(waiters.size).toBe(0);
    waiters.wake(() => true); // nothing left to wake; the timed-out one stays rejected
    expect(second.value).toBe('timed out');
  });

  it('a deadline already passed rejects on the next turn', async () => {
    const waiters = new RoomWaiters();
    const state = settled(waiters.wait(Date.now() - 1, () => new Error('no room')));
    await vi.advanceTimersByTimeAsync(0);
    expect(state.value).toBe('timed out');
    expect(waiters.size).toBe(0);
  });
});
