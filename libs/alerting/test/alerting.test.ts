import type { DriftAlert } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import {
  type AlertMessage,
  ANSWERS_TO_GIVE_UP,
  asksWaitBeyondBudget,
  checkShows,
  checkSpacingMs,
  failingMessageVerdict,
  fullBucket,
  groupAlerts,
  halvesOf,
  honouredRetryAfterMs,
  looksMisconfigured,
  MAX_EVIDENCE_CHARS,
  MAX_JSON_BODY_BYTES,
  MAX_RETRY_AFTER_MS,
  mayHaveBeenTaken,
  misconfiguredSign,
  nextRetryDelay,
  parseRoutesText,
  planSends,
  type RateLimit,
  type RetryPolicy,
  type RoutedAlert,
  receiversFor,
  receiverWaitUntil,
  regroupAlerts,
  renderDeliveryCheck,
  renderJson,
  renderSlack,
  retryAfterMs,
  severityOf,
  splitSends,
  verdictOf,
} from '../src/index.js';

const T0 = Date.UTC(2026, 0, 1);

function alert(over: Partial<DriftAlert> = {}): DriftAlert {
  return {
    alert_id: 'a1',
    kind: 'FEATURE_DRIFT',
    model: 'fraud',
    model_version: 'v1',
    feature: 'amount',
    window_start: T0,
    window_end: T0 + 60_000,
    event_time: T0 + 60_000,
    method: 'psi',
    statistic: 0.31,
    p_value: null,
    threshold: 0.2,
    share_drifted: 0.25,
    evidence: '{}',
    ...over,
  };
}
const routed = (a: DriftAlert): RoutedAlert => ({ alert: a, severity: severityOf(a) });

const ROUTES = `
version: 1
group_window: 5m
receivers:
  oncall: { url: "https://hooks.example/oncall", format: slack, rate_limit: { per_minute: 6, burst: 2 } }
  team: { url: "http://127.0.0.1:9/team" }
  audit: { url: "http://127.0.0.1:9/audit", headers: { X-Token: abc } }
routes:
  - match: { model: "fraud*", severity: critical }
    receivers: [oncall]
    continue: true
  - match: { kind: [FEATURE_DRIFT, PREDICTION_DRIFT] }
    receivers: [team, oncall]
  - match: { model: "churn" }
    receivers: [audit]
default: [audit]
`;

