import net, { connect, createServer, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

/** A loopback proxy in front of the Kafka broker that can refuse connections, or go silent. */
export interface OutageBroker {
  /** `host:port` of the proxy: the bootstrap broker to give a client, so a reachability check sees the outage. */
  readonly broker: string;
  /**
   * Kafka goes away: the answers to requests in flight are dropped for `landMs` (the broker has
   * them, the client never hears back: a batch of unknown outcome), then every connection is
   * closed and new ones are refused until {@link restore}.
   */
  refuse(landMs?: number): Promise<void>;
  /** Accepts connections again, on the same port. */
  restore(): Promise<void>;
  /** Stops forwarding, closing nothing: connections open, nothing answered (a hung broker). */
  stall(): void;
  /** Forwards again, delivering what it held meanwhile. */
  resume(): void;
  close(): Promise<void>;
}

/**
 * An outage of the broker `host:port` for this process only (the shared stack is never touched):
 * every connection to the broker's port goes through a proxy (`net.connect` patched, as the broker
 * advertises its own address), and the proxy is what goes away. The proxy's own upstream
 * connections and `anyBrokerAccepts` use the unpatched binding; give the client {@link
 * OutageBroker.broker} as its bootstrap broker. `close` puts `net.connect` back.
 */
export async function outageBroker(broker: string): Promise<OutageBroker> {
  const [host, portText] = broker.split(':') as [string, string];
  const brokerPort = Number(portText);
  const sockets = new Set<Socket>();
  let dropAnswers = false;
  let stalled = false;
  const held: Array<[Socket, Buffer]> = [];
  const track = (s: Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => {});
  };
  const server = createServer((client) => {
    const upstream = connect(brokerPort, host);
    track(client);
    track(upstream);
    const forward = (to: Socket, answer: boolean) => (data: Buffer) => {
      if (answer && dropAnswers) return;
      if (stalled) held.push([to, data]);
      else to.write(data);
    };
    client.on('data', forward(upstream, false));
    upstream.on('data', forward(client, true));
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  });
  const listen = (port: number) =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
  await listen(0);
  const port = (server.address() as { port: number }).port;
  const original = net.connect;
  net.connect = ((options: net.TcpNetConnectOpts, onConnect?: () => void) =>
    original(
      Number(options.port) === brokerPort ? { ...options, host: '127.0.0.1', port } : options,
      onConnect,
    )) as typeof net.connect;
  const closeAll = async () => {
    const closed = server.listening ? new Promise((r) => server.close(r)) : Promise.resolve();
    for (const s of sockets) s.destroy();
    await closed;
  };
  return {
    broker: `127.0.0.1:${port}`,
    async refuse(landMs = 300) {
      dropAnswers = true;
      await sleep(landMs);
      await closeAll();
      dropAnswers = false;
    },
    restore: () => listen(port),
    stall: () => {
      stalled = true;
    },
    resume: () => {
      stalled = false;
      for (const [to, data] of held.splice(0)) if (!to.destroyed) to.write(data);
    },
    async close() {
      net.connect = original;
      await closeAll();
    },
  };
}
