import { ConfigError } from '@driftline/core';

/** The variables that chose a listener's address, named when it cannot be bound. */
export interface ListenVariables {
  readonly port: string;
  readonly host: string;
}

/** Why the OS refused to bind, by error code, and which variable to change. */
const REFUSALS: ReadonlyMap<string, { readonly variable: keyof ListenVariables; readonly why: string }> = new Map([
  [
    'EADDRINUSE',
    { variable: 'port', why: 'the port is in use by another process (pick another, or 0 for any free one)' },
  ],
  ['EACCES', { variable: 'port', why: 'permission denied (ports below 1024 need privileges)' }],
  ['EADDRNOTAVAIL', { variable: 'host', why: 'no network interface of this machine has this address' }],
  // getaddrinfo's "no such name": a host name that does not resolve (a typo, a name of another machine).
  ['ENOTFOUND', { variable: 'host', why: 'the host name does not resolve to an address' }],
]);

/**
 * A listener that cannot be bound for a reason of its configuration (a port in use or not allowed,
 * an address the machine does not have, a host name that does not resolve) becomes a ConfigError naming the variable to change: it was
 * reported as an internal error, a bug to report. Anything else is returned as it is.
 */
export function listenError(error: unknown, variables: ListenVariables, host: string, port: number): unknown {
  const code = (error as { code?: unknown } | null)?.code;
  const refusal = typeof code === 'string' ? REFUSALS.get(code) : undefined;
  if (refusal === undefined) return error;
  const address = host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
  return new ConfigError(variables[refusal.variable], `cannot listen on ${address}: ${refusal.why}`, {
    cause: error,
  });
}