describe('routes file', () => {
  const table = parseRoutesText(ROUTES, 'routes.yaml');

  it('parses receivers, defaults and the group window', () => {
    expect(table.groupWindowMs).toBe(300_000);
    expect(table.receivers.get('team')).toMatchObject({ format: 'json', rateLimit: { perMs: 30 / 60_000, burst: 10 } });
    expect(table.receivers.get('oncall')).toMatchObject({
      format: 'slack',
      rateLimit: { perMs: 6 / 60_000, burst: 2 },
    });
    expect(table.receivers.get('audit')?.headers).toEqual({ 'X-Token': 'abc' });
  });

  it('routes by model glob, kind list and severity; first match wins unless continue; default otherwise', () => {
    // critical fraud drift: route 0 (continue) and route 1; oncall once
    expect(receiversFor(table, alert({ model: 'fraud-eu', share_drifted: 0.6 }))).toEqual(['oncall', 'team']);
    // warning fraud drift: only route 1
    expect(receiversFor(table, alert({ model: 'fraud-eu' }))).toEqual(['team', 'oncall']);
    // critical fraud performance: route 0 then nothing else matches (kind) → only oncall, not the default
    expect(receiversFor(table, alert({ kind: 'PERFORMANCE', share_drifted: null }))).toEqual(['oncall']);
    expect(receiversFor(table, alert({ model: 'churn', kind: 'PERFORMANCE' }))).toEqual(['audit']);
    // nothing matches: default
    expect(receiversFor(table, alert({ model: 'other', kind: 'DRIFT_WINDOW_QUARANTINED' }))).toEqual(['audit']);
    // globs are anchored and literal outside * and ?
    expect(receiversFor(table, alert({ model: 'xfraud', kind: 'PERFORMANCE' }))).toEqual(['audit']);
  });

  it("moves a URL's credentials into an Authorization: Basic header (fetch refuses them in the URL)", () => {
    const t = parseRoutesText(
      'receivers: { a: { url: "https://bot:S3CRET%40x@hooks.example/services/T0", headers: { X-Token: abc } } }\ndefault: [a]',
    );
    const receiver = t.receivers.get('a');
    expect(receiver?.url).toBe('https://hooks.example/services/T0');
    expect(receiver?.headers).toEqual({
      'X-Token': 'abc',
      authorization: `Basic ${Buffer.from('bot:S3CRET@x').toString('base64')}`,
    });
    // A request can be built from it, as it could not before.
    expect(() => new Request(receiver!.url, { headers: receiver!.headers })).not.toThrow();
  });

  it('refuses URL credentials beside an authorization header, naming the receiver, without the password', () => {
    const text =
      'receivers: { a: { url: "https://bot:S3CRET@h/x", headers: { Authorization: "Bearer t" } } }\ndefault: [a]';
    expect(() => parseRoutesText(text, 'routes.yaml')).toThrow(
      /^routes\.yaml\.receivers\.a\.url: has credentials \(user:password@\) and the receiver sets an authorization header: keep one$/,
    );
  });

  it.each([
    [
      'routes: [{ match: { severity: crit }, receivers: [a] }]',
      'routes.yaml.routes.0.match.severity: "crit" matches no severity',
    ],
    [
      'routes: [{ match: { kind: [PERFORMANCE, FEATURE_DRFT] }, receivers: [a] }]',
      'routes.yaml.routes.0.match.kind.1: "FEATURE_DRFT" matches no kind',
    ],
    [
      'routes: [{ match: { kind: "*_DRFT" }, receivers: [a] }]',
      'routes.yaml.routes.0.match.kind: "*_DRFT" matches no kind',
    ],
  ])('refuses a kind or severity no alert can have (%#)', (routes, message) => {
    expect(() => parseRoutesText(`receivers: { a: { url: "http://x/" } }\n${routes}`, 'routes.yaml')).toThrow(message);
  });

  it('accepts kind and severity globs that match a value', () => {
    const t = parseRoutesText(
      'receivers: { a: { url: "http://x/" } }\nroutes: [{ match: { kind: "*_DRIFT", severity: [crit*, warning] }, receivers: [a] }]',
    );
    expect(receiversFor(t, alert({ kind: 'PREDICTION_DRIFT', share_drifted: null }))).toEqual(['a']);
  });

  it.each([
    ['X-Token: "abc\\r\\nX-Evil: 1"', 'X-Token'],
    ['X-Token: "sécret\\u2603"', 'X-Token'],
    ['Content-Length: "10"', 'Content-Length'],
    ['transfer-encoding: chunked', 'transfer-encoding'],
    ['Connection: close', 'Connection'],
  ])('refuses a header no request could carry, naming it without its value (%#)', (header, name) => {
    const text = `receivers: { a: { url: "http://x/", headers: { ${header} } } }\ndefault: [a]`;
    let message = '';
    try {
      parseRoutesText(text, 'routes.yaml');
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message.startsWith(`routes.yaml.receivers.a.headers.${name}: `)).toBe(true);
    expect(message).not.toMatch(/abc|sécret|chunked|close|10/);
  });

  it('matches model globs whole, `*` any run and `?` one character', () => {
    const cases: Array<[string, string, boolean]> = [
      ['fraud*', 'fraud', true],
      ['fraud*', 'xfraud', false],
      ['*-*-*-prod', 'a-b-c-prod', true],
      ['*-*-*-prod', 'a-b-prod', false],
      ['a?c', 'abc', true],
      ['a?c', 'ac', false],
      ['a.c', 'abc', false],
      ['*', 'x', true],
      ['a*a', 'a', false],
      ['a*a', 'aa', true],
      ['*ab*ab*', 'xabyab', true],
      ['*ab*ab*', 'xaab', false],
      ['?*?', 'ab', true],
      ['?*?', 'a', false],
    ];
    for (const [glob, model, expected] of cases) {
      const t = parseRoutesText(
        `receivers: { a: { url: "http://x/" } }\nroutes: [{ match: { model: ${JSON.stringify(glob)} }, receivers: [a] }]`,
      );
      expect([glob, model, receiversFor(t, alert({ model })).length === 1]).toEqual([glob, model, expected]);
    }
  });

  it('matches a glob in time linear in the model name (no backtracking)', () => {
    const t = parseRoutesText(
      'receivers: { a: { url: "http://x/" } }\nroutes: [{ match: { model: "*-*-*-prod" }, receivers: [a] }]',
    );
    // As a RegExp this backtracked cubically: 1 s at 1,600 dashes, several at 3,000.
    const started = performance.now();
    expect(receiversFor(t, alert({ model: `${'-'.repeat(3_000)}x` }))).toEqual([]);
    expect(receiversFor(t, alert({ model: `${'-'.repeat(3_000)}prod` }))).toEqual(['a']);
    expect(performance.now() - started).toBeLessThan(2_000); // linear: far below the seconds it backtracked; slack for a loaded run
  });

  it('without a default, an unmatched alert has no receiver', () => {
    const t = parseRoutesText(
      'receivers: { a: { url: "http://x/" } }\nroutes: [{ match: { model: m }, receivers: [a] }]',
    );
    expect(receiversFor(t, alert())).toEqual([]);
  });

  it.each([
    [
      'receivers: { a: { url: "http://x/" } }\nroutes: [{ receivers: [b] }]',
      'routes.yaml.routes.0.receivers.0: unknown receiver "b"',
    ],
    ['receivers: { a: { url: "ftp://x/" } }\ndefault: [a]', 'routes.yaml.receivers.a.url: must be an http(s) URL'],
    ['receivers: { a: { url: "http://x/", format: teams } }\ndefault: [a]', 'routes.yaml.receivers.a.format'],
    [
      'receivers: { a: { url: "http://x/" } }\ndefault: [a]\nroutes: [{ receivers: [a], match: { modle: x } }]',
      'routes.yaml.routes.0.match',
    ],
    ['receivers: { a: { url: "http://x/" } }', 'routes.yaml: no routes and no default'],
    [
      'receivers: { a: { url: "http://x/" } }\ndefault: [a]\ngroup_window: 2d',
      'routes.yaml.group_window: must be at most',
    ],
    [
      'receivers: { a: { url: "http://x/", rate_limit: { per_minute: 0 } } }\ndefault: [a]',
      'routes.yaml.receivers.a.rate_limit.per_minute',
    ],
    [
      'receivers: { a: { url: "http://x/", rate_limit: { per_minute: 0.000001 } } }\ndefault: [a]',
      'routes.yaml.receivers.a.rate_limit.per_minute: must be at least 1/60 (one message an hour)',
    ],
    // Header names are case-insensitive: fetch joined the values of two spellings (found by a review).
    [
      'receivers: { a: { url: "http://x/", headers: { Authorization: "Bearer t", authorization: "Bearer u" } } }\ndefault: [a]',
      'routes.yaml.receivers.a.headers.authorization: repeats header Authorization (header names are case-insensitive): keep one',
    ],
    [
      'receivers: { a: { url: "http://x/", headers: { Idempotency-Key: k } } }\ndefault: [a]',
      "routes.yaml.receivers.a.headers.Idempotency-Key: is set by the router (each message's delivery id): remove it",
    ],
    ['receivers: [', 'routes.yaml: not valid YAML/JSON'],
    // Hostile files are refused at once (see @driftline/core parseConfigText): no alias, no deep nesting.
    ['a: &x [1]\nb: [*x, *x]', 'routes.yaml: not valid YAML/JSON: aliases (*name) are not supported'],
    ['['.repeat(3_000), 'routes.yaml: not valid YAML/JSON: brackets nest deeper than 64 levels'],
  ])('refuses a bad file naming the field (%#)', (text, message) => {
    expect(() => parseRoutesText(text, 'routes.yaml')).toThrow(message);
  });
});

