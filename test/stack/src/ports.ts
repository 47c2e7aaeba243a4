import { readFileSync } from 'node:fs';
import net from 'node:net';

function listen(port: number, host: string): Promise<net.Server> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once('error', reject);
    server.listen({ port, host, exclusive: true }, () => {
      server.off('error', reject);
      resolve(server);
    });
  });
}

function close(server: net.Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()));
}

/** Linux's default ephemeral range, used where /proc does not say (macOS: 49152–65535). */
const DEFAULT_EPHEMERAL = process.platform === 'darwin' ? { low: 49_152, high: 65_535 } : { low: 32_768, high: 60_999 };

/**
 * The kernel's ephemeral port range: the local ports of outgoing connections, and what binding
 * port 0 picks from. `rangeText` is /proc/sys/net/ipv4/ip_local_port_range's text ("32768\t60999").
 */
export function ephemeralPortRange(rangeText?: string): { low: number; high: number } {
  let text = rangeText;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8');
    } catch {
      return DEFAULT_EPHEMERAL;
    }
  }
  const [low, high] = text.trim().split(/\s+/).map(Number);
  const valid = (n: number | undefined): n is number => Number.isInteger(n) && n! >= 1 && n! <= 65_535;
  return valid(low) && valid(high) && low <= high ? { low, high } : DEFAULT_EPHEMERAL;
}

/**
 * The pick range's bounds: above the well-known and the busiest registered ports, and below
 * Kubernetes' NodePort range (30000–32767), which kube-proxy can redirect on loopback with no
 * socket holding the port (a pick would see it free).
 */
const PICK_LOW = 10_000;
const PICK_HIGH = 29_999;

/**
 * Where free ports are picked: below the ephemeral range, so that a server restarted on the port
 * it keeps (`restartComponent`, the chaos run's faults, a test's outage) never finds it taken by an
 * outgoing connection's local port or another port-0 bind made meanwhile (found by a run: Redis
 * came back to "Address already in use"). Undefined when too few ports lie below the range: then
 * port 0, as before (a range of 1024–65535, as some CI images set, leaves no room).
 */
export function pickRange(ephemeral: { low: number; high: number }): { low: number; high: number } | undefined {
  const high = Math.min(PICK_HIGH, ephemeral.low - 1);
  return high - PICK_LOW >= 1_000 ? { low: PICK_LOW, high } : undefined;
}

/** Attempts at a random port of the pick range before falling back to port 0 (the kernel's pick). */
const PICK_ATTEMPTS = 200;

async function listenFree(host: string, range: { low: number; high: number } | undefined): Promise<net.Server> {
  if (range !== undefined) {
    for (let i = 0; i < PICK_ATTEMPTS; i++) {
      const port = range.low + Math.floor(Math.random() * (range.high - range.low + 1));
      try {
        return await listen(port, host);
      } catch {
        // Taken (or not ours to bind): another.
      }
    }
  }
  return listen(0, host);
}

/**
 * Finds `count` distinct free TCP ports on `host` at random below the ephemeral range (pickRange;
 * port 0 where there is no room), keeping all sockets open until every port is known, so the same
 * port is never handed out twice.
 */
export async function pickFreePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const range = pickRange(ephemeralPortRange());
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) servers.push(await listenFree(host, range));
    return servers.map((s) => {
      const address = s.address();
      if (address === null || typeof address === 'string') throw new Error('could not read the bound port');
      return address.port;
    });
  } finally {
    await Promise.all(servers.map(close));
  }
}

export async function pickFreePort(host = '127.0.0.1'): Promise<number> {
  const [port] = await pickFreePorts(1, host);
  if (port === undefined) throw new Error('no port picked');
  return port;
}

/** True when `port` can be bound on `host` right now. */
export async function isPortFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  try {
    await close(await listen(port, host));
    return true;
  } catch {
    return false;
  }
}

export interface PortRequest {
  name: string;
  /** A fixed port (from the environment); picked freely when undefined. */
  fixed?: number | undefined;
  /** The variable that fixed it, named in the error when it is taken. */
  variable?: string | undefined;
}

/**
 * Checks that every fixed port is requested once and free, except those in `ownPorts` (held by the
 * recorded stack that is about to be stopped): run before stopping it, so a taken port fails
 * without pulling down a healthy stack. Throws naming the port's variable.
 */
export async function checkFixedPorts(
  requests: PortRequest[],
  host = '127.0.0.1',
  ownPorts: ReadonlySet<number> = new Set(),
): Promise<Set<number>> {
  const fixed = new Set<number>();
  for (const r of requests) {
    if (r.fixed === undefined) continue;
    const setBy = r.variable === undefined ? '' : ` (${r.variable}=${r.fixed})`;
    if (fixed.has(r.fixed)) throw new Error(`port ${r.fixed} is requested twice (${r.name}${setBy})`);
    if (!ownPorts.has(r.fixed) && !(await isPortFree(r.fixed, host))) {
      throw new Error(`port ${r.fixed} for ${r.name}${setBy} is already in use on ${host}; unset it or pick another`);
    }
    fixed.add(r.fixed);
  }
  return fixed;
}

/**
 * Resolves fixed ports (checking they are free, with a clear error naming the variable's service)
 * and picks free ones for the rest, all distinct.
 */
export async function assignPorts(requests: PortRequest[], host = '127.0.0.1'): Promise<Map<string, number>> {
  const result = new Map<string, number>();
  const fixed = await checkFixedPorts(requests, host);
  for (const r of requests) if (r.fixed !== undefined) result.set(r.name, r.fixed);
  const free = requests.filter((r) => r.fixed === undefined);
  // Pick a few spare ports so a picked port that collides with a fixed one can be skipped.
  const picked = (await pickFreePorts(free.length + fixed.size, host)).filter((p) => !fixed.has(p));
  free.forEach((r, i) => {
    const port = picked[i];
    if (port === undefined) throw new Error(`could not pick a port for ${r.name}`);
    result.set(r.name, port);
  });
  return result;
}
