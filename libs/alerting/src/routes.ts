import { ConfigError, checkConfigDocument, DURATION_HINT, parseConfigText, parseDurationMs } from '@driftline/core';
import type { DriftAlert } from '@driftline/schemas';
import { z } from 'zod';

export const SEVERITIES = ['info', 'warning', 'critical'] as const;
export type Severity = (typeof SEVERITIES)[number];

/** Bounds of a routes file (documented in services/alert-router/README.md). */
export const ROUTE_LIMITS = {
  receivers: 64,
  routes: 256,
  patternsPerField: 64,
  patternLength: 256,
  headers: 32,
  maxGroupWindowMs: 86_400_000,
} as const;

const duration = (max: number) =>
  z.union([z.number().int().nonnegative(), z.string()]).transform((v, ctx) => {
    const ms = typeof v === 'number' ? v : parseDurationMs(v);
    if (ms === undefined) {
      ctx.addIssue({ code: 'custom', message: `must be ${DURATION_HINT}` });
      return z.NEVER;
    }
    if (ms > max) {
      ctx.addIssue({ code: 'custom', message: `must be at most ${max} ms` });
      return z.NEVER;
    }
    return ms;
  });

const pattern = z.string().min(1).max(ROUTE_LIMITS.patternLength);
const patterns = z.union([pattern, z.array(pattern).min(1).max(ROUTE_LIMITS.patternsPerField)]);
const name = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/, 'must be 1-64 of A-Z a-z 0-9 _ . - (not starting with . _ -)');

