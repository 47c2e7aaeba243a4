// A loopback proxy in front of one Kafka broker that can go silent (a broker that accepts
// connections and never answers). The broker's address in its answers (metadata, coordinator) is
// rewritten to the proxy's, so every connection a client opens goes through it.
import { connect, createServer, type Socket } from 'node:net';

export interface KafkaProxy {
  /** `host:port` to give as DRIFTLINE_KAFKA_BROKERS. */
  readonly broker: string;
  /** From now on nothing is forwarded, either way; connections stay open and new ones are accepted. */
  stall(): void;
  /** Forwards again, delivering what it held meanwhile (as TCP retransmits once a path heals). */
  resume(): void;
  close(): Promise<void>;
}

/** A proxy to `broker` (`127.0.0.1:port`, as the stack advertises it). */
export async function kafkaProxy(broker: string): Promise<KafkaProxy> {
  const [host, portText] = broker.split(':') as [string, string];
  const brokerPort = Number(portText);
  const hostBytes = Buffer.from(host);
  let stalled = false;
  const held: Array<[Socket, Buffer]> = [];
  const forward = (to: Socket, data: Buffer) => {
    if (stalled) held.push([to, data]);
    else to.write(data);
  };
  const sockets = new Set<Socket>();
  let ownPort = 0;
  // The advertised port follows the host's bytes in every answer that names the broker.
  const rewrite = (frame: Buffer) => {
    for (let i = frame.indexOf(hostBytes); i !== -1; i = frame.indexOf(hostBytes, i + 1)) {
      const at = i + hostBytes.length;
      if (at + 4 <= frame.length && frame.readInt32BE(at) === brokerPort) frame.writeInt32BE(ownPort, at);
    }
    return frame;
  };
  const server = createServer((client) => {
    const upstream = connect(brokerPort, host);
    sockets.add(client).add(upstream);
    let pending = Buffer.alloc(0);
    client.on('data', (data) => forward(upstream, data));
    upstream.on('data', (data) => {
      pending = Buffer.concat([pending, data]);
      // Whole size-prefixed answers only, so a rewrite never straddles two chunks.
      while (pending.length >= 4 && pending.length >= 4 + pending.readInt32BE(0)) {
        const size = 4 + pending.readInt32BE(0);
        const frame = rewrite(Buffer.from(pending.subarray(0, size)));
        pending = pending.subarray(size);
        forward(client, frame);
      }
    });
    for (const [a, b] of [
      [client, upstream],
      [upstream, client],
    ] as const) {
      a.on('error', () => {});
      a.on('close', () => {
        sockets.delete(a);
        b.destroy();
      });
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  ownPort = (server.address() as { port: number }).port;
  return {
    broker: `127.0.0.1:${ownPort}`,
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
