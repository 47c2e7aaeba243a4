import { z } from 'zod';
import { DURATION_HINT, formatDuration, parseDurationMs } from './duration.js';
import { ConfigError } from './errors.js';
import {
  DEFAULT_EVENT_TIME_BOUNDS,
  EVENT_TIME_FLOOR_MS,
  EVENT_TIME_MAX_FUTURE_LIMIT_MS,
  type EventTimeBounds,
} from './event-time.js';
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
 * closest known names (by edit distance), not every known one: there are about 180.
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

/**
 * Every DRIFTLINE_* name driftline reads, written out so that checking names loads no service code
 * (the CLI loaded kafkajs, pino and prom-client for it, and every service when a service's variable
 * was set): the runner's and resources' variables, every service's, the ClickHouse host's, the
 * runner's service list and the trainer bootstrap's overrides (worker/setup-venv.sh). services/cli's
 * env-names test fails when it differs from those: add a new variable here too.
 */
export const DRIFTLINE_ENV_NAMES: readonly string[] = [
  'DRIFTLINE_ALERT_ROUTER_GROUP',
  'DRIFTLINE_ALERT_ROUTER_MAX_ATTEMPTS',
  'DRIFTLINE_ALERT_ROUTER_RETRY_BUDGET',
  'DRIFTLINE_ALERT_ROUTER_RETRY_INITIAL',
  'DRIFTLINE_ALERT_ROUTER_RETRY_MAX_DELAY',
  'DRIFTLINE_ALERT_ROUTER_START',
  'DRIFTLINE_ALERT_ROUTER_TIMEOUT',
  'DRIFTLINE_ALERT_ROUTES_FILE',
  'DRIFTLINE_CLICKHOUSE_DATABASE',
  'DRIFTLINE_CLICKHOUSE_HOST_BIND',
  'DRIFTLINE_CLICKHOUSE_HOST_MAX_BODY_BYTES',
  'DRIFTLINE_CLICKHOUSE_HOST_MAX_QUEUE',
  'DRIFTLINE_CLICKHOUSE_HOST_PASSWORD',
  'DRIFTLINE_CLICKHOUSE_HOST_PORT',
  'DRIFTLINE_CLICKHOUSE_HOST_TIMEOUT',
  'DRIFTLINE_CLICKHOUSE_HOST_USER',
  'DRIFTLINE_CLICKHOUSE_PASSWORD',
  'DRIFTLINE_CLICKHOUSE_PATH',
  'DRIFTLINE_CLICKHOUSE_TIMEOUT',
  'DRIFTLINE_CLICKHOUSE_URL',
  'DRIFTLINE_CLICKHOUSE_USERNAME',
  'DRIFTLINE_DRIFT_ALERT_MIN_EVENTS',
  'DRIFTLINE_DRIFT_ALERT_SHARE',
  'DRIFTLINE_DRIFT_ALLOWED_LATENESS',
  'DRIFTLINE_DRIFT_CHI2_ALPHA',
  'DRIFTLINE_DRIFT_GROUP',
  'DRIFTLINE_DRIFT_IDLE_TIMEOUT',
  'DRIFTLINE_DRIFT_JS_THRESHOLD',
  'DRIFTLINE_DRIFT_KS_ALPHA',
  'DRIFTLINE_DRIFT_MAX_AHEAD',
  'DRIFTLINE_DRIFT_MAX_BORROWED_VERSIONS',
  'DRIFTLINE_DRIFT_METHOD',
  'DRIFTLINE_DRIFT_MISSING_ALERT',
  'DRIFTLINE_DRIFT_MISSING_ALERT_ALPHA',
  'DRIFTLINE_DRIFT_MISSING_RATE_INCREASE',
  'DRIFTLINE_DRIFT_OUT_OF_RANGE',
  'DRIFTLINE_DRIFT_PARTIALS_PARTITIONS',
  'DRIFTLINE_DRIFT_PSI_THRESHOLD',
  'DRIFTLINE_DRIFT_RECENT_IDS',
  'DRIFTLINE_DRIFT_SOURCE_IDLE',
  'DRIFTLINE_DRIFT_WINDOW',
  'DRIFTLINE_EVENT_TIME_MAX_FUTURE',
  'DRIFTLINE_EVENT_TIME_MIN',
  'DRIFTLINE_FEATURE_API_HEADERS_TIMEOUT',
  'DRIFTLINE_FEATURE_API_HOST',
  'DRIFTLINE_FEATURE_API_KEEP_ALIVE_TIMEOUT',
  'DRIFTLINE_FEATURE_API_MAX_BATCH',
  'DRIFTLINE_FEATURE_API_MAX_BODY_BYTES',
  'DRIFTLINE_FEATURE_API_MAX_CONNECTIONS',
  'DRIFTLINE_FEATURE_API_MAX_FEATURES',
  'DRIFTLINE_FEATURE_API_PORT',
  'DRIFTLINE_FEATURE_API_REQUEST_TIMEOUT',
  'DRIFTLINE_FEATURE_API_THREAD',
  'DRIFTLINE_FEATURE_API_TOKEN',
  'DRIFTLINE_FEATURE_API_WRITE_TIMEOUT',
  'DRIFTLINE_FEATURE_KEY_PREFIX',
  'DRIFTLINE_FEATURE_READ_IN_FLIGHT_BYTES',
  'DRIFTLINE_FEATURE_READ_IN_FLIGHT_ENTITIES',
  'DRIFTLINE_FEATURE_READ_V1',
  'DRIFTLINE_FEATURE_VIEWS',
  'DRIFTLINE_FRESHNESS_WINDOW',
  'DRIFTLINE_HTTP_HOST',
  'DRIFTLINE_HTTP_PORT',
  'DRIFTLINE_JOINER_ALERT_BOUNDS',
  'DRIFTLINE_JOINER_ALERT_MIN_SAMPLES',
  'DRIFTLINE_JOINER_ALERT_SEGMENTS',
  'DRIFTLINE_JOINER_CALIBRATION_REFRESH',
  'DRIFTLINE_JOINER_CONCURRENCY',
  'DRIFTLINE_JOINER_ESTIMATES',
  'DRIFTLINE_JOINER_EXPIRY_GRACE',
  'DRIFTLINE_JOINER_EXPIRY_INTERVAL',
  'DRIFTLINE_JOINER_FALSE_ALARM_COST',
  'DRIFTLINE_JOINER_GROUP',
  'DRIFTLINE_JOINER_KEY_PREFIX',
  'DRIFTLINE_JOINER_MAX_BATCH_BYTES',
  'DRIFTLINE_JOINER_MAX_LABEL_DELAY',
  'DRIFTLINE_JOINER_MAX_SEGMENTS',
  'DRIFTLINE_JOINER_MAX_WINDOW_ROWS',
  'DRIFTLINE_JOINER_MODEL_TASKS',
  'DRIFTLINE_JOINER_REALIZED_COVERAGE',
  'DRIFTLINE_JOINER_RECOMPUTE_INTERVAL',
  'DRIFTLINE_JOINER_SCORE_WINDOWS',
  'DRIFTLINE_JOINER_SEGMENT_FEATURES',
  'DRIFTLINE_JOINER_SESSION_TIMEOUT',
  'DRIFTLINE_JOINER_TASK',
  'DRIFTLINE_JOINER_THRESHOLD',
  'DRIFTLINE_JOINER_TOMBSTONE_TTL',
  'DRIFTLINE_JOINER_WINDOW',
  'DRIFTLINE_KAFKA_BROKERS',
  'DRIFTLINE_KAFKA_CLIENT_ID',
  'DRIFTLINE_KAFKA_DLQ_MAX_BATCH_BYTES',
  'DRIFTLINE_KAFKA_DLQ_MAX_BATCH_RECORDS',
  'DRIFTLINE_KAFKA_FAULT_HOLD',
  'DRIFTLINE_KAFKA_SASL_MECHANISM',
  'DRIFTLINE_KAFKA_SASL_PASSWORD',
  'DRIFTLINE_KAFKA_SASL_USERNAME',
  'DRIFTLINE_KAFKA_SSL',
  'DRIFTLINE_LOG_LEVEL',
  'DRIFTLINE_MATERIALIZER_BACKOFF_MAX_MS',
  'DRIFTLINE_MATERIALIZER_CONCURRENCY',
  'DRIFTLINE_MATERIALIZER_GROUP',
  'DRIFTLINE_MATERIALIZER_MAX_BYTES_PER_PARTITION',
  'DRIFTLINE_MATERIALIZER_SESSION_TIMEOUT_MS',
  'DRIFTLINE_MODEL_CONTROLLER_GROUP',
  'DRIFTLINE_MODEL_CONTROLLER_INTERVAL',
  'DRIFTLINE_MODEL_CONTROLLER_MAX_PAIRS',
  'DRIFTLINE_MODEL_SERVER_ARTIFACT_DIR',
  'DRIFTLINE_MODEL_SERVER_CANARY',
  'DRIFTLINE_MODEL_SERVER_HEADERS_TIMEOUT',
  'DRIFTLINE_MODEL_SERVER_HOST',
  'DRIFTLINE_MODEL_SERVER_KEEP_ALIVE_TIMEOUT',
  'DRIFTLINE_MODEL_SERVER_LOAD_TIMEOUT',
  'DRIFTLINE_MODEL_SERVER_LOG_BUFFER',
  'DRIFTLINE_MODEL_SERVER_LOG_BUFFER_BYTES',
  'DRIFTLINE_MODEL_SERVER_LOG_FLUSH',
  'DRIFTLINE_MODEL_SERVER_LOG_THREAD',
  'DRIFTLINE_MODEL_SERVER_LOG_WAIT',
  'DRIFTLINE_MODEL_SERVER_MAX_BATCH',
  'DRIFTLINE_MODEL_SERVER_MAX_BODY_BYTES',
  'DRIFTLINE_MODEL_SERVER_MAX_CONNECTIONS',
  'DRIFTLINE_MODEL_SERVER_MAX_FEATURES',
  'DRIFTLINE_MODEL_SERVER_MAX_REQUEST_LOG_BYTES',
  'DRIFTLINE_MODEL_SERVER_PORT',
  'DRIFTLINE_MODEL_SERVER_REQUEST_TIMEOUT',
  'DRIFTLINE_MODEL_SERVER_SHADOW',
  'DRIFTLINE_MODEL_SERVER_TOKEN',
  'DRIFTLINE_MODEL_SERVER_WRITE_TIMEOUT',
  'DRIFTLINE_PROMOTION_POLICY',
  'DRIFTLINE_REDIS_COMMAND_TIMEOUT',
  'DRIFTLINE_REDIS_CONNECT_TIMEOUT',
  'DRIFTLINE_REDIS_PASSWORD',
  'DRIFTLINE_REDIS_READ_TIMEOUT',
  'DRIFTLINE_REDIS_TLS',
  'DRIFTLINE_REDIS_URL',
  'DRIFTLINE_RETRAIN_GROUP',
  'DRIFTLINE_RETRAIN_POLICY_FILE',
  'DRIFTLINE_SCHEMA_REGISTRY_PASSWORD',
  'DRIFTLINE_SCHEMA_REGISTRY_TIMEOUT',
  'DRIFTLINE_SCHEMA_REGISTRY_URL',
  'DRIFTLINE_SCHEMA_REGISTRY_USERNAME',
  'DRIFTLINE_SEQUENTIAL',
  'DRIFTLINE_SEQUENTIAL_BINS',
  'DRIFTLINE_SEQUENTIAL_BOOTSTRAPS',
  'DRIFTLINE_SEQUENTIAL_ERT',
  'DRIFTLINE_SEQUENTIAL_EVERY',
  'DRIFTLINE_SEQUENTIAL_MAX_STREAMS',
  'DRIFTLINE_SEQUENTIAL_STATISTIC',
  'DRIFTLINE_SEQUENTIAL_WINDOW',
  'DRIFTLINE_SERVICES',
  'DRIFTLINE_SKEW_ABSOLUTE_TOLERANCE',
  'DRIFTLINE_SKEW_GROUP',
  'DRIFTLINE_SKEW_MAX_SHARE_MISMATCHED',
  'DRIFTLINE_SKEW_MIN_COMPARED',
  'DRIFTLINE_SKEW_RECENT_IDS',
  'DRIFTLINE_SKEW_RELATIVE_TOLERANCE',
  'DRIFTLINE_SKEW_SAMPLE_RATE',
  'DRIFTLINE_SKEW_WINDOW',
  'DRIFTLINE_STALL_TIMEOUT',
  'DRIFTLINE_STARTUP_TIMEOUT',
  'DRIFTLINE_TOPIC_MIN_INSYNC_REPLICAS',
  'DRIFTLINE_TOPIC_PARTITIONS',
  'DRIFTLINE_TOPIC_PREFIX',
  'DRIFTLINE_TOPIC_REPLICATION_FACTOR',
  'DRIFTLINE_TRAINER_ARTIFACT_DIR',
  'DRIFTLINE_TRAINER_DEVICE',
  'DRIFTLINE_TRAINER_FLAVOUR',
  'DRIFTLINE_TRAINER_GROUP',
  'DRIFTLINE_TRAINER_HOLDOUT_FRACTION',
  'DRIFTLINE_TRAINER_LABEL_POLL',
  'DRIFTLINE_TRAINER_LABEL_WAIT',
  'DRIFTLINE_TRAINER_MAX_CELLS',
  'DRIFTLINE_TRAINER_MAX_DEPTH',
  'DRIFTLINE_TRAINER_MAX_ROWS',
  'DRIFTLINE_TRAINER_MIN_CLASS_ROWS',
  'DRIFTLINE_TRAINER_MIN_ROWS',
  'DRIFTLINE_TRAINER_PROMOTION_MARGIN',
  'DRIFTLINE_TRAINER_PROMOTION_METRIC',
  'DRIFTLINE_TRAINER_PYTHON',
  'DRIFTLINE_TRAINER_ROLLOUT',
  'DRIFTLINE_TRAINER_ROUNDS',
  'DRIFTLINE_TRAINER_SESSION_TIMEOUT',
  'DRIFTLINE_TRAINER_TIMEOUT',
  'DRIFTLINE_TRAINER_VENV',
];