describe('severity', () => {
  it('derives it from the kind and the share drifted, or takes evidence.severity', () => {
    expect(severityOf(alert())).toBe('warning');
    expect(severityOf(alert({ share_drifted: 0.5 }))).toBe('critical');
    expect(severityOf(alert({ kind: 'PREDICTION_DRIFT', share_drifted: null }))).toBe('warning');
    expect(severityOf(alert({ kind: 'PERFORMANCE' }))).toBe('critical');
    expect(severityOf(alert({ kind: 'DRIFT_WINDOW_QUARANTINED' }))).toBe('critical');
    expect(severityOf(alert({ evidence: '{"severity":"info"}', share_drifted: 0.9 }))).toBe('info');
    expect(severityOf(alert({ evidence: '{"severity":"panic"}' }))).toBe('warning');
    expect(severityOf(alert({ evidence: 'not json' }))).toBe('warning');
  });
});

describe('grouping', () => {
  it('groups by model, kind and event-time bucket; drops repeated ids; keeps order', () => {
    const W = 60_000;
    const alerts = [
      alert({ alert_id: 'a', event_time: T0 + 1_000 }),
      alert({ alert_id: 'b', event_time: T0 + 2_000, kind: 'PERFORMANCE' }),
      alert({ alert_id: 'c', event_time: T0 + 59_000, share_drifted: 0.7 }),
      alert({ alert_id: 'a', event_time: T0 + 1_000 }),
      alert({ alert_id: 'd', event_time: T0 + 61_000 }),
      alert({ alert_id: 'e', event_time: T0 + 3_000, model: 'churn' }),
    ].map(routed);
    const groups = groupAlerts(alerts, W);
    expect(groups.map((g) => g.alerts.map((a) => a.alert.alert_id))).toEqual([['a', 'c'], ['b'], ['d'], ['e']]);
    expect(groups[0]!.severity).toBe('critical'); // the worst member's
    expect(groups[2]!.severity).toBe('warning');
  });

  it('never merges two groups whose fields joined by `/` read the same (found by a review)', () => {
    // Without grouping (window 0) the bucket is the alert id: `a` + `x/FEATURE_DRIFT/y` and
    // `a/FEATURE_DRIFT/x` + `y` were one group, sent as one message of model `a`.
    const alerts = [
      alert({ alert_id: 'x/FEATURE_DRIFT/y', model: 'a' }),
      alert({ alert_id: 'y', model: 'a/FEATURE_DRIFT/x' }),
    ].map(routed);
    const groups = groupAlerts(alerts, 0);
    expect(groups.map((g) => [g.model, g.alerts.map((a) => a.alert.alert_id)])).toEqual([
      ['a', ['x/FEATURE_DRIFT/y']],
      ['a/FEATURE_DRIFT/x', ['y']],
    ]);
  });

  it('halves a message not taken, the parts keeping its key; at most two sends per halving', () => {
    const message = groupAlerts(
      ['a', 'b', 'c', 'd', 'e'].map((id) => routed(alert({ alert_id: id, share_drifted: id === 'e' ? 0.9 : 0.1 }))),
      60_000,
    )[0]!;
    const [first, second] = halvesOf(message);
    expect(first.alerts.map((a) => a.alert.alert_id)).toEqual(['a', 'b', 'c']);
    expect(second.alerts.map((a) => a.alert.alert_id)).toEqual(['d', 'e']);
    expect([first.key, second.key]).toEqual([message.key, message.key]);
    expect([first.severity, second.severity]).toEqual(['warning', 'critical']); // each part's worst
    // Enough to isolate one alert: 2 per level of halving, ⌈log₂ n⌉ levels.
    expect([1, 2, 3, 4, 5, 22, 40, 1_000].map(splitSends)).toEqual([0, 2, 4, 4, 6, 10, 12, 20]);
  });

  it('forms again as it was a message the receiver may have taken (its key kept), groups the rest (found by a review)', () => {
    const W = 60_000;
    const [g0, g1, g2] = [0, 1, 2].map((g) => routed(alert({ alert_id: `g${g}`, event_time: T0 + g * 3_600_000 })));
    // A digest of g1 and g2 sent before (no answer): on the retry, the same digest; g0 its group.
    const digest: AlertMessage = {
      key: 'digest',
      model: 'fraud',
      kind: 'FEATURE_DRIFT',
      severity: 'warning',
      alerts: [g1!, g2!],
    };
    const again = regroupAlerts([g0!, g1!, g2!], W, [digest]);
    expect(again.asSent.map((m) => [m.key, m.alerts.map((a) => a.alert.alert_id)])).toEqual([['digest', ['g1', 'g2']]]);
    expect(again.grouped.map((m) => m.alerts.map((a) => a.alert.alert_id))).toEqual([['g0']]);
    // One of its alerts recorded meanwhile: not kept, the rest grouped as usual.
    const partly = regroupAlerts([g0!, g2!], W, [digest]);
    expect(partly.asSent).toEqual([]);
    expect(partly.grouped.map((m) => m.alerts.map((a) => a.alert.alert_id))).toEqual([['g0'], ['g2']]);
    expect(regroupAlerts([g0!, g1!], W, []).grouped).toEqual(groupAlerts([g0!, g1!], W));
  });
});