const receiverShape = z.strictObject({
  url: z
    .string()
    .url('must be an http(s) URL')
    .refine((u) => /^https?:\/\//i.test(u), 'must be an http(s) URL'),
  /** `json`: the generic body; `slack`: a Slack-compatible `{ text, blocks }` body. */
  format: z.enum(['json', 'slack']).default('json'),
  headers: z
    .record(z.string().regex(/^[A-Za-z0-9-]+$/, 'must be a header name'), z.string().max(4096))
    .refine((h) => Object.keys(h).length <= ROUTE_LIMITS.headers, `at most ${ROUTE_LIMITS.headers} headers`)
    .optional(),
  /** Token bucket: `per_minute` messages on average, bursts of up to `burst`. */
  rate_limit: z
    .strictObject({
      // At least one message an hour: a receiver out of tokens holds its batch until the next one
      // (never dropped), so 1e-6 a minute held it for about two years.
      per_minute: z
        .number()
        .min(1 / 60, 'must be at least 1/60 (one message an hour): excess alerts wait for a token')
        .max(60_000),
      burst: z.number().int().min(1).max(10_000).optional(),
    })
    .optional(),
});

const matchShape = z.strictObject({
  model: patterns.optional(),
  kind: patterns.optional(),
  severity: patterns.optional(),
});

const routeShape = z.strictObject({
  match: matchShape.optional(),
  receivers: z.array(name).min(1),
  /** Go on to the next routes after this one matched (default: the first matching route wins). */
  continue: z.boolean().optional(),
});

const documentShape = z.strictObject({
  version: z.literal(1).optional(),
  /** Alerts of the same model and kind whose event times fall in one such bucket go out as one message. */
  group_window: duration(ROUTE_LIMITS.maxGroupWindowMs).optional(),
  receivers: z
    .record(name, receiverShape)
    .refine((r) => Object.keys(r).length >= 1, 'at least one receiver')
    .refine((r) => Object.keys(r).length <= ROUTE_LIMITS.receivers, `at most ${ROUTE_LIMITS.receivers} receivers`),
  routes: z.array(routeShape).max(ROUTE_LIMITS.routes).optional(),
  /** Receivers of alerts that no route matched; without it such alerts are counted and logged, not sent. */
  default: z.array(name).min(1).optional(),
});

export interface RateLimit {
  /** Tokens added per millisecond. */
  readonly perMs: number;
  readonly burst: number;
}

export interface Receiver {
  readonly name: string;
  readonly url: string;
  readonly format: 'json' | 'slack';
  readonly headers: Readonly<Record<string, string>>;
  readonly rateLimit: RateLimit;
}

/** A compiled glob (see {@link compileGlob}): matched in time linear in the value, never backtracking. */
export interface Glob {
  readonly source: string;
  /** The pattern cut at each `*`: literal runs (`?` = any one character), at least one. */
  readonly parts: readonly string[];
}

export interface Matcher {
  readonly model: readonly Glob[] | undefined;
  readonly kind: readonly Glob[] | undefined;
  readonly severity: readonly Glob[] | undefined;
}

export interface Route {
  readonly match: Matcher;
  readonly receivers: readonly string[];
  readonly continue: boolean;
}

export interface RoutingTable {
  readonly groupWindowMs: number;
  readonly receivers: ReadonlyMap<string, Receiver>;
  readonly routes: readonly Route[];
  readonly defaultReceivers: readonly string[];
}

export const ROUTING_DEFAULTS = {
  groupWindowMs: 60_000,
  /** Default rate limit of a receiver: 30 messages a minute, bursts of 10. */
  perMinute: 30,
  burst: 10,
} as const;

/** `*` any run of characters, `?` one character, everything else literal; anchored, case-sensitive. */
function compileGlob(glob: string): Glob {
  return { source: glob, parts: glob.split('*') };
}

/** Whether `part` (with `?` for any one character) matches `value` at `at`. */
function partAt(part: string, value: string, at: number): boolean {
  if (at + part.length > value.length) return false;
  for (let i = 0; i < part.length; i++) if (part[i] !== '?' && part[i] !== value[at + i]) return false;
  return true;
}

/**
 * Whether `value` matches the glob, whole. The literal runs between stars are placed leftmost in
 * order (the first at the start, the last at the end): a leftmost placement never loses a match
 * a later one would find, so nothing is retried — at most value × pattern steps, where a RegExp
 * of `*-*-*-prod` backtracked cubically (1 s on a model name of 1,600 dashes, found by a review).
 */
function globMatches(glob: Glob, value: string): boolean {
  const { parts } = glob;
  const first = parts[0]!;
  if (parts.length === 1) return first.length === value.length && partAt(first, value, 0);
  const last = parts[parts.length - 1]!;
  if (first.length + last.length > value.length) return false;
  if (!partAt(first, value, 0) || !partAt(last, value, value.length - last.length)) return false;
  let at = first.length;
  const end = value.length - last.length;
  for (const part of parts.slice(1, -1)) {
    let found = -1;
    for (let i = at; i + part.length <= end; i++) {
      if (partAt(part, value, i)) {
        found = i;
        break;
      }
    }
    if (found < 0) return false;
    at = found + part.length;
  }
  return true;
}

const compile = (p: string | readonly string[] | undefined) =>
  p === undefined ? undefined : (typeof p === 'string' ? [p] : p).map(compileGlob);

/** Every alert kind of the schema (the type makes the list complete): a `kind` glob must match one. */
const ALERT_KINDS = Object.keys({
  FEATURE_DRIFT: true,
  PREDICTION_DRIFT: true,
  PERFORMANCE: true,
  DRIFT_WINDOW_QUARANTINED: true,
  DATA_QUALITY: true,
  TRAINING_SERVING_SKEW: true,
  ESTIMATED_PERFORMANCE: true,
  SEQUENTIAL_DRIFT: true,
} satisfies Record<DriftAlert['kind'], true>);

/**
 * Refuses a `kind` or `severity` glob that no possible value matches (`severity: crit`,
 * `kind: FEATURE_DRFT`): the route was accepted and silently never matched.
 */
function checkClosedField(globs: readonly Glob[] | undefined, values: readonly string[], field: string): void {
  if (globs === undefined) return;
  globs.forEach((g, i) => {
    if (!values.some((v) => globMatches(g, v))) {
      const at = globs.length === 1 ? field : `${field}.${i}`;
      throw new ConfigError(at, `"${g.source}" matches no ${field.split('.').pop()} (one of ${values.join(', ')})`);
    }
  });
}

/**
 * Headers a receiver may not set: the request's framing (a `content-length` that disagrees with
 * the body failed every delivery, retried as an outage) and hop-by-hop headers, which fetch owns.
 */
const FORBIDDEN_HEADERS = new Set([
  'content-length',
  'transfer-encoding',
  'connection',
  'keep-alive',
  'upgrade',
  'te',
  'trailer',
  'proxy-connection',
  'host',
  'expect',
]);

/**
 * The header the router sets on every message: its delivery id, the same on every attempt, retry
 * and restart, so a receiver can drop a repeat (one slower than the timeout acted on each attempt).
 */
export const IDEMPOTENCY_HEADER = 'idempotency-key';

/**
 * Refuses a header fetch would refuse on every delivery: a value with CR, LF or NUL, or a
 * character above U+00FF (a TypeError quoting the value — maybe a token — into logs and the
 * delivery record). The message never shows the value. Refuses too two names differing only in
 * case (header names are case-insensitive: fetch joined `Content-Type` and the client's
 * `content-type` into `application/json, application/json`, which Express answers 400 and Fastify
 * 415: every alert recorded failed; found by a review), and the idempotency key the router sets.
 */
function checkHeaders(headers: Readonly<Record<string, string>>, field: string): void {
  const seen = new Map<string, string>();
  for (const [header, value] of Object.entries(headers)) {
    const lower = header.toLowerCase();
    if (FORBIDDEN_HEADERS.has(lower)) {
      throw new ConfigError(`${field}.${header}`, 'is set by the HTTP client (framing or hop-by-hop): remove it');
    }
    if (lower === IDEMPOTENCY_HEADER) {
      throw new ConfigError(`${field}.${header}`, "is set by the router (each message's delivery id): remove it");
    }
    const first = seen.get(lower);
    if (first !== undefined) {
      throw new ConfigError(
        `${field}.${header}`,
        `repeats header ${first} (header names are case-insensitive): keep one`,
      );
    }
    seen.set(lower, header);
    // biome-ignore lint/suspicious/noControlCharactersInRegex: the characters refused
    if (/[\r\n\u0000]|[^\u0000-\u00ff]/.test(value)) {
      throw new ConfigError(
        `${field}.${header}`,
        'value has a line break, a NUL or a character above U+00FF (value not shown): no request could carry it',
      );
    }
  }
}

/** `user:password` of a URL, percent-decoded (a `%zz` the URL parser let through stays as it is). */
const decoded = (part: string) => {
  try {
    return decodeURIComponent(part);
  } catch {
    return part;
  }
};

/**
 * A receiver URL with credentials (`https://user:password@host/…`) as fetch can send it: the
 * credentials move to an `Authorization: Basic` header and leave the URL. Node's fetch refuses a
 * URL that carries them (a TypeError quoting the whole URL, password included, which was retried,
 * logged and stored); curl and most webhook tools take them as Basic auth, so they mean the same
 * here. Both those credentials and an `authorization` header is ambiguous: a ConfigError.
 */
function credentialsToHeader(
  text: string,
  headers: Readonly<Record<string, string>>,
  field: string,
): { url: string; headers: Readonly<Record<string, string>> } {
  const url = new URL(text);
  if (url.username === '' && url.password === '') return { url: text, headers };
  if (Object.keys(headers).some((h) => h.toLowerCase() === 'authorization')) {
    throw new ConfigError(
      `${field}.url`,
      'has credentials (user:password@) and the receiver sets an authorization header: keep one',
    );
  }
  const basic = Buffer.from(`${decoded(url.username)}:${decoded(url.password)}`, 'utf8').toString('base64');
  url.username = '';
  url.password = '';
  return { url: url.href, headers: { ...headers, authorization: `Basic ${basic}` } };
}

/** Validates a routes document; a ConfigError names the field, e.g. `routes.yaml.routes.0.receivers`. */
export function parseRoutes(document: unknown, source = 'routes'): RoutingTable {
  const doc = checkConfigDocument(documentShape, document, source);
  const receivers = new Map<string, Receiver>();
  for (const [n, r] of Object.entries(doc.receivers)) {
    const perMinute = r.rate_limit?.per_minute ?? ROUTING_DEFAULTS.perMinute;
    checkHeaders(r.headers ?? {}, `${source}.receivers.${n}.headers`);
    const { url, headers } = credentialsToHeader(r.url, r.headers ?? {}, `${source}.receivers.${n}`);
    receivers.set(n, {
      name: n,
      url,
      format: r.format,
      headers,
      rateLimit: { perMs: perMinute / 60_000, burst: r.rate_limit?.burst ?? ROUTING_DEFAULTS.burst },
    });
  }
  const known = (list: readonly string[], field: string) => {
    list.forEach((n, i) => {
      if (!receivers.has(n)) throw new ConfigError(`${source}.${field}.${i}`, `unknown receiver "${n}"`);
    });
  };
  const routes = (doc.routes ?? []).map((r, i): Route => {
    known(r.receivers, `routes.${i}.receivers`);
    const match = {
      model: compile(r.match?.model),
      kind: compile(r.match?.kind),
      severity: compile(r.match?.severity),
    };
    checkClosedField(match.kind, ALERT_KINDS, `${source}.routes.${i}.match.kind`);
    checkClosedField(match.severity, SEVERITIES, `${source}.routes.${i}.match.severity`);
    return {
      match,
      receivers: r.receivers,
      continue: r.continue ?? false,
    };
  });
  known(doc.default ?? [], 'default');
  if (routes.length === 0 && doc.default === undefined) {
    throw new ConfigError(source, 'no routes and no default: no alert would be sent');
  }
  return {
    groupWindowMs: doc.group_window ?? ROUTING_DEFAULTS.groupWindowMs,
    receivers,
    routes,
    defaultReceivers: doc.default ?? [],
  };
}

/** Parses routes text (YAML, of which JSON is a subset) and validates it; `source` prefixes field names. */
export function parseRoutesText(text: string, source = 'routes'): RoutingTable {
  return parseRoutes(parseConfigText(text, source), source);
}

/**
 * The severity of an alert: `evidence.severity` when the producer set one (info, warning,
 * critical); otherwise PERFORMANCE and DRIFT_WINDOW_QUARANTINED are critical, a FEATURE_DRIFT
 * alert with at least half the features drifted is critical, other drift is a warning.
 */
export function severityOf(alert: DriftAlert): Severity {
  try {
    const evidence = JSON.parse(alert.evidence) as unknown;
    if (typeof evidence === 'object' && evidence !== null && 'severity' in evidence) {
      const s = (evidence as { severity: unknown }).severity;
      if (typeof s === 'string' && (SEVERITIES as readonly string[]).includes(s)) return s as Severity;
    }
  } catch {
    // evidence that is not JSON carries no severity
  }
  switch (alert.kind) {
    case 'PERFORMANCE':
    case 'DRIFT_WINDOW_QUARANTINED':
      return 'critical';
    case 'FEATURE_DRIFT':
      return (alert.share_drifted ?? 0) >= 0.5 ? 'critical' : 'warning';
    default:
      return 'warning';
  }
}

const fits = (patterns: readonly Glob[] | undefined, value: string) =>
  patterns === undefined || patterns.some((p) => globMatches(p, value));

/** The receivers of an alert: routes in order (first match wins unless `continue`), else the default. No repeats. */
export function receiversFor(table: RoutingTable, alert: DriftAlert, severity: Severity = severityOf(alert)): string[] {
  const out = new Set<string>();
  let matched = false;
  for (const route of table.routes) {
    const m = route.match;
    if (!fits(m.model, alert.model) || !fits(m.kind, alert.kind) || !fits(m.severity, severity)) continue;
    matched = true;
    for (const r of route.receivers) out.add(r);
    if (!route.continue) break;
  }
  if (!matched) for (const r of table.defaultReceivers) out.add(r);
  return [...out];
}