/** Prefixes of other tools' variables (the stack tool, the demo, the benchmarks, the test run): never checked. */
export const FOREIGN_ENV_PREFIXES: readonly string[] = [
  'DRIFTLINE_STACK_',
  'DRIFTLINE_DEMO_',
  'DRIFTLINE_BENCH_',
  'DRIFTLINE_TEST_',
];

/**
 * Refuses a DRIFTLINE_* variable that is neither in DRIFTLINE_ENV_NAMES nor `alsoKnown` (a
 * misspelt DRIFTLINE_CLICKHOUSE_ULR fell back to the embedded store), naming the closest known
 * ones; other tools' prefixes and `ignorePrefixes` pass. The one rule of every command and the runner.
 */
export function rejectUnknownDriftlineVariables(
  env: Env = process.env,
  alsoKnown: Iterable<string> = [],
  ignorePrefixes: readonly string[] = [],
): void {
  rejectUnknownEnv('DRIFTLINE_', [...DRIFTLINE_ENV_NAMES, ...alsoKnown], env, [
    ...FOREIGN_ENV_PREFIXES,
    ...ignorePrefixes,
  ]);
}

/** Largest edit distance at which a known name is suggested for an unknown one. */
const MAX_SUGGESTION_DISTANCE = 3;
/** At most this many suggestions. */
const MAX_SUGGESTIONS = 3;