describe('rate limit (token bucket)', () => {
  const limit: RateLimit = { perMs: 6 / 60_000, burst: 2 }; // one token every 10 s
  const msg = (id: string): AlertMessage => groupAlerts([routed(alert({ alert_id: id }))], 0)[0]!;

  it('sends up to the tokens, merges the excess into one digest, never drops', () => {
    const plan = planSends([msg('a'), msg('b'), msg('c'), msg('d')], fullBucket(limit, T0), limit, T0);
    expect(plan.send.map((m) => m.key)).toEqual(['fraud/FEATURE_DRIFT/a', 'digest']);
    expect(plan.send[1]!.alerts.map((a) => a.alert.alert_id)).toEqual(['b', 'c', 'd']);
    expect(plan.bucket.tokens).toBe(0);
    // no token: wait for one (10 s), then one more message goes out
    const next = planSends([msg('e')], plan.bucket, limit, T0 + 4_000);
    expect(next.send).toEqual([]);
    expect(next.waitMs).toBe(6_000);
    const later = planSends([msg('e')], next.bucket, limit, T0 + 10_000);
    expect(later.send.map((m) => m.alerts[0]!.alert.alert_id)).toEqual(['e']);
  });

  it('refills to the burst, not beyond', () => {
    const plan = planSends([msg('a')], { tokens: 0, at: T0 }, limit, T0 + 3_600_000);
    expect(plan.bucket.tokens).toBe(1);
  });
});

