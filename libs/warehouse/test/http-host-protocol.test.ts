import { parseError } from '@clickhouse/client';
import { describe, expect, it } from 'vitest';
import { classifyClickHouseError } from '../src/errors.js';
import {
  exceptionText,
  HostError,
  hostErrorFrom,
  parseHostRequest,
  setStatement,
  sqlLiteral,
} from '../src/http-host/protocol.js';

const url = (search: string) => new URL(`http://h/?${search}`);

describe('the ClickHouse host protocol', () => {
  it('reads the query from the URL and the body (INSERT data after a newline), params and settings', () => {
    const r = parseHostRequest(
      'POST',
      url(
        'query=INSERT%20INTO%20t%20FORMAT%20JSONEachRow&param_x=it%5C%27s&database=db&default_format=JSON' +
          '&output_format_json_quote_64bit_integers=0&enable_http_compression=1&wait_end_of_query=1&readonly=1&query_id=q1',
      ),
      '{"a":1}',
    );
    expect(r).toEqual({
      sql: 'INSERT INTO t FORMAT JSONEachRow\n{"a":1}',
      params: { x: "it\\'s" },
      settings: { output_format_json_quote_64bit_integers: '0' },
      database: 'db',
      format: 'JSON',
      queryId: 'q1',
      compression: true,
      emptyInsert: false,
    });
    expect(parseHostRequest('POST', url('query=INSERT%20INTO%20t%20FORMAT%20CSV'), ' \n').emptyInsert).toBe(true);
    expect(parseHostRequest('POST', url(''), 'SELECT 1').sql).toBe('SELECT 1');
    expect(parseHostRequest('GET', url('query=SELECT%201'), 'ignored').sql).toBe('SELECT 1');
    // An INSERT that carries its rows in the URL runs; only one awaiting rows in the body is empty.
    for (const q of ["INSERT INTO t SELECT 'x'", "INSERT INTO t VALUES ('x')"])
      expect(parseHostRequest('POST', url(`query=${encodeURIComponent(q)}`), '').emptyInsert).toBe(false);
    expect(parseHostRequest('POST', url('query=INSERT%20INTO%20t%20VALUES'), '').emptyInsert).toBe(true);
  });

  it('runs reads only on GET, as the ClickHouse server does (a page a browser opens can send a GET; found by a review)', () => {
    const get = (q: string) => () => parseHostRequest('GET', url(`query=${encodeURIComponent(q)}`), '');
    for (const q of [
      'DROP TABLE victim.t',
      "INSERT INTO FUNCTION file('/tmp/x.txt') SELECT 'x'",
      'TRUNCATE t',
      'SYSTEM SHUTDOWN',
    ])
      expect(get(q)).toThrow(expect.objectContaining({ code: 164, type: 'READONLY', status: 400 }));
    for (const q of [
      'SELECT 1',
      ' (SELECT 1)',
      'WITH 1 AS x SELECT x',
      'SHOW TABLES',
      'DESCRIBE t',
      'EXISTS t',
      'EXPLAIN SELECT 1',
    ])
      expect(get(q)().sql).toBe(q);
    expect(parseHostRequest('POST', url(''), 'DROP TABLE t').sql).toBe('DROP TABLE t');
  });

  it('refuses what it cannot pass on safely, with ClickHouse codes', () => {
    const error = (search: string, body = 'SELECT 1') => {
      try {
        parseHostRequest('POST', url(search), body);
      } catch (e) {
        return e as HostError;
      }
      return undefined;
    };
    expect(error('', '  ')).toMatchObject({ code: 62, type: 'SYNTAX_ERROR', status: 400 });
    expect(error('param_a%3Bb=1')).toMatchObject({ code: 36, status: 400 });
    expect(error('max_threads%3D1%3BDROP=1')).toMatchObject({ code: 115 });
    expect(error('database=x%3BDROP')).toMatchObject({ code: 81 });
    expect(error('default_format=JSON%20x')).toMatchObject({ code: 73 });
  });

  it('sets what changed, DEFAULT for settings no longer sent, and every parameter as a literal', () => {
    const current = new Map([
      ['a', '1'],
      ['b', 'x'],
    ]);
    expect(setStatement({ settings: { a: '1', c: "it's" }, params: { p: "['x\\'y']", q: 'a\\tb' } }, current)).toBe(
      "SET c = 'it\\'s', b = DEFAULT, param_p = '[\\'x\\\\\\'y\\']', param_q = 'a\\\\tb'",
    );
    expect(setStatement({ settings: { a: '1', b: 'x' }, params: {} }, current)).toBeUndefined();
    expect(sqlLiteral("a'\\")).toBe("'a\\'\\\\'");
  });

  it('answers an error in words @clickhouse/client parses and the warehouse classifies by code', () => {
    const engine = hostErrorFrom(
      Object.assign(new Error('Code: 72. DB::Exception: Cannot parse number: x. (CANNOT_PARSE_NUMBER)'), {
        clickhouseCode: 72,
      }),
    );
    expect(engine).toMatchObject({ code: 72, type: 'CANNOT_PARSE_NUMBER', status: 500 });
    const parsed = parseError(exceptionText(engine, '26.7.2.1'));
    expect(parsed).toMatchObject({ code: '72', type: 'CANNOT_PARSE_NUMBER' });
    expect(classifyClickHouseError(parsed, 'server')).toMatchObject({ category: 'rejected', code: 72 });
    // No ClickHouse code: the engine failed, not the request (retriable).
    const broken = hostErrorFrom(new Error('No active connection available'));
    expect(broken).toMatchObject({ code: 425, type: 'SYSTEM_ERROR', status: 503 });
    expect(classifyClickHouseError(parseError(exceptionText(broken, 'v')), 'server')).toMatchObject({
      category: 'unavailable',
    });
    const timeout = new HostError(159, 'TIMEOUT_EXCEEDED', 'Timeout exceeded');
    expect(classifyClickHouseError(parseError(exceptionText(timeout, 'v')), 'server')).toMatchObject({
      category: 'unavailable',
    });
  });
});
