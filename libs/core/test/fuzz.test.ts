import { fuzzParameters, timedCall } from '@driftline/test-support/fuzz';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  ConfigError,
  checkEventTime,
  DEFAULT_EVENT_TIME_BOUNDS,
  DriftlineError,
  envField,
  eventTimeProblem,
  formatDuration,
  jsonDepthWithin,
  PoisonRecordError,
  parseDurationMs,
  parseEnv,
  redactCredentials,
  rejectUnknownEnv,
} from '../src/index.js';

/**
 * Property tests of libs/core's parsing helpers: every config value goes through parseEnv and the
 * envField parsers, every error message through redactCredentials (so hostile record content
 * reaches it too), every event time through eventTimeProblem. Whatever the input: a value or the
 * typed error, within 100 ms per call.
 */

/**
 * The regexes redactCredentials stands for (it is a linear scan): the oracle for what it must do.
 * The user-info is greedy, up to the authority's last `@` (`redis://:p@ss@host`).
 */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/?#"'`]+@/gi;
const SECRET_QUERY =
  /([?&;](?:password|passwd|pwd|pass|token|access_token|api_key|api-key|apikey|auth|secret|sig|signature|x-amz-signature|x-amz-security-token)=)[^&\s#"'`]*/gi;
const oracle = (text: string) => text.replace(URL_USERINFO, '$1***@').replace(SECRET_QUERY, '$1***');

/** Text made of the pieces URLs, credentials and separators are made of. */
const urlish = fc
  .array(
    fc.oneof(
      fc.constantFrom('://', ':', '/', '@', '?', '&', ';', '#', '=', ' ', '\n', '"', "'", '`', '.', '+', '-', '_'),
      fc.constantFrom('a', 'Z', '9', 'redis', 'https', 'user', 'pass', 'password', 'token', 'é', 'h.example'),
      fc.string({ maxLength: 4 }),
    ),
    { maxLength: 40 },
  )
  .map((parts) => parts.join(''));

/** Long runs of the shapes that made the regexes backtrack: scheme characters, then "://" and no "@". */
const adversarial = fc
  .tuple(
    fc.constantFrom('a.', 'a+', 'a-', 'a', 'A.', '+a', '9a.', '_a.'),
    fc.integer({ min: 1_000, max: 40_000 }),
    fc.constantFrom('://', 'a://', '://x', ':/', ''),
    fc.constantFrom('', 'x', 'x:y', ' @'),
    fc.integer({ min: 0, max: 40_000 }),
  )
  .map(([unit, n, mid, tail, m]) => unit.repeat(n) + mid + tail.repeat(m));

describe('redactCredentials under fuzzing (fast-check, seeded)', { timeout: 60_000 }, () => {
  it('does what the regexes did, on URL-like text', () => {
    fc.assert(
      fc.property(urlish, (text) => {
        expect(redactCredentials(text)).toBe(oracle(text));
      }),
      fuzzParameters(1_000),
    );
  });

  it('runs in linear time: 80 KB of scheme characters before "://" within 100 ms (found by fuzzing)', () => {
    // The regex backtracked from every word boundary: 40 KB of "a." then "a://" took 7.3 s, of
    // "a+" then "://" 3.6 s — and every DriftlineError redacts its message, which can quote a
    // hostile record's feature name, a view name from an HTTP request, a partials key.
    expect(timedCall(() => redactCredentials(`${'a.'.repeat(20_000)}a://${'x'.repeat(20_000)}`)).threw).toBe(false);
    expect(timedCall(() => new DriftlineError('BAD_REQUEST', `unknown view "${'a+'.repeat(40_000)}://"`)).threw).toBe(
      false,
    );
    fc.assert(
      fc.property(adversarial, (text) => {
        const outcome = timedCall(() => redactCredentials(text));
        expect(outcome.threw).toBe(false);
      }),
      fuzzParameters(50),
    );
  });
});

describe('config parsing under fuzzing (fast-check, seeded)', { timeout: 60_000 }, () => {
  /** Values an operator (or a broken deployment template) could set. */
  const envValue = fc.oneof(
    fc.string({ maxLength: 16 }),
    fc.string({ unit: 'binary', maxLength: 8 }),
    fc.constantFrom('', ' ', '0', '-1', '1e309', 'NaN', 'Infinity', '9007199254740993', '0x10', '1_000', 'true'),
    fc.constantFrom('5m', '1.5h', '0.0001ms', '2w', ' 30 s ', '1e3s', 'https://u:p@h/x', 'redis://:secret@h:1'),
    fc.integer().map(String),
    fc.double().map(String),
    fc
      .tuple(
        fc.constantFrom('1', ' 1', '1.5', '5m'),
        fc.integer({ min: 1, max: 10_000 }),
        fc.constantFrom('x', 's', ''),
      )
      .map(([head, n, tail]) => `${head}${' '.repeat(n)}${tail}`),
    fc
      .tuple(
        fc.constantFrom(' ', '\t', '1', '1.', 'a+'),
        fc.integer({ min: 1, max: 10_000 }),
        fc.string({ maxLength: 3 }),
      )
      .map(([unit, n, tail]) => unit.repeat(n) + tail),
  );
  const shape = {
    DRIFTLINE_A_INT: envField.int(1, 65_535),
    DRIFTLINE_A_BOOL: envField.bool(),
    DRIFTLINE_A_LIST: envField.list(),
    DRIFTLINE_A_URL: envField.httpUrl(),
    DRIFTLINE_A_DURATION: envField.duration(1_000),
    DRIFTLINE_A_STRING: envField.string(),
    DRIFTLINE_A_PASSWORD: envField.string(),
    DRIFTLINE_A_ENUM: z.enum(['psi', 'ks']),
  };
  const names = Object.keys(shape);

  it('parseEnv: every variable parsed, or a ConfigError naming one, never echoing a secret', () => {
    fc.assert(
      fc.property(fc.dictionary(fc.constantFrom(...names), envValue), (env) => {
        const outcome = timedCall(() => parseEnv(shape, env));
        if (!outcome.threw) {
          const v = outcome.value;
          expect(Number.isSafeInteger(v.DRIFTLINE_A_INT) && v.DRIFTLINE_A_INT >= 1).toBe(true);
          expect(Number.isSafeInteger(v.DRIFTLINE_A_DURATION) && v.DRIFTLINE_A_DURATION >= 1_000).toBe(true);
          expect(v.DRIFTLINE_A_LIST.length).toBeGreaterThan(0);
          return;
        }
        const error = outcome.error as ConfigError;
        expect(error).toBeInstanceOf(ConfigError);
        expect(names).toContain(error.field);
        const secret = env.DRIFTLINE_A_PASSWORD;
        if (error.field === 'DRIFTLINE_A_PASSWORD' && secret !== undefined && secret.length >= 4) {
          expect(error.message).not.toContain(secret);
        }
      }),
      fuzzParameters(1_000),
    );
  });

  it('rejectUnknownEnv: a ConfigError naming the unknown variable, or nothing', () => {
    fc.assert(
      fc.property(
        fc.dictionary(
          fc.oneof(
            fc.constantFrom(...names),
            fc.string().map((s) => `DRIFTLINE_${s}`),
            fc.string(),
          ),
          envValue,
        ),
        (env) => {
          const outcome = timedCall(() => rejectUnknownEnv('DRIFTLINE_', names, env));
          const unknown = Object.keys(env).filter((k) => k.startsWith('DRIFTLINE_') && !names.includes(k));
          if (unknown.length === 0) expect(outcome.threw).toBe(false);
          else expect(outcome.threw && (outcome.error as ConfigError).field).toBe(unknown[0]);
        },
      ),
      fuzzParameters(500),
    );
  });

  it('parseDurationMs: a whole number of ms or undefined, in linear time; formatDuration round-trips', () => {
    // Found by fuzzing: "1", 30,000 spaces, "x" took 1.9 s (the regex's two `\s*` around an optional unit).
    expect(timedCall(() => parseDurationMs(`1${' '.repeat(30_000)}x`))).toEqual({ threw: false, value: undefined });
    expect(parseDurationMs(` 30${' '.repeat(30_000)}s `)).toBe(30_000);
    fc.assert(
      fc.property(envValue, (text) => {
        const outcome = timedCall(() => parseDurationMs(text));
        expect(outcome.threw).toBe(false);
        const ms = !outcome.threw && outcome.value;
        if (ms !== undefined && ms !== false) expect(Number.isSafeInteger(ms) && ms >= 0).toBe(true);
      }),
      fuzzParameters(1_000),
    );
    fc.assert(
      fc.property(
        fc.maxSafeInteger().filter((n) => n >= 0),
        (ms) => {
          expect(parseDurationMs(formatDuration(ms))).toBe(ms);
        },
      ),
      fuzzParameters(1_000),
    );
  });
});

describe('event-time bounds and JSON depth under fuzzing (fast-check, seeded)', { timeout: 60_000 }, () => {
  it('eventTimeProblem: a reason or undefined for any value; checkEventTime throws only PoisonRecordError', () => {
    const now = Date.UTC(2026, 11, 2);
    fc.assert(
      fc.property(
        fc.oneof(
          fc.double(),
          fc.integer(),
          fc.integer({ min: DEFAULT_EVENT_TIME_BOUNDS.minMs - 10, max: now + 3_600_010 }),
          fc.bigInt(),
          fc.jsonValue(),
        ),
        (value) => {
          const outcome = timedCall(() => checkEventTime(value, now, DEFAULT_EVENT_TIME_BOUNDS));
          const problem = eventTimeProblem(value, now, DEFAULT_EVENT_TIME_BOUNDS);
          if (!outcome.threw) {
            expect(problem).toBeUndefined();
            expect(Number.isSafeInteger(outcome.value)).toBe(true);
          } else {
            expect(outcome.error).toBeInstanceOf(PoisonRecordError);
            expect((outcome.error as PoisonRecordError).message).toBe(problem);
          }
        },
      ),
      fuzzParameters(1_000),
    );
  });

  it('jsonDepthWithin agrees with the depth of whatever JSON.parse accepts', () => {
    const depthOf = (v: unknown): number =>
      typeof v === 'object' && v !== null ? 1 + Math.max(0, ...Object.values(v).map(depthOf)) : 0;
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), fc.integer({ min: 0, max: 7 }), (value, max) => {
        const text = JSON.stringify(value);
        expect(jsonDepthWithin(text, max)).toBe(depthOf(value) <= max);
        expect(jsonDepthWithin(Buffer.from(text), max)).toBe(depthOf(value) <= max);
      }),
      fuzzParameters(1_000),
    );
  });
});
