import { z } from 'zod';
import { DURATION_HINT, parseDurationMs } from './duration.js';
import { ConfigError } from './errors.js';
import { isSecretName, redactConfigValue } from './redact.js';

export type Env = Readonly<Record<string, string | undefined>>;

/**
 * Parses environment variables once, at start-up, against a zod object schema whose keys are
 * the variable names. The first problem is thrown as a ConfigError naming the variable and the
 * value it got (never the value of a password or token variable; of any other, everything before
 * its last `@` is masked, see redactConfigValue); pair it with `rejectUnknownEnv` so a misspelt
 * variable cannot silently fall back to a default.
 */
export function parseEnv<S extends z.ZodRawShape>(shape: S, env: Env = process.env): z.infer<z.ZodObject<S>> {
  const known = new Set(Object.keys(shape));
  const picked: Record<string, string> = {};
  for (const [key, value] of Object.entries(env)) {
    if (value === undefined) continue;
    if (known.has(key)) picked[key] = value;
  }
  const result = z.object(shape).safeParse(picked);
  if (!result.success) {
    const issue = result.error.issues[0];
    const field = issue?.path.map(String).join('.') || '(environment)';
    // A secret's value is never echoed; any other value is, redacted before it is quoted: quoting
    // first escaped a `"` in a password into `\"`, which ended the user-info the redaction saw.
    const raw = isSecretName(field) ? undefined : picked[field];
    const got = raw === undefined ? undefined : redactConfigValue(raw);
    throw new ConfigError(
      field,
      `${issue?.message ?? 'invalid'}${got === undefined ? '' : ` (got ${JSON.stringify(got)})`}`,
    );
  }
  return result.data;
}

/** Rejects variables with the prefix that no schema declares (e.g. a typo). */
export function rejectUnknownEnv(
  prefix: string,
  knownNames: Iterable<string>,
  env: Env = process.env,
  ignorePrefixes: readonly string[] = [],
): void {
  const known = new Set(knownNames);
  for (const key of Object.keys(env)) {
    if (ignorePrefixes.some((p) => key.startsWith(p))) continue;
    if (key.startsWith(prefix) && !known.has(key)) {
      throw new ConfigError(key, `unknown variable (known: ${[...known].sort().join(', ')})`);
    }
  }
}

/**
 * The longest delay a Node timer keeps: beyond it setTimeout/setInterval fire after 1 ms, so an
 * interval or timeout set above it would spin. The bound of every duration that drives a timer.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** Reusable field parsers for env values. */
export const envField = {
  /** A decimal number (`0.5`, `1e-3`): "" or " " are refused, not read as 0 (as Number() would). */
  number: (min = -Number.MAX_VALUE, max = Number.MAX_VALUE) =>
    z
      .string()
      .regex(/^-?(\d+\.?\d*|\.\d+)(e[-+]?\d+)?$/i, 'must be a decimal number')
      .transform(Number)
      .pipe(z.number().min(min).max(max)),
  string: () => z.string().min(1),
  int: (min = Number.MIN_SAFE_INTEGER, max = Number.MAX_SAFE_INTEGER) =>
    z
      .string()
      .regex(/^-?\d+$/, 'must be an integer')
      .transform(Number)
      .pipe(z.number().int().min(min).max(max)),
  bool: () =>
    z
      .enum(['true', 'false', '1', '0', 'yes', 'no'], { message: 'must be true or false' })
      .transform((v) => v === 'true' || v === '1' || v === 'yes'),
  list: () =>
    z
      .string()
      .transform((v) =>
        v
          .split(',')
          .map((s) => s.trim())
          .filter((s) => s.length > 0),
      )
      .pipe(z.array(z.string()).min(1, 'must list at least one value')),
  url: () => z.string().url('must be a URL'),
  /** A duration (see parseDurationMs) in milliseconds, from `min` to `max` (MAX_TIMER_MS for one that drives a timer). */
  duration: (min = 0, max = Number.MAX_SAFE_INTEGER) =>
    z
      .string()
      .transform((v, ctx) => {
        const ms = parseDurationMs(v);
        if (ms === undefined) {
          ctx.addIssue({ code: 'custom', message: `must be ${DURATION_HINT}` });
          return z.NEVER;
        }
        return ms;
      })
      .pipe(z.number().min(min, `must be at least ${min} ms`).max(max, `must be at most ${max} ms`)),
};