/** The known names nearest to `name` (edit distance at most MAX_SUGGESTION_DISTANCE), sorted; at most MAX_SUGGESTIONS. */
export function closestNames(name: string, known: Iterable<string>): string[] {
  let best = MAX_SUGGESTION_DISTANCE;
  let nearest: string[] = [];
  for (const candidate of known) {
    // Past `best`, editDistance answers best + 1: a start at MAX + 1 tied with it (4 edits suggested).
    const distance = editDistance(name, candidate, best);
    if (distance > best) continue;
    if (distance < best) {
      best = distance;
      nearest = [];
    }
    nearest.push(candidate);
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

/**
 * Why a value padded with white space (or a control character: URL parsers drop those from the
 * ends too) is refused, or undefined: never meant in a name, a token or a URL.
 */
export function paddingProblem(text: string): string | undefined {
  const blank = (c: string | undefined) => c !== undefined && (c <= ' ' || /\s/.test(c));
  return blank(text[0]) || blank(text.at(-1)) ? 'must not start or end with white space' : undefined;
}

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
      .superRefine((v, ctx) => {
        const problem = paddingProblem(v);
        if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
      }),
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
   * So is padding: `new URL` trims it, but the value is used as given (a registry base URL ending
   * in a space made every schema fetch a 404).
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
  const padding = paddingProblem(text);
  if (padding !== undefined) return padding;
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

/**
 * DRIFTLINE_EVENT_TIME_MAX_FUTURE: the largest accepted skew of event_time into the future of the
 * wall clock (later events go to the DLQ). Here rather than with the services' common variables,
 * so a command that reads the warehouse alone (`driftline model stage`) parses it without loading
 * Kafka or service code.
 */
export const eventTimeMaxFutureField = envField
  .duration()
  .pipe(
    z.number().max(EVENT_TIME_MAX_FUTURE_LIMIT_MS, `must be at most ${formatDuration(EVENT_TIME_MAX_FUTURE_LIMIT_MS)}`),
  )
  .default(DEFAULT_EVENT_TIME_BOUNDS.maxFutureMs);

const ISO_TIME = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2}))?$/;

