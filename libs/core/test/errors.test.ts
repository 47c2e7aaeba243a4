import { describe, expect, it } from 'vitest';
import {
  ConfigError,
  DriftlineError,
  isRetriable,
  PoisonRecordError,
  SinkUnavailableError,
  toDriftlineError,
} from '../src/index.js';

/** A Node system error as net/dns raise it: an Error with a string `code`. */
function systemError(code: string, message = `connect ${code} 127.0.0.1:6379`): Error {
  return Object.assign(new Error(message), { code });
}

describe('error hierarchy', () => {
  it('carries code, retriable flag, cause and details', () => {
    const cause = new Error('root');
    const e = new DriftlineError('TIMEOUT', 'slow', { retriable: true, cause, details: { ms: 5 } });
    expect(e).toBeInstanceOf(Error);
    expect(e.name).toBe('DriftlineError');
    expect(e.code).toBe('TIMEOUT');
    expect(e.retriable).toBe(true);
    expect(e.cause).toBe(cause);
    expect(e.details).toEqual({ ms: 5 });
  });

  it('is not retriable and has no details unless told', () => {
    const e = new DriftlineError('INTERNAL', 'x');
    expect(e.retriable).toBe(false);
    expect(e.details).toEqual({});
    expect('cause' in e).toBe(false);
  });

  it('ConfigError names the field in the message', () => {
    const e = new ConfigError('DRIFTLINE_PORT', 'must be an integer');
    expect(e.code).toBe('CONFIG_INVALID');
    expect(e.field).toBe('DRIFTLINE_PORT');
    expect(e.message).toBe('DRIFTLINE_PORT: must be an integer');
    expect(e.retriable).toBe(false);
  });

  it('a poison record is never retriable, a sink outage always is, whatever the caller says', () => {
    const poison = new PoisonRecordError('DECODE_FAILED', 'bad magic byte', { retriable: true });
    expect(poison.retriable).toBe(false);
    expect(poison.code).toBe('DECODE_FAILED');
    expect(poison.name).toBe('PoisonRecordError');
    const sink = new SinkUnavailableError('redis down', { retriable: false });
    expect(sink.retriable).toBe(true);
    expect(sink.code).toBe('SINK_UNAVAILABLE');
  });
});

describe('toDriftlineError', () => {
  it.each(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'EAI_AGAIN', 'ENOTCONN'])(
    'a node network error %s is retriable',
    (code) => {
      const original = systemError(code);
      const e = toDriftlineError(original);
      expect(e.code).toBe('INTERNAL');
      expect(e.retriable).toBe(true);
      expect(e.message).toBe(original.message);
      expect(e.cause).toBe(original);
    },
  );

  it.each(['ENOSPC', 'EDQUOT', 'EIO', 'EMFILE', 'ENFILE', 'EAGAIN', 'ENOMEM', 'EROFS', 'EBUSY', 'ETXTBSY'])(
    'a full disk or file table (%s) is retriable: an outage, not a bad record',
    (code) => {
      expect(toDriftlineError(systemError(code)).retriable).toBe(true);
    },
  );

  it.each(['Connection is closed.', 'connection is closed', 'socket hang up', 'Command timed out'])(
    'a client error saying "%s" is retriable',
    (message) => {
      expect(toDriftlineError(new Error(message)).retriable).toBe(true);
    },
  );

  it('other node errors are not retriable', () => {
    expect(toDriftlineError(systemError('ENOENT', 'no such file')).retriable).toBe(false);
    expect(toDriftlineError(systemError('EACCES', 'permission denied')).retriable).toBe(false);
    expect(toDriftlineError(new TypeError('x is not a function')).retriable).toBe(false);
  });

  it('an error that flags itself retriable stays retriable (kafkajs style)', () => {
    expect(toDriftlineError(Object.assign(new Error('leader not available'), { retriable: true })).retriable).toBe(
      true,
    );
    expect(toDriftlineError(Object.assign(new Error('bad'), { retriable: 'yes' })).retriable).toBe(false);
  });

  it('returns a DriftlineError unchanged', () => {
    const e = new SinkUnavailableError('down');
    expect(toDriftlineError(e)).toBe(e);
  });

  it('wraps values that are not errors without throwing', () => {
    for (const [value, message] of [
      ['boom', 'boom'],
      [42, '42'],
      [undefined, 'undefined'],
      [null, 'null'],
      [{ a: 1 }, '[object Object]'],
    ] as const) {
      const e = toDriftlineError(value);
      expect(e.code).toBe('INTERNAL');
      expect(e.message).toBe(message);
      expect(e.retriable).toBe(false);
      expect(e.cause).toBe(value);
    }
  });

  it('isRetriable is the flag of the classification', () => {
    expect(isRetriable(systemError('ECONNRESET'))).toBe(true);
    expect(isRetriable(new PoisonRecordError('VALIDATION_FAILED', 'x'))).toBe(false);
    expect(isRetriable('string')).toBe(false);
  });
});
