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

/**
 * Rejects variables with the prefix that no schema declares (e.g. a typo). The message names the
 * closest known names (by edit distance), not every known one: there are about 160.
 */
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
      const near = closestNames(key, known);
      throw new ConfigError(
        key,
        near.length === 0
          ? 'unknown variable (none known is close to it; README: Configuration lists them)'
          : `unknown variable (did you mean ${near.join(' or ')}?)`,
      );
    }
  }
}

/** Largest edit distance at which a known name is suggested for an unknown one. */
const MAX_SUGGESTION_DISTANCE = 3;
/** At most this many suggestions. */
const MAX_SUGGESTIONS = 3;

/** The known names nearest to `name` (edit distance at most MAX_SUGGESTION_DISTANCE), sorted; at most MAX_SUGGESTIONS. */
export function closestNames(name: string, known: Iterable<string>): string[] {
  let best = MAX_SUGGESTION_DISTANCE + 1;
  let nearest: string[] = [];
  for (const candidate of known) {
    const distance = editDistance(name, candidate, best);
    if (distance < best) {
      best = distance;
      nearest = [candidate];
    } else if (distance === best) {
      nearest.push(candidate);
    }
  }
  return nearest.sort().slice(0, MAX_SUGGESTIONS);
}

/**
 * Levenshtein distance with adjacent transpositions counted as one edit (`ULR` → `URL`), or
 * `limit + 1` as soon as it is known to exceed `limit` (names are short, and most are far).
 */
export function editDistance(a: string, b: string, limit = Number.MAX_SAFE_INTEGER): number {
  if (Math.abs(a.length - b.length) > limit) return limit + 1;
  let before: number[] = [];
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    let rowMin = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(previous[j]! + 1, current[j - 1]! + 1, previous[j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, before[j - 2]! + 1);
      current.push(d);
      rowMin = Math.min(rowMin, d);
    }
    if (rowMin > limit) return limit + 1;
    before = previous;
    previous = current;
  }
  return previous[b.length]!;
}

/**
 * The longest delay a Node timer keeps: beyond it setTimeout/setInterval fire after 1 ms, so an
 * interval or timeout set above it would spin. The bound of every duration that drives a timer.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * Floor of every timeout of a network call: below it a healthy call cannot finish (a TLS handshake,
 * a round trip across a region), so every call would fail as an outage.
 */
export const MIN_TIMEOUT_MS = 100;

/** Leading or trailing white space, or none but white space: never meant in a name or a token. */
const PADDED = /^\s|\s$/;

/** Options of `envField.list`. */
export interface ListFieldOptions {
  /** Fewest items (default 1; 0 lets an empty value mean no items). */
  readonly min?: number;
  /**
   * What makes two items the same (default: the item): a second one is refused. E.g. the model of
   * `model:task`, where the last of two would silently win.
   */
  readonly key?: (item: string) => string;
}

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
  /**
   * A name or a secret compared as it is (a consumer group, a user, a host, a token): not empty
   * (unless `empty`, where "" means none), no white space at either end. " drift-monitor " is
   * another consumer group, and a token ending in a space never matches (HTTP strips header white
   * space).
   */
  name: ({ empty = false }: { readonly empty?: boolean } = {}) =>
    z
      .string()
      .min(empty ? 0 : 1)
      .refine((v) => !PADDED.test(v), 'must not start or end with white space'),
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
  /**
   * A comma-separated list, items trimmed. An empty item (`a,,b`, a trailing comma) or an item
   * given twice (`a,a`; or two with one `key`) is refused: each is a typo or a paste, and with a
   * key the last of two would silently win.
   */
  list: ({ min = 1, key = (item: string) => item }: ListFieldOptions = {}) =>
    z.string().transform((v, ctx) => {
      const items = v.trim() === '' ? [] : v.split(',').map((s) => s.trim());
      const seen = new Set<string>();
      for (const item of items) {
        if (item === '') {
          ctx.addIssue({ code: 'custom', message: 'has an empty item (two commas, or one at an end)' });
          return z.NEVER;
        }
        const k = key(item);
        if (seen.has(k)) {
          ctx.addIssue({ code: 'custom', message: `lists ${JSON.stringify(k)} twice` });
          return z.NEVER;
        }
        seen.add(k);
      }
      if (items.length < min) {
        ctx.addIssue({
          code: 'custom',
          message: min === 1 ? 'must list at least one value' : `must list at least ${min} values`,
        });
        return z.NEVER;
      }
      return items;
    }),
  /**
   * An http:// or https:// URL with no query or fragment (a client appends its own paths and
   * parameters to it); `path: false` also refuses a path (e.g. where a client would read it as
   * something else). `localhost:8123` is refused: a URL parser takes `localhost:` as its scheme.
   */
  httpUrl: ({ path = true }: { readonly path?: boolean } = {}) =>
    z.string().transform((v, ctx) => {
      const problem = httpUrlProblem(v, path);
      if (problem !== undefined) {
        ctx.addIssue({ code: 'custom', message: problem });
        return z.NEVER;
      }
      return v;
    }),
  /** A duration (see parseDurationMs) in milliseconds, from `min` to `max` (MAX_TIMER_MS for one that drives a timer). */
  duration: (min = 0, max = Number.MAX_SAFE_INTEGER) => durationField(min, max),
  /** The timeout of a network call: a duration from MIN_TIMEOUT_MS to MAX_TIMER_MS. */
  timeout: () => durationField(MIN_TIMEOUT_MS, MAX_TIMER_MS),
};

function durationField(min: number, max: number) {
  return z
    .string()
    .transform((v, ctx) => {
      const ms = parseDurationMs(v);
      if (ms === undefined) {
        ctx.addIssue({ code: 'custom', message: `must be ${DURATION_HINT}` });
        return z.NEVER;
      }
      return ms;
    })
    .pipe(z.number().min(min, `must be at least ${min} ms`).max(max, `must be at most ${max} ms`));
}

function httpUrlProblem(text: string, allowPath: boolean): string | undefined {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    return 'must be an http:// or https:// URL';
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return 'must be an http:// or https:// URL';
  if (url.search !== '' || text.includes('?')) return 'must have no query (?…)';
  if (url.hash !== '' || text.includes('#')) return 'must have no fragment (#…)';
  if (!allowPath && url.pathname !== '/') return 'must have no path';
  return undefined;
}