describe('retry schedule', () => {
  const policy: RetryPolicy = { maxAttempts: 5, initialMs: 100, maxDelayMs: 1_000, budgetMs: 3_000, jitter: 0.5 };

  it('doubles, caps, jitters downwards, and stops at the attempt or time budget', () => {
    expect([1, 2, 3, 4].map((n) => nextRetryDelay(policy, n, 0, () => 0))).toEqual([100, 200, 400, 800]);
    expect(nextRetryDelay({ ...policy, maxAttempts: 10 }, 6, 0, () => 0)).toBe(1_000);
    expect(nextRetryDelay(policy, 1, 0, () => 1)).toBe(50);
    expect(nextRetryDelay(policy, 5, 0, () => 0)).toBeUndefined();
    expect(nextRetryDelay(policy, 3, 2_700, () => 0)).toBeUndefined(); // 2.7 s + 0.4 s > 3 s
    expect(nextRetryDelay(policy, 3, 2_600, () => 0)).toBe(400);
  });

  it("honours the receiver's Retry-After beyond the delay cap, never beyond the budget", () => {
    expect(nextRetryDelay(policy, 1, 0, () => 0, 2_000)).toBe(2_000); // above maxDelayMs 1 s
    expect(nextRetryDelay(policy, 4, 0, () => 0, 10)).toBe(800); // a shorter ask does not shorten
    expect(nextRetryDelay(policy, 1, 1_500, () => 0, 2_000)).toBeUndefined(); // 1.5 + 2 s > 3 s budget
    expect(retryAfterMs('120', 0)).toBe(120_000);
    expect(retryAfterMs(' 0 ', 0)).toBe(0);
    expect(retryAfterMs('Wed, 21 Oct 2026 07:28:10 GMT', Date.UTC(2026, 9, 21, 7, 28, 0))).toBe(10_000);
    expect(retryAfterMs('Wed, 21 Oct 2026 07:28:10 GMT', Date.UTC(2027, 0, 1))).toBe(0); // in the past
    for (const bad of [null, undefined, '', '-5', '1.5', 'soon']) expect(retryAfterMs(bad, 0)).toBeUndefined();
  });

  it('a Retry-After the budget cannot hold keeps the receiver unasked until it ends, at most an hour (found by a review)', () => {
    // Exactly when the budget stops for the ask (nextRetryDelay undefined), and not before.
    expect(asksWaitBeyondBudget(policy, 0, 600_000)).toBe(true);
    expect(nextRetryDelay(policy, 1, 0, () => 0, 600_000)).toBeUndefined();
    expect(asksWaitBeyondBudget(policy, 1_500, 2_000)).toBe(true); // 1.5 + 2 s > 3 s: what is left cannot hold it
    expect(asksWaitBeyondBudget(policy, 0, 2_000)).toBe(false); // waited within the budget
    expect(nextRetryDelay(policy, 1, 0, () => 0, 2_000)).toBe(2_000);
    expect(asksWaitBeyondBudget(policy, 0, 3_000)).toBe(false); // ends with the budget: still held by it
    for (const none of [undefined, 0]) expect(asksWaitBeyondBudget(policy, 5_000, none)).toBe(false);
    expect(receiverWaitUntil(600_000, T0)).toBe(T0 + 600_000);
    expect(receiverWaitUntil(86_400_000, T0)).toBe(T0 + MAX_RETRY_AFTER_MS); // a day: asked again after the hour
    expect(MAX_RETRY_AFTER_MS).toBe(3_600_000);
  });

  it('honours a Retry-After on a 429 or a 503 only: a 500, 404 or 301 asking a wait is retried like any other (found by a review)', () => {
    for (const status of [429, 503]) expect(honouredRetryAfterMs(status, '600', T0)).toBe(600_000);
    for (const status of [500, 502, 404, 401, 301, 308, 408]) {
      expect(honouredRetryAfterMs(status, '600', T0), String(status)).toBeUndefined();
    }
    expect(honouredRetryAfterMs(503, null, T0)).toBeUndefined();
  });

  it('reads the three HTTP-date forms a recipient must accept (RFC 9110 §5.6.7), in UTC (found by a review)', () => {
    const at = Date.UTC(2026, 10, 6, 8, 49, 37);
    const before = at - 600_000;
    expect(retryAfterMs('Fri, 06 Nov 2026 08:49:37 GMT', before)).toBe(600_000); // IMF-fixdate
    expect(retryAfterMs('Friday, 06-Nov-26 08:49:37 GMT', before)).toBe(600_000); // RFC 850
    expect(retryAfterMs('Fri Nov  6 08:49:37 2026', before)).toBe(600_000); // asctime, not local time
    expect(retryAfterMs('Fri Nov 16 08:49:37 2026', before)).toBe(600_000 + 10 * 86_400_000);
    // RFC 850's two-digit year: more than 50 years ahead is the century before (in the past: 0).
    expect(retryAfterMs('Sunday, 06-Nov-94 08:49:37 GMT', before)).toBe(0); // 1994, not 2094
    expect(retryAfterMs('Tuesday, 06-Nov-74 08:49:37 GMT', before)).toBe(Date.UTC(2074, 10, 6, 8, 49, 37) - before);
    for (const bad of [
      'Fri, 31 Feb 2026 08:49:37 GMT', // no such day
      'Fri, 06 Nov 2026 24:49:37 GMT',
      'Fri, 06 Nov 2026 08:49:37 UTC',
      'Friday, 06-Nov-2026 08:49:37 GMT', // RFC 850 has a two-digit year
      'Fri Nov 6 08:49:37 2026', // asctime pads the day with a space
      '2026-11-06T08:49:37Z',
    ]) {
      expect(retryAfterMs(bad, before), bad).toBeUndefined();
    }
  });

  it('fails at once only a refusal of the body (400, 413, 415, 422); retries everything else', () => {
    for (const status of [200, 204]) expect(verdictOf(status)).toBe('delivered');
    for (const status of [400, 413, 415, 422]) expect(verdictOf(status)).toBe('failed');
    for (const status of [undefined, 408, 425, 429, 500, 503]) expect(verdictOf(status)).toBe('retry');
    // What an ingress's default backend, a login redirect or an auth gateway answers while the
    // receiver is redeployed: before, failed at once and the alert lost (found by a review).
    for (const status of [301, 302, 307, 401, 403, 404, 405, 410]) expect(verdictOf(status)).toBe('retry');
    // The same line as the delivery check's: a message is given up early only by a receiver shown up.
    for (const status of [undefined, 200, 302, 400, 404, 413, 415, 422, 500]) {
      expect(verdictOf(status) === 'retry').toBe(checkShows(status) === 'down');
    }
  });

  it('names the retried answers a receiver configured wrong gives for ever: redirects, 401, 403, 404, 405, 410 (found by a review)', () => {
    for (const status of [300, 301, 302, 307, 308, 399, 401, 403, 404, 405, 410]) {
      expect(looksMisconfigured(status)).toBe(true);
      expect(verdictOf(status)).toBe('retry'); // named, never given up
    }
    for (const status of [undefined, 200, 299, 400, 402, 406, 408, 413, 422, 429, 500, 503]) {
      expect(looksMisconfigured(status)).toBe(false);
    }
  });

  it('names a host name that does not resolve like those answers, not a resolver failure (found by a review)', () => {
    expect(misconfiguredSign(undefined, 'ENOTFOUND')).toBe('ENOTFOUND');
    expect(misconfiguredSign(404)).toBe('404');
    expect(misconfiguredSign(308, 'ENOTFOUND')).toBe('308'); // an answer's status wins
    // A resolver that failed (EAI_AGAIN), a refused connection, a timeout: an outage.
    for (const code of [undefined, 'EAI_AGAIN', 'ECONNREFUSED', 'ECONNRESET']) {
      expect(misconfiguredSign(undefined, code)).toBeUndefined();
    }
    expect(misconfiguredSign(500)).toBeUndefined();
  });
});

