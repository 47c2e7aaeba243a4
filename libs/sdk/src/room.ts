/**
 * Publish calls waiting for room in the producer's buffer, first come first woken. A wait is
 * bounded: past its deadline it is taken out of the queue and rejects with the error `timedOut`
 * builds; a waiter woken before it never sees its timer, one that timed out is never woken.
 */
export class RoomWaiters {
  private readonly waiting: Array<() => void> = [];

  /** Waits now. */
  get size(): number {
    return this.waiting.length;
  }

  /**
   * Resolves when woken; rejects with `timedOut()` once `deadline` (epoch ms, `Date.now()`'s clock)
   * passes first, the waiter then removed from the queue.
   */
  wait(deadline: number, timedOut: () => Error): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const wake = () => {
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(
        () => {
          const at = this.waiting.indexOf(wake);
          if (at < 0) return; // woken meanwhile
          this.waiting.splice(at, 1);
          reject(timedOut());
        },
        Math.max(0, deadline - Date.now()),
      );
      this.waiting.push(wake);
    });
  }

  /** Wakes waiters in order while `hasRoom()` says so (each woken one checks the room again itself). */
  wake(hasRoom: () => boolean): void {
    while (this.waiting.length > 0 && hasRoom()) this.waiting.shift()!();
  }
}
