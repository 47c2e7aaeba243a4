import { isIP } from 'node:net';
import {
  ConfigError,
  DRIFTLINE_ENV_NAMES,
  type Env,
  FOREIGN_ENV_PREFIXES,
  rejectUnknownDriftlineVariables,
} from '@driftline/core';

export { FOREIGN_ENV_PREFIXES };

/** Every known DRIFTLINE_* name (DRIFTLINE_ENV_NAMES, @driftline/core) and those of the given shapes (a test's own service). */
export function knownEnvNames(shapes: Iterable<Readonly<Record<string, unknown>>> = []): Set<string> {
  const names = new Set(DRIFTLINE_ENV_NAMES);
  for (const shape of shapes) for (const name of Object.keys(shape)) names.add(name);
  return names;
}

/**
 * Refuses a DRIFTLINE_* variable that is not known and no shape declares, naming the closest known
 * ones: rejectUnknownDriftlineVariables (@driftline/core, which the CLI applies) with the shapes' names.
 */
export function rejectUnknownDriftlineEnv(
  shapes: Iterable<Readonly<Record<string, unknown>>>,
  env: Env = process.env,
  ignorePrefixes: readonly string[] = [],
): void {
  rejectUnknownDriftlineVariables(env, knownEnvNames(shapes), ignorePrefixes);
}

/** A listener's port variable (0, any free port, never collides); its host is `<prefix>HOST`. */
const PORT_VARIABLE = /^(DRIFTLINE_\w+_)PORT$/;

/**
 * Where a listener binds: `all` every address of both families (`::`, empty, no host variable:
 * Node listens on `::`, dual-stack on Linux), `all-ipv4` every IPv4 address (`0.0.0.0`, `0`), or
 * one address (`family` 0: a name, resolved at bind only).
 */
type Bound =
  | { readonly kind: 'all' }
  | { readonly kind: 'all-ipv4' }
  | { readonly kind: 'one'; readonly address: string; readonly family: 0 | 4 | 6 };

/**
 * The address a host variable binds, in one spelling per address (IPv4 shorthand such as `127.1`
 * or `0`, IPv6 canonical, an IPv4-mapped IPv6 as its IPv4). A zone id (`fe80::1%eth0`) or a name
 * is compared as written: names resolving to one address are found at bind only.
 */
function boundAddress(host: unknown): Bound {
  // No host variable: Node listens on every address.
  if (typeof host !== 'string') return { kind: 'all' };
  const address = canonicalHost(host.toLowerCase());
  if (address === '' || address === '::') return { kind: 'all' };
  if (address === '0.0.0.0') return { kind: 'all-ipv4' };
  const family = isIP(address);
  return { kind: 'one', address, family: family === 4 || family === 6 ? family : 0 };
}

/**
 * Whether two listeners on one port can collide at bind (Linux): `all` takes every address; the
 * IPv4 wildcard takes the IPv4 ones (a name may resolve to one) but leaves IPv6 addresses free
 * (`0.0.0.0` and `::1` both bind); one address collides with itself.
 */
function collide(a: Bound, b: Bound): boolean {
  if (a.kind === 'all' || b.kind === 'all') return true;
  if (a.kind === 'all-ipv4') return b.kind === 'all-ipv4' || b.family !== 6;
  if (b.kind === 'all-ipv4') return a.family !== 6;
  return a.address === b.address;
}

function canonicalHost(host: string): string {
  if (host.includes('%')) return host; // a zone id: WHATWG URLs refuse it, and it is one interface's
  try {
    // The URL parser spells IPv4 shorthand (`127.1`, `0`) and IPv6 in full canonical form.
    const parsed = new URL(`http://${isIP(host) === 6 ? `[${host}]` : host}`).hostname;
    const v6 = parsed.startsWith('[') ? parsed.slice(1, -1) : undefined;
    if (v6 === undefined) return parsed;
    // ::ffff:7f00:1 is 127.0.0.1 (a dual-stack socket binds the IPv4 address).
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(v6);
    if (mapped === null) return v6;
    const [hi, lo] = [Number.parseInt(mapped[1]!, 16), Number.parseInt(mapped[2]!, 16)];
    return `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`;
  } catch {
    return host; // not a URL host (a name with odd characters): compared as written
  }
}

/**
 * Why a host variable's value is not a host, or undefined: a port (`127.0.0.1:7000`, `[::1]:80`), a
 * scheme or a path is not part of a host (the port is `<prefix>PORT`), and Node's listen would
 * look the whole text up as a name. An IPv6 address is written bare (`::1`, `fe80::1%eth0`).
 */
function hostProblem(host: string): string | undefined {
  if (isIP(host) !== 0) return undefined;
  if (/^[a-z][a-z\d+.-]*:\/\//i.test(host)) return 'must be a host name or an IP address, not a URL (no scheme)';
  if (host.includes('/')) return 'must be a host name or an IP address, without a path';
  if (host.startsWith('[')) return 'must be a host name or an IP address: an IPv6 address goes without brackets (::1)';
  if (host.includes(':')) return 'must be a host name or an IP address, without a port (the port has its own variable)';
  return undefined;
}

/**
 * Refuses two port variables of one process set to the same port on hosts that can collide
 * (see collide), e.g. DRIFTLINE_FEATURE_API_PORT = DRIFTLINE_HTTP_PORT on the default hosts: the
 * second listener failed as "in use by another process", naming one. 127.0.0.1 and 127.0.0.2 on
 * one port do not collide, nor do 0.0.0.0 and ::1. Two host names that resolve to one address are
 * found at bind only. A listener's host variable that is not a host (see hostProblem) is refused
 * first, naming it: `127.0.0.1:7000` was reported as a shared port (its `:7000` dropped by the
 * comparison) or failed at bind as an unknown name. `parsed`: the parsed variables of each shape
 * the process reads (port variables are numbers).
 */
export function rejectSharedPorts(parsed: Iterable<Readonly<Record<string, unknown>>>): void {
  const values: Record<string, unknown> = {};
  for (const shapeValues of parsed) Object.assign(values, shapeValues);
  const listeners = new Map<number, Array<{ name: string; bound: Bound }>>();
  for (const [name, port] of Object.entries(values)) {
    const prefix = PORT_VARIABLE.exec(name)?.[1];
    if (prefix === undefined || typeof port !== 'number') continue;
    const host = values[`${prefix}HOST`];
    const problem = typeof host === 'string' ? hostProblem(host) : undefined;
    if (problem !== undefined) throw new ConfigError(`${prefix}HOST`, problem);
    if (port === 0) continue;
    const bound = boundAddress(host);
    const onPort = listeners.get(port) ?? [];
    const other = onPort.find((l) => collide(l.bound, bound));
    if (other !== undefined) {
      throw new ConfigError(
        name,
        `is ${port}, as is ${other.name}: two listeners of this process cannot share a port on one host ` +
          '(pick another port or host, or 0 for any free port)',
      );
    }
    onPort.push({ name, bound });
    listeners.set(port, onPort);
  }
}
