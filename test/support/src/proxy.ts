import { connect, createServer, type Server, type Socket } from 'node:net';

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

/** A loopback proxy in front of one Kafka broker that can go silent or refuse connections. */
export interface BrokerProxy {
  /** `host:port` of the proxy: the bootstrap broker to give a client (in this process or another). */
  readonly broker: string;
  /** Connections accepted so far. */
  connections(): number;
  /** Stops forwarding, closing nothing: connections open, nothing answered (a hung broker, a blackholed path). */
  stall(): void;
  /** Forwards again, delivering what it held meanwhile (as TCP retransmits once a path heals). */
  resume(): void;
  /**
   * Kafka goes away: the answers to requests in flight are dropped for `landMs` (the broker has
   * them, the client never hears back: a batch of unknown outcome), then every connection is
   * closed and new ones are refused until {@link restore}.
   */
  refuse(landMs?: number): Promise<void>;
  /** Accepts connections again, on the same port. */
  restore(): Promise<void>;
  close(): Promise<void>;
}

/**
 * A proxy on 127.0.0.1 (a free port) to the Kafka broker `host:port`. The broker advertises its
 * own address in its answers (metadata, coordinator), so a proxy that only forwarded would carry
 * the bootstrap connection alone: the broker's port after its host's bytes is rewritten to the
 * proxy's in every answer, and every connection a client opens goes through the proxy — a
 * client in this process or a service in a child process, given {@link BrokerProxy.broker}.
 * Nothing is patched and the shared stack is never touched.
 */
export async function brokerProxy(broker: string): Promise<BrokerProxy> {
  const [host, portText] = broker.split(':') as [string, string];
  const brokerPort = Number(portText);
  const hostBytes = Buffer.from(host);
  const sockets = new Set<Socket>();
  const held: Array<[Socket, Buffer]> = [];
  let stalled = false;
  let dropAnswers = false;
  let connections = 0;
  let ownPort = 0;
  const forward = (to: Socket, data: Buffer) => {
    if (stalled) held.push([to, data]);
    else to.write(data);
  };
  const rewrite = (frame: Buffer) => {
    for (let i = frame.indexOf(hostBytes); i !== -1; i = frame.indexOf(hostBytes, i + 1)) {
      const at = i + hostBytes.length;
      if (at + 4 <= frame.length && frame.readInt32BE(at) === brokerPort) frame.writeInt32BE(ownPort, at);
    }
    return frame;
  };
  const server = createServer((client) => {
    connections++;
    const upstream = connect(brokerPort, host);
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    pair(client, upstream);
    client.on('data', (data: Buffer) => forward(upstream, data));
    let pending = Buffer.alloc(0);
    upstream.on('data', (data: Buffer) => {
      if (dropAnswers) return;
      pending = Buffer.concat([pending, data]);
      // Whole size-prefixed answers only, so a rewrite never straddles two chunks.
      while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
        const size = 4 + pending.readInt32BE(0);
        const frame = rewrite(Buffer.from(pending.subarray(0, size)));
        pending = pending.subarray(size);
        forward(client, frame);
      }
    });
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  const closeAll = async () => {
    const closed = server.listening ? new Promise((resolve) => server.close(resolve)) : Promise.resolve();
    for (const s of sockets) s.destroy();
    await closed;
  };
  await listen(0);
  ownPort = (server.address() as { port: number }).port;
  return {
    broker: `127.0.0.1:${ownPort}`,
    connections: () => connections,
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      for (const [to, data] of held.splice(0)) if (!to.destroyed) to.write(data);
    },
    async refuse(landMs = 300) {
      dropAnswers = true;
      await new Promise((resolve) => setTimeout(resolve, landMs));
      await closeAll();
      dropAnswers = false;
    },
    restore: () => listen(ownPort),
    close: closeAll,
  };
}