describe('a message still failing after its budget: receiver up or outage', () => {
  it('the receiver is up on enough answers after its failures: other deliveries, or delivery checks it answered', () => {
    // Another message delivered after it was first sent: the receiver is up, no check needed.
    expect(failingMessageVerdict(1, 1)).toBe('receiver-up');
    expect(failingMessageVerdict(3, 1, 'down')).toBe('receiver-up');
    // Nothing delivered after it (alone in its batch, or last): before, this was an outage for ever.
    expect(failingMessageVerdict(0, 1)).toBe('check');
    expect(failingMessageVerdict(1, 1, 'up')).toBe('receiver-up');
    // The check showing it down: never given up during an outage.
    expect(failingMessageVerdict(0, 1, 'down')).toBe('outage');
  });

  it('an attempt without an answer may have been taken, unless no connection was made (found by a review)', () => {
    expect(mayHaveBeenTaken('retry', undefined)).toBe(true); // a timeout
    expect(mayHaveBeenTaken('retry', undefined, 'ECONNRESET')).toBe(true);
    expect(mayHaveBeenTaken('retry', undefined, 'ECONNREFUSED')).toBe(false);
    expect(mayHaveBeenTaken('retry', undefined, 'ENOTFOUND')).toBe(false);
    expect(mayHaveBeenTaken('retry', 500)).toBe(false);
    expect(mayHaveBeenTaken('failed', undefined)).toBe(false); // a request that cannot be built
  });

  it('gives a message up for good only on more than one answer after its second budget (found by a review)', () => {
    // One lucky 2xx of a receiver answering most requests 503 gave the message up: no longer.
    expect(ANSWERS_TO_GIVE_UP).toBeGreaterThan(1);
    expect(failingMessageVerdict(1, ANSWERS_TO_GIVE_UP)).toBe('check');
    expect(failingMessageVerdict(1, ANSWERS_TO_GIVE_UP, 'up')).toBe('check');
    expect(failingMessageVerdict(1, ANSWERS_TO_GIVE_UP, 'down')).toBe('outage');
    expect(failingMessageVerdict(ANSWERS_TO_GIVE_UP, ANSWERS_TO_GIVE_UP)).toBe('receiver-up');
  });

  it("a check answered by the receiver's application shows it up: a 2xx or a refusal of its body (found by reviews)", () => {
    // A receiver rejecting the check's `alerts: []` answered it: before, an outage for ever.
    for (const status of [200, 202, 204, 400, 413, 415, 422]) expect(checkShows(status)).toBe('up');
    // No answer, asked to come back, a server error or a redirect: nothing shown.
    for (const status of [undefined, 408, 425, 429, 500, 502, 503, 504, 301, 302, 101]) {
      expect(checkShows(status)).toBe('down');
    }
    // What an ingress's default backend or an auth gateway answers while the receiver is
    // redeployed: before, "up", and a message failing 503 meanwhile was given up (lost).
    for (const status of [401, 403, 404, 405, 407, 410, 421, 451, 499]) expect(checkShows(status)).toBe('down');
  });

  it('spaces delivery checks by the first retry delay, never above the delay cap (found by a review)', () => {
    expect(checkSpacingMs({ initialMs: 1_000, maxDelayMs: 30_000 })).toBe(1_000);
    // A 10-minute first delay beside a 30-second cap was slept whole: the partition marked stalled.
    expect(checkSpacingMs({ initialMs: 600_000, maxDelayMs: 30_000 })).toBe(30_000);
  });

  it('a delivery check names the failing messages by delivery id, none of their content, in the receiver format', () => {
    const failing = Array.from({ length: 12 }, (_, i) => ({
      deliveryId: `d${i}`,
      alerts: 2,
      attempts: 8,
      httpStatus: i === 0 ? 500 : null,
    }));
    const json = JSON.parse(renderDeliveryCheck(failing, { name: 'team', format: 'json' })) as Record<string, unknown>;
    // The shape of any JSON message (no alerts), so a receiver that reads ours takes it.
    expect(json).toMatchObject({ version: 1, receiver: 'team', group: 'delivery-check', count: 0, alerts: [] });
    const check = json.delivery_check as { text: string; failing: unknown[]; failing_omitted: number };
    expect(check.failing).toHaveLength(10);
    expect(check.failing[0]).toEqual({ delivery_id: 'd0', alerts: 2, attempts: 8, http_status: 500 });
    expect(check.failing_omitted).toBe(2);
    expect(check.text).toMatch(/^driftline delivery check: 12 messages \(24 alerts\) .* \(last: HTTP 500\)/);
    expect(check.text).toMatch(/d0, d1, .* d9 and 2 more$/);
    const slack = JSON.parse(renderDeliveryCheck(failing.slice(1, 2), { name: 'oncall', format: 'slack' })) as {
      text: string;
      blocks: Array<{ text: { text: string } }>;
    };
    expect(slack.text).toMatch(/^driftline delivery check: 1 message \(2 alerts\) .*\(last: no answer\).*: d1$/);
    expect(slack.blocks[0]!.text.text).toBe(slack.text);
  });
});

