import { connect } from 'node:net';

/** `host:port` (or `[v6]:port`) as connect options; undefined when it is not one. */
function hostPort(broker: string): { host: string; port: number } | undefined {
  const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(broker);
  return match === null ? undefined : { host: match[1]!, port: Number(match[2]) };
}

/** True when a TCP connection to the broker opens within `timeoutMs` (it says nothing of Kafka answering). */
function accepts(broker: string, timeoutMs: number): Promise<boolean> {
  const target = hostPort(broker);
  if (target === undefined) return Promise.resolve(false);
  return new Promise((resolve) => {
    const socket = connect(target);
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** True when any of the bootstrap brokers accepts a TCP connection (checked in parallel). */
export async function anyBrokerAccepts(brokers: readonly string[], timeoutMs = 1_000): Promise<boolean> {
  const results = await Promise.all(brokers.map((b) => accepts(b, timeoutMs)));
  return results.includes(true);
}
