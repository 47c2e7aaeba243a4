import { connect, createServer, type Socket } from 'node:net';

/** A loopback TCP proxy capped at a throughput both ways (see {@link throttledProxy}). */
export interface ThrottledProxy {
  readonly port: number;
  /** Connections accepted so far. */
  connections(): number;
  close(): Promise<void>;
}

const TICK_MS = 20;

/**
 * Forwards `from` → `to` at most `bytesPerSecond`, holding the rest in memory as a slow link
 * holds it in flight: a client's write completes at once, its bytes arrive over time, and what
 * was held when a side closes is dropped.
 */
function throttle(from: Socket, to: Socket, bytesPerSecond: number): void {
  const perTick = Math.max(1, Math.round((bytesPerSecond * TICK_MS) / 1000));
  const held: Buffer[] = [];
  let timer: NodeJS.Timeout | undefined;
  const stop = () => {
    held.length = 0;
    clearInterval(timer);
    timer = undefined;
  };
  const pump = () => {
    let budget = perTick;
    while (budget > 0 && held.length > 0 && !to.destroyed) {
      const head = held[0]!;
      const piece = head.subarray(0, budget);
      to.write(piece);
      budget -= piece.length;
      if (piece.length === head.length) held.shift();
      else held[0] = head.subarray(piece.length);
    }
    if (held.length === 0 || to.destroyed) stop();
  };
  from.on('data', (data: Buffer) => {
    held.push(data);
    timer ??= setInterval(pump, TICK_MS);
  });
  from.on('close', stop);
  to.on('close', stop);
}

/**
 * A TCP proxy on 127.0.0.1 to `host:port` that carries at most `bytesPerSecond` each way: a slow
 * (not down) Redis, as a review reproduced one (a proxy capped at 20 KB/s).
 */
export async function throttledProxy(
  port: number,
  bytesPerSecond: number,
  host = '127.0.0.1',
): Promise<ThrottledProxy> {
  let connections = 0;
  const sockets: Socket[] = [];
  const server = createServer((client) => {
    connections++;
    const upstream = connect(port, host);
    sockets.push(client, upstream);
    throttle(client, upstream, bytesPerSecond);
    throttle(upstream, client, bytesPerSecond);
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => {});
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => connections,
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
