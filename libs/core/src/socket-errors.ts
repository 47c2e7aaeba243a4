import { printable } from './printable.js';

// A socket's error code in words: what a person checks first.
const CAUSES: Readonly<Record<string, string>> = {
  ECONNREFUSED: 'connection refused',
  ENOTFOUND: 'name not resolved',
  EAI_AGAIN: 'name not resolved: DNS did not answer',
  ETIMEDOUT: 'timed out',
  EHOSTUNREACH: 'host unreachable',
  ENETUNREACH: 'network unreachable',
  ECONNRESET: 'connection reset',
  EADDRNOTAVAIL: 'address not available',
  ERR_SSL_WRONG_VERSION_NUMBER: 'the listener does not speak TLS',
};

/**
 * Why a connection failed, in words (`connection refused`, `name not resolved`, …): one wording
 * for the CLI's broker probes and the services' start-up reach check.
 */
export function connectionErrorCause(error: unknown): string {
  const code = (error as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && CAUSES[code] !== undefined) return CAUSES[code];
  // OpenSSL's message is a library trace (`…:error:0A00010B:SSL routines:…`); its code reads better.
  if (typeof code === 'string' && code.startsWith('ERR_SSL_')) return code.slice(8).toLowerCase().replaceAll('_', ' ');
  return printable(error instanceof Error ? error.message : String(error)).slice(0, 120);
}

/** Host and port of `host:port` (`[::1]:9092` for IPv6); undefined when it is not that shape. */
export function parseHostPort(address: string): { host: string; port: number } | undefined {
  const match = /^\[?([^\]]+?)\]?:(\d{1,5})$/.exec(address);
  return match === null ? undefined : { host: match[1]!, port: Number(match[2]) };
}
