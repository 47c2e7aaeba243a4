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

/** A TCP proxy on 127.0.0.1 to `host:port` that can stall (a server that stops replying). */
export async function stallableProxy(port: number, host = '127.0.0.1'): Promise<StallableProxy> {
  let stalled = false;
  let connections = 0;
  const sockets: Socket[] = [];
  const held: Array<[Socket, Buffer]> = [];
  const server = createServer((client) => {
    connections++;
    const upstream = connect(port, host);
    sockets.push(client, upstream);
    const forward = (to: Socket) => (data: Buffer) => {
      if (stalled) held.push([to, data]);
      else to.write(data);
    };
    client.on('data', forward(upstream));
    upstream.on('data', forward(client));
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
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      for (const [to, data] of held.splice(0)) if (!to.destroyed) to.write(data);
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
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
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => {});
      a.on('close', () => b.destroy());
    }
  });
  await new Promise<void>((resolve) => server.listen(listenPort, '127.0.0.1', resolve));
  return server;
}