/**
 * Epoch ms of an ISO date (`2000-01-01`, UTC) or date-time with a zone (`…T12:00:00Z`,
 * `…T12:00+02:00`); undefined unless every part exists: Date.parse rolls 2024-02-30 over into
 * March and reads a date-time without a zone in local time.
 */
function parseIsoTimeMs(text: string): number | undefined {
  const m = ISO_TIME.exec(text);
  if (m === null) return undefined;
  const [year, month, day, hour = 0, minute = 0, second = 0] = m
    .slice(1, 7)
    .map((p) => (p === undefined ? undefined : Number(p)));
  const date = new Date(Date.UTC(year!, month! - 1, day!));
  if (date.getUTCFullYear() !== year || date.getUTCMonth() !== month! - 1 || date.getUTCDate() !== day)
    return undefined;
  if (hour > 23 || minute > 59 || second > 59) return undefined;
  const zone = m[7];
  if (zone !== undefined && zone !== 'Z' && (Number(zone.slice(1, 3)) > 23 || Number(zone.slice(4)) > 59))
    return undefined;
  const ms = Date.parse(zone === undefined ? `${text}T00:00:00Z` : text);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * DRIFTLINE_EVENT_TIME_MIN: the earliest accepted event_time, an ISO date (UTC) or date-time
 * (earlier events go to the DLQ); a day that does not exist (2024-02-30) is refused, not rolled
 * over into the next month.
 */
export const eventTimeMinField = z
  .string()
  .transform((v, ctx) => {
    const ms = parseIsoTimeMs(v);
    if (ms === undefined) {
      const message = ISO_TIME.test(v)
        ? 'must be a valid ISO date: that day or time does not exist'
        : 'must be an ISO date such as 2000-01-01 (or 2000-01-01T00:00:00Z)';
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    }
    return ms;
  })
  .pipe(z.number().min(EVENT_TIME_FLOOR_MS, 'must be 1900-01-01 or later (ClickHouse DateTime64 starts there)'))
  .default(DEFAULT_EVENT_TIME_BOUNDS.minMs);

/** Default of DRIFTLINE_STARTUP_TIMEOUT: how long a start-up waits for an unreachable backend. */
export const DEFAULT_STARTUP_TIMEOUT_MS = 2 * 60_000;

/**
 * DRIFTLINE_STARTUP_TIMEOUT, one definition for the runner (libs/service) and `clickhouse serve`
 * (which loads no service code). It drives a timer, so at most MAX_TIMER_MS: `30d` had been
 * accepted and Node fires a longer timer at once, so the start-up's patience ended immediately.
 */
export const startupTimeoutEnvShape = {
  DRIFTLINE_STARTUP_TIMEOUT: durationField(0, MAX_TIMER_MS).default(DEFAULT_STARTUP_TIMEOUT_MS),
};

/**
 * The event-time bounds' variables, one definition for the services (libs/service's common
 * config) and the SDK (`connectionFromEnv`): a bound the services apply and the SDK did not let
 * the SDK accept events that were then dead-lettered.
 */
export const eventTimeEnvShape = {
  DRIFTLINE_EVENT_TIME_MAX_FUTURE: eventTimeMaxFutureField,
  DRIFTLINE_EVENT_TIME_MIN: eventTimeMinField,
};

/**
 * The bounds from the parsed variables; a minimum after `now` (every event of the present would be
 * dead-lettered) is a ConfigError naming DRIFTLINE_EVENT_TIME_MIN.
 */
export function toEventTimeBounds(
  env: z.infer<z.ZodObject<typeof eventTimeEnvShape>>,
  now = Date.now(),
): EventTimeBounds {
  if (env.DRIFTLINE_EVENT_TIME_MIN > now) {
    throw new ConfigError(
      'DRIFTLINE_EVENT_TIME_MIN',
      `must not be in the future (${new Date(env.DRIFTLINE_EVENT_TIME_MIN).toISOString()}): every event would go to the DLQ`,
    );
  }
  return { maxFutureMs: env.DRIFTLINE_EVENT_TIME_MAX_FUTURE, minMs: env.DRIFTLINE_EVENT_TIME_MIN };
}
