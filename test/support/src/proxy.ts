import net, { connect, createServer, type Server, type Socket } from 'node:net';

/** A loopback TCP proxy whose path can go silent (see {@link stallableProxy}). */
export interface StallableProxy {
  readonly port: number;
  /** Connections accepted so far. */
  connections(): number;
  /** Stops forwarding, closing nothing: the peers neither answer nor reset (a blackholed path). */
  stall(): void;
  /** Forwards again, delivering what it held meanwhile (as TCP retransmits once a path heals). */
  resume(): void;
  close(): Promise<void>;
}

/** Pairs a proxy's two sockets: their errors are the peers' (ignored), either closing closes the other. */
function pair(client: Socket, upstream: Socket): void {
  for (const [a, b] of [
    [client, upstream],
    [upstream, client],
  ] as const) {
    a.on('error', () => {});
    a.on('close', () => b.destroy());
  }
}

/**
 * A TCP proxy on 127.0.0.1 (a free port) to `host:port`, `wire` moving the bytes of each
 * connection; it counts connections and `close` destroys every socket it made.
 */
async function loopbackProxy(
  port: number,
  host: string,
  wire: (client: Socket, upstream: Socket) => void,
): Promise<{ readonly port: number; connections(): number; close(): Promise<void> }> {
  let connections = 0;
  const sockets: Socket[] = [];
  const server = createServer((client) => {
    connections++;
    const upstream = connect(port, host);
    sockets.push(client, upstream);
    wire(client, upstream);
    pair(client, upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as { port: number }).port,
    connections: () => connections,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A TCP proxy on 127.0.0.1 to `host:port` that can stall (a server that stops replying). */
export async function stallableProxy(port: number, host = '127.0.0.1'): Promise<StallableProxy> {
  let stalled = false;
  const held: Array<[Socket, Buffer]> = [];
  const proxy = await loopbackProxy(port, host, (client, upstream) => {
    const forward = (to: Socket) => (data: Buffer) => {
      if (stalled) held.push([to, data]);
      else to.write(data);
    };
    client.on('data', forward(upstream));
    upstream.on('data', forward(client));
  });
  return {
    ...proxy,
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      for (const [to, data] of held.splice(0)) if (!to.destroyed) to.write(data);
    },
  };
}

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
export function throttledProxy(port: number, bytesPerSecond: number, host = '127.0.0.1'): Promise<ThrottledProxy> {
  return loopbackProxy(port, host, (client, upstream) => {
    throttle(client, upstream, bytesPerSecond);
    throttle(upstream, client, bytesPerSecond);
  });
}

/**
 * A server coming up on `listenPort`: from now on, a loopback TCP proxy to `target` (`host:port` or
 * a URL with both, e.g. the stack's Redis URL). Tests of "down at start, up later" start a service
 * on a port nothing listens on, then call this.
 */
export async function proxyOn(listenPort: number, target: string): Promise<Server> {
  const { hostname, port } = new URL(target.includes('://') ? target : `tcp://${target}`);
  const server = createServer((client) => {
    const upstream = connect(Number(port), hostname);
    client.pipe(upstream).pipe(client);
    pair(client, upstream);
  });
  await new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', resolve));
  return server;
}

/**
 * A stallable proxy in front of the Kafka broker `host:port` that every connection of this process
 * to the broker's port goes through (`net.connect` patched): the broker advertises its own address,
 * so a proxy given only as the bootstrap broker would carry the bootstrap alone. The proxy's own
 * upstream connection is not redirected (it uses the unpatched binding). `close` puts
 * `net.connect` back, then closes the proxy.
 */
export async function stallableBroker(broker: string): Promise<StallableProxy> {
  const [host, port] = broker.split(':') as [string, string];
  const proxy = await stallableProxy(Number(port), host);
  const original = net.connect;
  net.connect = ((options: net.TcpNetConnectOpts, onConnect?: () => void) =>
    original(
      Number(options.port) === Number(port) ? { ...options, host: '127.0.0.1', port: proxy.port } : options,
      onConnect,
    )) as typeof net.connect;
  return {
    ...proxy,
    close: async () => {
      net.connect = original;
      await proxy.close();
    },
  };
}
