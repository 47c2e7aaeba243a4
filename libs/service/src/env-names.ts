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

/** Hosts a listener binds every address on: they share a port with no other host. */
const WILDCARD_HOSTS = new Set(['', '0.0.0.0', '::']);

/**
 * The address a host variable binds, in one spelling per address (IPv4 shorthand such as `127.1`
 * or `0`, IPv6 canonical, an IPv4-mapped IPv6 as its IPv4); undefined = every address. A zone id
 * (`fe80::1%eth0`) or a name is compared as written: names resolving to one address are found at
 * bind only.
 */
function boundAddress(host: unknown): string | undefined {
  // No host variable: Node listens on every address.
  if (typeof host !== 'string') return undefined;
  const address = canonicalHost(host.toLowerCase());
  return WILDCARD_HOSTS.has(address) ? undefined : address;
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
 * Refuses two port variables of one process set to the same port on hosts that can collide
 * (equal, or either a wildcard or without a host variable), e.g. DRIFTLINE_FEATURE_API_PORT =
 * DRIFTLINE_HTTP_PORT on the default hosts: the second listener failed as "in use by another
 * process", naming one. 127.0.0.1 and 127.0.0.2 on one port do not collide. Two host names that
 * resolve to one address are found at bind only. `parsed`: the parsed variables of each shape the
 * process reads (port variables are numbers).
 */
export function rejectSharedPorts(parsed: Iterable<Readonly<Record<string, unknown>>>): void {
  const values: Record<string, unknown> = {};
  for (const shapeValues of parsed) Object.assign(values, shapeValues);
  const listeners = new Map<number, Array<{ name: string; address: string | undefined }>>();
  for (const [name, port] of Object.entries(values)) {
    const prefix = PORT_VARIABLE.exec(name)?.[1];
    if (prefix === undefined || typeof port !== 'number' || port === 0) continue;
    const address = boundAddress(values[`${prefix}HOST`]);
    const onPort = listeners.get(port) ?? [];
    const other = onPort.find((l) => l.address === undefined || address === undefined || l.address === address);
    if (other !== undefined) {
      throw new ConfigError(
        name,
        `is ${port}, as is ${other.name}: two listeners of this process cannot share a port on one host ` +
          '(pick another port or host, or 0 for any free port)',
      );
    }
    onPort.push({ name, address });
    listeners.set(port, onPort);
  }
}
