import { describe, expect, it } from 'vitest';
import { connectionErrorCause, parseHostPort } from '../src/index.js';

describe('socket errors in words', () => {
  it('names the common codes, an OpenSSL code by its words, anything else by its message', () => {
    const withCode = (code: string) => Object.assign(new Error(`connect ${code} 127.0.0.1:1`), { code });
    expect(connectionErrorCause(withCode('ECONNREFUSED'))).toBe('connection refused');
    expect(connectionErrorCause(withCode('ERR_SSL_WRONG_VERSION_NUMBER'))).toBe('the listener does not speak TLS');
    expect(connectionErrorCause(withCode('ERR_SSL_PACKET_LENGTH_TOO_LONG'))).toBe('packet length too long');
    expect(connectionErrorCause(new Error('socket hang up\n'))).toBe('socket hang up\\u000a');
  });

  it('parses host:port, IPv6 in brackets, and refuses other shapes', () => {
    expect(parseHostPort('broker-1:9092')).toEqual({ host: 'broker-1', port: 9092 });
    expect(parseHostPort('[::1]:9092')).toEqual({ host: '::1', port: 9092 });
    expect(parseHostPort('broker-1')).toBeUndefined();
    expect(parseHostPort('broker-1:123456')).toBeUndefined();
  });
});
