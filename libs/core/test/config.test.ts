import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import {
  ConfigError,
  closestNames,
  editDistance,
  envField,
  MAX_TIMER_MS,
  parseEnv,
  readConfigFile,
  redactConfigValue,
  redactCredentials,
  redisEnvShape,
  redisUrlProblem,
  rejectUnknownEnv,
} from '../src/index.js';

/** Runs `fn`, expecting a ConfigError, and returns it so the test can check field and message. */
function configError(fn: () => unknown): ConfigError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return e as ConfigError;
  }
  throw new Error('expected a ConfigError');
}

describe('parseEnv', () => {
  const shape = {
    DRIFTLINE_PORT: envField.int(1, 65_535).default(8080),
    DRIFTLINE_NAME: envField.string(),
  };

  it('parses the declared variables, applies defaults and ignores the rest', () => {
    const cfg = parseEnv(shape, { DRIFTLINE_NAME: 'api', PATH: '/bin', DRIFTLINE_PORT: undefined });
    expect(cfg).toEqual({ DRIFTLINE_PORT: 8080, DRIFTLINE_NAME: 'api' });
  });

  it('names the bad variable and the value it got', () => {
    const e = configError(() => parseEnv(shape, { DRIFTLINE_NAME: 'api', DRIFTLINE_PORT: '80a' }));
    expect(e.field).toBe('DRIFTLINE_PORT');
    expect(e.message).toBe('DRIFTLINE_PORT: must be an integer (got "80a")');
  });

  it('names a missing required variable without a value', () => {
    const e = configError(() => parseEnv(shape, {}));
    expect(e.field).toBe('DRIFTLINE_NAME');
    expect(e.message).toMatch(/^DRIFTLINE_NAME: /);
    expect(e.message).not.toContain('(got');
  });

  it('reports a range violation with the bound', () => {
    const e = configError(() => parseEnv(shape, { DRIFTLINE_NAME: 'api', DRIFTLINE_PORT: '70000' }));
    expect(e.field).toBe('DRIFTLINE_PORT');
    expect(e.message).toContain('65535');
    expect(e.message).toContain('(got "70000")');
  });
});