describe('bodies', () => {
  const group = groupAlerts(
    Array.from({ length: 60 }, (_, i) =>
      routed(alert({ alert_id: `id${i}`, feature: i === 0 ? '<b>&x' : 'amount', evidence: '{"n":5}' })),
    ),
    60_000,
  )[0]!;

  it('generic JSON: every id, 50 alerts in full, the rest counted', () => {
    const body = renderJson(group, 'team');
    expect(body).toMatchObject({
      version: 1,
      receiver: 'team',
      model: 'fraud',
      kind: 'FEATURE_DRIFT',
      count: 60,
      omitted: 10,
    });
    expect(body.alert_ids).toHaveLength(60);
    expect(body.alert_ids_omitted).toBe(0);
    expect(body.alerts).toHaveLength(50);
    expect(body.alerts[0]).toMatchObject({
      alert_id: 'id0',
      severity: 'warning',
      evidence: { n: 5 },
      window_start: '2026-01-01T00:00:00.000Z',
    });
  });

  it('generic JSON: a huge evidence is cut and flagged; a body too large shows fewer alerts in full', () => {
    const huge = groupAlerts(
      Array.from({ length: 50 }, (_, i) =>
        routed(alert({ alert_id: `big${i}`, evidence: JSON.stringify({ drifted: 'x'.repeat(150_000) }) })),
      ),
      60_000,
    )[0]!;
    const body = renderJson(huge, 'team');
    expect(body.alerts[0]).toMatchObject({ evidence_truncated: true });
    expect((body.alerts[0]!.evidence as string).length).toBe(MAX_EVIDENCE_CHARS);
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThanOrEqual(MAX_JSON_BODY_BYTES);
    expect(body.alert_ids).toHaveLength(50);
    expect(body.omitted).toBe(50 - body.alerts.length);
    expect(body.alerts.length).toBeGreaterThanOrEqual(1);
    expect(renderJson(group, 'team').alerts[0]).not.toHaveProperty('evidence_truncated');
  });

  it('generic JSON: a digest of thousands of alerts stays within the bound, its ids cut and counted (found by a review)', () => {
    const digest = groupAlerts(
      Array.from({ length: 3_000 }, (_, i) =>
        routed(alert({ alert_id: `digest-${String(i).padStart(6, '0')}-${'x'.repeat(24)}` })),
      ),
      60_000,
    )[0]!;
    const body = renderJson(digest, 'team');
    expect(Buffer.byteLength(JSON.stringify(body))).toBeLessThanOrEqual(MAX_JSON_BODY_BYTES); // 105,205 for 2,991 before
    expect(body.count).toBe(3_000);
    expect(body.alert_ids.length + body.alert_ids_omitted).toBe(3_000);
    expect(body.alert_ids.length).toBeGreaterThan(0);
    expect(body.alert_ids[0]).toBe(body.alerts[0]!.alert_id); // the first ones, in order
  });

  it('generic JSON: the bound is on UTF-8 bytes, what a receiver limits, not characters (found by a review)', () => {
    // 4,000 CJK characters of evidence each: 3 bytes a character. Counted in characters, all 12
    // alerts of 4,000 made 52,408 characters but 148,408 bytes: a 413 at a 100 KB limit.
    const cjk = groupAlerts(
      Array.from({ length: 50 }, (_, i) => routed(alert({ alert_id: `cjk${i}`, evidence: '漢'.repeat(4_000) }))),
      60_000,
    )[0]!;
    const body = renderJson(cjk, 'team');
    const bytes = Buffer.byteLength(JSON.stringify(body));
    expect(bytes).toBeLessThanOrEqual(MAX_JSON_BODY_BYTES);
    expect(body.alerts.length).toBeGreaterThanOrEqual(1);
    expect(body.alerts[0]!.evidence).toBe('漢'.repeat(4_000)); // shown whole, fewer alerts in full
    expect(body.omitted).toBe(50 - body.alerts.length);
  });

  it('Slack: a model name cannot ping a channel or hide a link in the notification text', () => {
    const hostile = groupAlerts(
      [routed(alert({ model: '<!channel> <https://evil.example/login|fraud>' }))],
      60_000,
    )[0]!;
    const body = renderSlack(hostile);
    expect(body.text).not.toMatch(/[<>]/);
    expect(body.text).toContain('&lt;!channel&gt;');
  });

  it('Slack: text and blocks, escaped, at most 20 alert sections', () => {
    const body = renderSlack(group);
    expect(body.text).toBe('[WARNING] `fraud`: 60 FEATURE_DRIFT alerts');
    expect(body.blocks).toHaveLength(22); // header, 20 sections, context
    expect(JSON.stringify(body.blocks[1])).toContain('&lt;b&gt;&amp;x');
    expect(JSON.stringify(body.blocks[21])).toContain('and 40 more alerts');
  });

  const sectionText = (body: ReturnType<typeof renderSlack>, i = 1) =>
    (body.blocks[i] as { text: { text: string; verbatim?: boolean } }).text;
  const oneAlert = (over: Partial<DriftAlert>) => groupAlerts([routed(alert(over))], 60_000)[0]!;

  it('Slack: names stay inert: no code span closed by a backtick, no line forged by a newline (found by a review)', () => {
    const model = 'm` *URGENT* _please_ ~x~ rotate keys at https://evil.example/reset `x';
    const feature = 'f`\n*ACTION REQUIRED:* visit https://evil.example\n>quoted\u2028line';
    const body = renderSlack(oneAlert({ model, feature, model_version: 'v`2', method: 'psi\r\n*x*' }));
    const { text, verbatim } = sectionText(body);
    expect(verbatim).toBe(true); // no URL or channel name turned into a link
    const lines = text.split('\n');
    expect(lines).toHaveLength(3); // one line per part, whatever the names hold
    // Every backtick pairs up as a code span's delimiters, each span holding one whole name.
    const spans = lines[0]!.match(/`[^`]*`/g) ?? [];
    expect(lines[0]!.replace(/`[^`]*`/g, '')).not.toContain('`');
    expect(spans).toHaveLength(3); // model, version, feature
    expect(spans[0]).toBe('`mˋ *URGENT* _please_ ~x~ rotate keys at https://evil.example/reset ˋx`');
    expect(spans[2]).toBe('`fˋ\\u000a*ACTION REQUIRED:* visit https://evil.example\\u000a&gt;quoted\\u2028line`');
    expect(lines[1]).toMatch(/^`psi\\u000d\\u000a\*x\*` = /);
    // The notification text: the model in a code span too; the header (plain text) on one line.
    expect(body.text).toMatch(/^\[WARNING\] `mˋ [^`]*ˋx`: 1 FEATURE_DRIFT alert$/);
    const header = (body.blocks[0] as { text: { text: string } }).text.text;
    expect(header).not.toMatch(/[\n\r\u2028\u2029]/);
    // An empty name is no empty span (its backticks would pair with the next span's).
    expect(sectionText(renderSlack(oneAlert({ feature: '' }))).text).toContain('feature (empty)');
    expect(sectionText(renderSlack(oneAlert({ feature: '  ' }))).text).toContain('feature (empty)');
  });

  it('Slack: a long name is cut before it is escaped: no half surrogate pair, no half entity (found by a review)', () => {
    const emoji = renderSlack(oneAlert({ model: '😀'.repeat(300) }));
    const lone = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
    for (const t of [sectionText(emoji).text, emoji.text, JSON.stringify(emoji.blocks[0])]) {
      expect(t).not.toMatch(lone);
      expect(t).toContain('😀…');
    }
    const amp = renderSlack(oneAlert({ model: '&'.repeat(200), feature: '<'.repeat(600) }));
    for (const t of [sectionText(amp).text, amp.text, (amp.blocks[0] as { text: { text: string } }).text.text]) {
      // Every & starts a whole entity; the cut text ends in one, then the ellipsis.
      expect(t.replace(/&(amp|lt|gt);/g, '')).not.toContain('&');
      expect(t).toMatch(/&(amp|lt|gt);…/);
    }
    // Bounded once escaped: the model's span at most 500 characters, a section within Slack's 3,000.
    const model = sectionText(amp).text.match(/model (`[^`]*`)/)![1]!;
    expect(model.length).toBeLessThanOrEqual(500);
    const huge = renderSlack(
      oneAlert({
        model: '&'.repeat(256),
        model_version: '>'.repeat(256),
        feature: '<'.repeat(100_000),
        method: '&'.repeat(10_000),
        alert_id: '<'.repeat(10_000),
      }),
    );
    expect(sectionText(huge).text.length).toBeLessThanOrEqual(3_000);
  });
});