describe('rejectUnknownEnv', () => {
  const known = ['DRIFTLINE_B', 'DRIFTLINE_A'];

  it('names the unknown variable and the nearest known ones, not every known one', () => {
    const e = configError(() => rejectUnknownEnv('DRIFTLINE_', known, { DRIFTLINE_A: '1', DRIFTLINE_AA: '2' }));
    expect(e.field).toBe('DRIFTLINE_AA');
    expect(e.message).toBe('DRIFTLINE_AA: unknown variable (did you mean DRIFTLINE_A?)');
    const two = configError(() => rejectUnknownEnv('DRIFTLINE_', known, { DRIFTLINE_C: '1' }));
    expect(two.message).toBe('DRIFTLINE_C: unknown variable (did you mean DRIFTLINE_A or DRIFTLINE_B?)');
    // ~160 names were listed: a transposed URL names only the one it meant.
    const many = [...Array.from({ length: 160 }, (_, i) => `DRIFTLINE_VAR_${i}`), 'DRIFTLINE_CLICKHOUSE_URL'];
    const typo = configError(() => rejectUnknownEnv('DRIFTLINE_', many, { DRIFTLINE_CLICKHOUSE_ULR: 'http://h' }));
    expect(typo.message).toBe('DRIFTLINE_CLICKHOUSE_ULR: unknown variable (did you mean DRIFTLINE_CLICKHOUSE_URL?)');
    const far = configError(() => rejectUnknownEnv('DRIFTLINE_', many, { DRIFTLINE_SOMETHING_ELSE: '1' }));
    expect(far.message).toMatch(/^DRIFTLINE_SOMETHING_ELSE: unknown variable \(none known is close/);
    expect(far.message.length).toBeLessThan(120);
  });

  it('editDistance counts an adjacent transposition as one edit and stops past its limit', () => {
    expect(editDistance('ULR', 'URL')).toBe(1);
    expect(editDistance('kitten', 'sitting')).toBe(3);
    expect(editDistance('', 'abc')).toBe(3);
    expect(editDistance('abcdef', 'uvwxyz', 2)).toBe(3);
    expect(closestNames('DRIFTLINE_HTTP_PROT', ['DRIFTLINE_HTTP_PORT', 'DRIFTLINE_HTTP_HOST'])).toEqual([
      'DRIFTLINE_HTTP_PORT',
    ]);
  });

  it('suggests names at most 3 edits away, never 4 (the limit tied with the answer past it)', () => {
    const three = 'DRIFTLINE_ABCXYZ';
    const four = 'DRIFTLINE_ABWXYZ';
    expect(editDistance('DRIFTLINE_ABCDEF', three)).toBe(3);
    expect(editDistance('DRIFTLINE_ABCDEF', four)).toBe(4);
    expect(closestNames('DRIFTLINE_ABCDEF', [four, three])).toEqual([three]);
    expect(closestNames('DRIFTLINE_ABCDEF', [four])).toEqual([]);
    const e = configError(() => rejectUnknownEnv('DRIFTLINE_', [four], { DRIFTLINE_ABCDEF: '1' }));
    expect(e.message).toMatch(/^DRIFTLINE_ABCDEF: unknown variable \(none known is close/);
  });

  it('passes known variables, other prefixes and the ignored prefixes', () => {
    expect(() =>
      rejectUnknownEnv(
        'DRIFTLINE_',
        known,
        { DRIFTLINE_A: '1', HOME: '/root', DRIFTLINE_STACK_DIR: '/tmp', DRIFTLINE_DEMO_X: '1' },
        ['DRIFTLINE_STACK_', 'DRIFTLINE_DEMO_'],
      ),
    ).not.toThrow();
  });

  it('an ignored prefix does not hide an unknown variable of another prefix', () => {
    const e = configError(() => rejectUnknownEnv('DRIFTLINE_', known, { DRIFTLINE_STACKS: '1' }, ['DRIFTLINE_STACK_']));
    expect(e.field).toBe('DRIFTLINE_STACKS');
  });
});

describe('envField', () => {
  const parse = <T extends z.ZodType>(field: T, value: string) => field.safeParse(value);

  it('int accepts integers within bounds only', () => {
    expect(parse(envField.int(0, 10), '7').data).toBe(7);
    expect(parse(envField.int(0, 10), '-1').success).toBe(false);
    expect(parse(envField.int(), '1.5').error?.issues[0]?.message).toBe('must be an integer');
  });

  it('number accepts decimals within bounds; blank or hex is refused, not read as 0 or 1', () => {
    const share = envField.number(0, 1);
    for (const [text, value] of [
      ['0.5', 0.5],
      ['1', 1],
      ['.25', 0.25],
      ['5e-1', 0.5],
      ['0', 0],
    ] as const)
      expect(parse(share, text).data).toBe(value);
    for (const text of ['', ' ', '0x1', '1/2', 'NaN', 'Infinity', '0.5 '])
      expect(parse(share, text).error?.issues[0]?.message).toBe('must be a decimal number');
    expect(parse(share, '1.5').success).toBe(false);
  });

  it('duration takes an upper bound: a timer beyond MAX_TIMER_MS would fire after 1 ms', () => {
    const interval = envField.duration(10, MAX_TIMER_MS);
    expect(parse(interval, '24d').data).toBe(24 * 86_400_000);
    expect(parse(interval, '25d').error?.issues[0]?.message).toBe(`must be at most ${MAX_TIMER_MS} ms`);
    expect(parse(envField.duration(1), '90d').data).toBe(90 * 86_400_000); // a delay, not a timer: no bound
  });

  it('bool accepts the usual spellings and rejects others', () => {
    for (const v of ['true', '1', 'yes']) expect(parse(envField.bool(), v).data).toBe(true);
    for (const v of ['false', '0', 'no']) expect(parse(envField.bool(), v).data).toBe(false);
    expect(parse(envField.bool(), 'TRUE').error?.issues[0]?.message).toBe('must be true or false');
  });

  it('list splits on commas and trims; an empty item or a duplicate is refused, and it needs one value', () => {
    expect(parse(envField.list(), ' a, b ,c ').data).toEqual(['a', 'b', 'c']);
    for (const text of ['a:1,,b:2', 'a,', ',a', ' , '])
      expect(parse(envField.list(), text).error?.issues[0]?.message).toBe(
        'has an empty item (two commas, or one at an end)',
      );
    expect(parse(envField.list(), 'a:1, a:1').error?.issues[0]?.message).toBe('lists "a:1" twice');
    expect(parse(envField.list(), '').error?.issues[0]?.message).toBe('must list at least one value');
    expect(parse(envField.list({ min: 0 }), '').data).toEqual([]);
    // A key: two items for one model are a duplicate even with different values (the last won).
    const byModel = envField.list({ key: (item) => item.split(':')[0]! });
    expect(parse(byModel, 'a:regression,a:classification').error?.issues[0]?.message).toBe('lists "a" twice');
    expect(parse(byModel, 'a:regression,b:classification').data).toEqual(['a:regression', 'b:classification']);
  });

  it('name refuses white space at either end or only white space (one rule for names and tokens)', () => {
    expect(parse(envField.name(), 'drift-monitor').data).toBe('drift-monitor');
    expect(parse(envField.name(), 'a b').data).toBe('a b');
    for (const text of [' drift-monitor ', 'tok ', '\tx', '   '])
      expect(parse(envField.name(), text).error?.issues[0]?.message).toBe('must not start or end with white space');
    expect(parse(envField.name(), '').success).toBe(false);
    expect(parse(envField.name({ empty: true }), '').data).toBe('');
  });

  it('httpUrl takes http(s) only, with no query or fragment; path: false refuses a path too', () => {
    expect(parse(envField.httpUrl(), 'http://h:8081/apis/ccompat/v7').data).toBe('http://h:8081/apis/ccompat/v7');
    expect(parse(envField.httpUrl(), 'https://u:p@h').success).toBe(true);
    for (const [text, message] of [
      ['localhost:8123', 'must be an http:// or https:// URL'],
      ['ftp://h:1', 'must be an http:// or https:// URL'],
      ['h:8081/apis', 'must be an http:// or https:// URL'],
      ['not a url', 'must be an http:// or https:// URL'],
      ['http://h:1/?foo=bar', 'must have no query (?…)'],
      ['http://h:1/?', 'must have no query (?…)'],
      ['http://h:1/#x', 'must have no fragment (#…)'],
    ] as const)
      expect(parse(envField.httpUrl(), text).error?.issues[0]?.message).toBe(message);
    expect(parse(envField.httpUrl({ path: false }), 'http://h:8123').success).toBe(true);
    expect(parse(envField.httpUrl({ path: false }), 'http://h:8123/').success).toBe(true);
    expect(parse(envField.httpUrl({ path: false }), 'http://h:8123/db').error?.issues[0]?.message).toBe(
      'must have no path',
    );
  });

  it('httpUrl refuses padding: the URL parser trims it, the value is used as given (a 404 on every call)', () => {
    for (const [text, trimmed] of [
      ['http://h:8081/apis/ccompat/v7 ', 'http://h:8081/apis/ccompat/v7'],
      [' http://h:8081', 'http://h:8081'],
      ['http://h:8081\t', 'http://h:8081'],
      ['http://h:8081\n', 'http://h:8081'],
      ['http://h\u0001', 'http://h'],
    ] as const) {
      // Why it passed before: the parser accepts it, as the trimmed URL.
      expect(new URL(text).href).toBe(new URL(trimmed).href);
      expect(parse(envField.httpUrl(), text).error?.issues[0]?.message).toBe('must not start or end with white space');
    }
    const e = configError(() =>
      parseEnv({ DRIFTLINE_A_URL: envField.httpUrl() }, { DRIFTLINE_A_URL: 'http://h:8081/apis/ccompat/v7 ' }),
    );
    expect(e.message).toBe(
      'DRIFTLINE_A_URL: must not start or end with white space (got "http://h:8081/apis/ccompat/v7 ")',
    );
  });

  it('timeout is a duration from 100 ms to MAX_TIMER_MS', () => {
    expect(parse(envField.timeout(), '100').data).toBe(100);
    expect(parse(envField.timeout(), '24d').data).toBe(24 * 86_400_000);
    expect(parse(envField.timeout(), '99').error?.issues[0]?.message).toBe('must be at least 100 ms');
    expect(parse(envField.timeout(), '25d').error?.issues[0]?.message).toBe(`must be at most ${MAX_TIMER_MS} ms`);
  });

  it('string rejects the empty string', () => {
    expect(parse(envField.string(), '').success).toBe(false);
  });

  it('duration parses the grammar into ms and enforces the minimum', () => {
    expect(parse(envField.duration(), '1.5h').data).toBe(5_400_000);
    expect(parse(envField.duration(), '5 minutes').error?.issues[0]?.message).toBe(
      'must be a duration such as 500ms, 30s, 5m, 1h, 7d or 2w',
    );
    expect(parse(envField.duration(1_000), '500ms').error?.issues[0]?.message).toBe('must be at least 1000 ms');
  });

  it('a duration error through parseEnv names the variable and the value', () => {
    const e = configError(() => parseEnv({ DRIFTLINE_WINDOW: envField.duration() }, { DRIFTLINE_WINDOW: '5x' }));
    expect(e.message).toBe('DRIFTLINE_WINDOW: must be a duration such as 500ms, 30s, 5m, 1h, 7d or 2w (got "5x")');
  });
});

describe('config errors never print credentials (issue 11, defect 9)', () => {
  const shape = {
    DRIFTLINE_REDIS_URL: envField.string().regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL'),
    DRIFTLINE_CLICKHOUSE_URL: envField.httpUrl().optional(),
    DRIFTLINE_KAFKA_SASL_PASSWORD: envField.string().max(4).optional(),
    DRIFTLINE_FEATURE_API_TOKEN: envField.string().min(16).optional(),
  };

  it('redacts the password of a URL it echoes, keeps the rest of the value', () => {
    const e = configError(() => parseEnv(shape, { DRIFTLINE_REDIS_URL: 'http://:s3cret@redis.internal:6379' }));
    expect(e.field).toBe('DRIFTLINE_REDIS_URL');
    expect(e.message).not.toContain('s3cret');
    expect(e.message).toContain('redis.internal:6379');
    const ch = configError(() =>
      parseEnv(shape, { DRIFTLINE_REDIS_URL: 'redis://h', DRIFTLINE_CLICKHOUSE_URL: 'http://admin:hunter2@ch:port' }),
    );
    expect(ch.message).not.toContain('hunter2');
    expect(ch.message).not.toContain('admin');
  });

  it('never echoes the value of a password or token variable', () => {
    const e = configError(() =>
      parseEnv(shape, { DRIFTLINE_REDIS_URL: 'redis://h', DRIFTLINE_KAFKA_SASL_PASSWORD: 'hunter2' }),
    );
    expect(e.field).toBe('DRIFTLINE_KAFKA_SASL_PASSWORD');
    expect(e.message).not.toContain('hunter2');
    const t = configError(() =>
      parseEnv(shape, { DRIFTLINE_REDIS_URL: 'redis://h', DRIFTLINE_FEATURE_API_TOKEN: 'short-tok' }),
    );
    expect(t.message).not.toContain('short-tok');
  });

  it('redacts credentials in any error message, wherever the value came from', () => {
    const e = new ConfigError(
      'DRIFTLINE_X',
      'cannot reach rediss://default:pa55@r:6380/0 (and http://u:p@h/?token=abc&x=1)',
    );
    expect(e.message).toBe('DRIFTLINE_X: cannot reach rediss://***@r:6380/0 (and http://***@h/?token=***&x=1)');
    expect(e.stack).not.toContain('pa55');
    expect(redactCredentials('redis://localhost:6379 and a:b@c')).toBe('redis://localhost:6379 and a:b@c');
  });

  it('redacts a user-info up to its last `@`: a password holding an `@` leaks nothing', () => {
    expect(redactCredentials('redis://:p@ss@host:6379/0')).toBe('redis://***@host:6379/0');
    expect(redactCredentials('connect http://u:a@b@c@h:1/x failed')).toBe('connect http://***@h:1/x failed');
    // The `@` of a path is not the user-info's.
    expect(redactCredentials('http://h:1/a@b')).toBe('http://h:1/a@b');
    expect(redactCredentials('http://h/x?api-key=abc&X-Amz-Signature=zzz&auth=tok&n=1')).toBe(
      'http://h/x?api-key=***&X-Amz-Signature=***&auth=***&n=1',
    );
  });

  it('echoes an invalid URL value redacted before it is quoted, to its last `@`', () => {
    const redis = { DRIFTLINE_REDIS_URL: envField.string().regex(/^rediss?:\/\//, 'must be a redis:// URL') };
    for (const [value, secret] of [
      ['tcp://user:pa"ss@redis:6379', 'pa'], // quoting first turned `"` into `\"`, ending the user-info
      ['tcp://:p@ss@redis:6379', 'ss'],
      ['tcp://:pa ss@redis:6379', 'pa'],
      ['tcp://:pa/ss@redis:6379', 'pa'],
      [':hunter2@redis:6379', 'hunter2'], // no scheme at all
    ] as const) {
      const e = configError(() => parseEnv(redis, { DRIFTLINE_REDIS_URL: value }));
      expect(e.message, value).not.toContain(secret);
      expect(e.message, value).toMatch(
        /^DRIFTLINE_REDIS_URL: must be a redis:\/\/ URL \(got "(tcp:\/\/)?\*\*\*@redis:6379"\)$/,
      );
    }
    expect(redactConfigValue('http://u:p@ss word@reg:8080/x?token=t')).toBe('http://***@reg:8080/x?token=***');
    expect(redactConfigValue('redis://h:6379')).toBe('redis://h:6379');
  });
});

describe('readConfigFile', () => {
  it('returns the text of a readable file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'read-config-'));
    writeFileSync(join(dir, 'policy.yaml'), 'a: 1\n');
    expect(readConfigFile('DRIFTLINE_X_FILE', join(dir, 'policy.yaml'))).toBe('a: 1\n');
  });

  it('refuses an unreadable one with one line naming the variable and the file', () => {
    const file = join(tmpdir(), 'driftline-no-such-dir', 'routes.yaml');
    expect(() => readConfigFile('DRIFTLINE_X_FILE', file, 'routes file')).toThrow(
      expect.objectContaining({
        name: 'ConfigError',
        field: 'DRIFTLINE_X_FILE',
        message: expect.stringMatching(
          new RegExp(`^DRIFTLINE_X_FILE: cannot read routes file ${file}: ENOENT[^\\n]*$`),
        ),
      }),
    );
  });
});

describe('redisUrlProblem (DRIFTLINE_REDIS_URL)', () => {
  it('takes redis:// and rediss:// with no path or a database index', () => {
    for (const url of ['redis://h:6379', 'redis://h:6379/', 'redis://h:6379/0', 'rediss://:pw@h:6380/15', 'redis://'])
      expect(redisUrlProblem(url)).toBeUndefined();
  });

  it('refuses another scheme, a URL that does not parse, and a path that is not an index', () => {
    for (const url of ['http://h:6379', 'h:6379', 'redis://h:port', 'unix:///tmp/redis.sock'])
      expect(redisUrlProblem(url)).toBe('must be a redis:// or rediss:// URL');
    for (const url of [
      'redis://h:1/abc',
      'redis://h:1/-1',
      'redis://h:1/1.5',
      'redis://h:1/0/x',
      'redis://h:1/99999999999',
    ])
      expect(redisUrlProblem(url)).toMatch(/^its path must be a database index, an integer >= 0/);
  });

  it('checks the path as written: dot segments the URL parser resolves are refused', () => {
    // ioredis reads the raw text after the first `/` (db "abc/.."); new URL normalises it away.
    for (const url of ['redis://h:1/abc/..', 'redis://h:1/abc/../', 'redis://h:1/./3']) {
      expect(new URL(url).pathname).toMatch(/^\/\d*$/);
      expect(redisUrlProblem(url)).toMatch(/^its path must be a database index, an integer >= 0/);
    }
    for (const url of ['redis://h:1/3 ', ' redis://h:1/3'])
      expect(redisUrlProblem(url)).toBe('must not start or end with white space');
    expect(redisUrlProblem('redis://h:1/2147483647?family=6')).toBeUndefined();
  });

  it('refuses query parameters, which ioredis reads as client options ahead of driftline’s; family=4|6 passes', () => {
    // `?db=99` selected database 99 past the path's check and the database check (writes in 0 or an unchecked one).
    for (const url of [
      'redis://h:1?db=99',
      'redis://h:1/?db=99',
      'redis://h:1/0?db=99',
      'redis://h:1/3?family=4&db=3',
      'redis://h:1/?%64b=2',
    ])
      expect(redisUrlProblem(url)).toBe(
        'a database in the query (db=) escapes the database check: write it as the path (redis://host:6379/3)',
      );
    expect(redisUrlProblem('redis://h:1/3?keyPrefix=x')).toMatch(
      /^its query parameter "keyPrefix" would override the Redis client's options/,
    );
    expect(redisUrlProblem('redis://h:1?commandTimeout=1')).toMatch(/"commandTimeout"/);
    expect(redisUrlProblem('redis://h:1?family=6&family=4')).toMatch(/"family" would override/);
    expect(redisUrlProblem('redis://h:1?family=ipv6')).toBe('its query parameter family must be 4, 6 or 0 (either)');
    for (const url of ['redis://h:1/3?family=6', 'redis://h:1?family=4', 'redis://h:1/3?', 'redis://h:1/3#x?db=4'])
      expect(redisUrlProblem(url)).toBeUndefined();
  });

  it('through parseEnv: one line naming the variable', () => {
    const e = configError(() => parseEnv(redisEnvShape, { DRIFTLINE_REDIS_URL: 'redis://h:1/abc' }));
    expect(e.field).toBe('DRIFTLINE_REDIS_URL');
    expect(e.message).not.toContain('\n');
  });
});
