import { cutText, printable } from '@driftline/core';
import type { AlertMessage, RoutedAlert } from './group.js';

/** Alerts listed in full in one body; the rest are counted (`omitted`) and, in JSON, still listed by id. */
export const MAX_DETAILED_ALERTS = { json: 50, slack: 20 } as const;

const iso = (ms: number) => new Date(ms).toISOString();

/**
 * Evidence characters an alert carries in a body: beyond, the text is cut and flagged
 * (`evidence_truncated`). One alert with a huge evidence made its whole group's body too large for
 * its receiver (a 413: every alert of the group recorded failed).
 */
export const MAX_EVIDENCE_CHARS = 4_096;
/**
 * Largest JSON body in UTF-8 bytes (what a receiver's size limit counts): alerts beyond what fits
 * are counted in `omitted` (still listed by id). Counted in characters before, 50 alerts of CJK
 * evidence made 52,408 characters but 148,408 bytes: a 413 at a 100 KB limit (found by a review).
 */
export const MAX_JSON_BODY_BYTES = 96 * 1_024;

function evidenceOf(text: string): { evidence: unknown; evidence_truncated?: true } {
  if (text.length > MAX_EVIDENCE_CHARS)
    return { evidence: cutText(text, MAX_EVIDENCE_CHARS), evidence_truncated: true };
  try {
    return { evidence: JSON.parse(text) as unknown };
  } catch {
    return { evidence: text };
  }
}

/**
 * Longest feature or method name a JSON body shows, in characters: producers do not bound feature
 * names (a reference's column, a segment feature), so a body shows a long one cut rather than the
 * router dead-lettering an alert the retrain-trigger acts on (found by a review).
 */
export const MAX_JSON_NAME_CHARS = 256;

function alertJson({ alert: a, severity }: RoutedAlert) {
  return {
    alert_id: a.alert_id,
    kind: a.kind,
    severity,
    model: a.model,
    model_version: a.model_version,
    feature: a.feature == null ? a.feature : cutText(a.feature, MAX_JSON_NAME_CHARS),
    window_start: iso(a.window_start),
    window_end: iso(a.window_end),
    event_time: iso(a.event_time),
    method: cutText(a.method, MAX_JSON_NAME_CHARS),
    statistic: a.statistic,
    p_value: a.p_value ?? null,
    threshold: a.threshold,
    share_drifted: a.share_drifted ?? null,
    ...evidenceOf(a.evidence),
  };
}

/**
 * The generic JSON body (`version: 1`): the group, the alert ids, and up to 50 alerts in full —
 * fewer when the body would pass MAX_JSON_BODY_BYTES (at least one is always shown). Past that,
 * the ids too are cut (`alert_ids_omitted`): a digest of thousands of alerts after an outage listed
 * every id, passed the bound (105,205 characters for 2,991 alerts) and a receiver's 413 failed them all.
 */
export function renderJson(message: AlertMessage, receiver: string) {
  const all = message.alerts.length;
  let body = jsonBody(message, receiver, MAX_DETAILED_ALERTS.json, all);
  const tooLong = () => Buffer.byteLength(JSON.stringify(body)) > MAX_JSON_BODY_BYTES;
  for (let n = body.alerts.length; n > 1 && tooLong(); ) {
    n = Math.max(1, Math.floor(n / 2));
    body = jsonBody(message, receiver, n, all);
  }
  for (let ids = all; ids > 0 && tooLong(); ) {
    ids = Math.floor(ids / 2);
    body = jsonBody(message, receiver, body.alerts.length, ids);
  }
  return body;
}

function jsonBody(message: AlertMessage, receiver: string, detailed: number, ids: number) {
  const shown = message.alerts.slice(0, detailed);
  return {
    version: 1,
    receiver,
    group: message.key,
    model: message.model ?? null,
    kind: message.kind ?? null,
    severity: message.severity,
    count: message.alerts.length,
    alert_ids: message.alerts.slice(0, ids).map((a) => a.alert.alert_id),
    alert_ids_omitted: message.alerts.length - ids,
    alerts: shown.map(alertJson),
    omitted: message.alerts.length - shown.length,
  };
}

/**
 * One character of alert text as Slack shows it: on one line (control characters, U+2028/U+2029
 * and the bidi controls written as `\u000a`-style text: a newline in a name forged a line of its
 * own) and with Slack's only control characters, `&`, `<`, `>`, as entities (a model named
 * `<!channel>` must not ping a channel).
 */
const slackChar = (c: string) =>
  printable(c)
    .replace(/[\u2028\u2029]/, (x) => `\\u${x.charCodeAt(0).toString(16)}`)
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;');

/**
 * `text` as Slack shows it (`slackChar`), at most `max` characters once escaped: cut before it is
 * escaped, between code points, so neither a surrogate pair nor an entity is cut in half (a cut
 * after escaping left a lone surrogate, or `&am…`). Stops reading at the cut: the text is unbounded.
 */
function slackText(text: string, max: number, char: (c: string) => string = slackChar): string {
  const pieces: string[] = [];
  let length = 0;
  for (const c of text) {
    const piece = char(c);
    pieces.push(piece);
    length += piece.length;
    if (length <= max) continue;
    while (length > max - 1) length -= pieces.pop()!.length;
    return `${pieces.join('')}…`;
  }
  return pieces.join('');
}

/**
 * A name from an alert as an inline code span, where Slack applies no formatting (`*`, `_`, `~`,
 * links): a backtick in it would close the span (Slack has no escape for one inside a span), so it
 * is shown as `ˋ` (U+02CB); the ends are trimmed and an empty name is shown as `(empty)` outside
 * the span, because a span must start and end with a non-blank character — else its backticks pair
 * with the next span's and the name between is formatted after all.
 */
function slackCode(name: string, max: number): string {
  const text = slackText(name.trim(), max - 2, (c) => slackChar(c === '`' ? '\u02cb' : c)).trim();
  return text === '' ? '(empty)' : `\`${text}\``;
}

const fmt = (x: number) => (Number.isFinite(x) ? Number(x.toPrecision(4)).toString() : String(x));

/** `[SEVERITY] model: n kind alerts`; `name` shows the model name (as it is by default). */
export function summaryLine(message: AlertMessage, name: (model: string) => string = (model) => model): string {
  const n = message.alerts.length;
  const what = message.kind ?? 'mixed';
  const who = message.model === undefined ? 'several models' : name(message.model);
  return `[${message.severity.toUpperCase()}] ${who}: ${n} ${what} alert${n === 1 ? '' : 's'}${message.key === 'digest' ? ' (digest: rate limit reached)' : ''}`;
}

/** A Slack-compatible body: `text` (notification fallback) and `blocks` (header, one section per alert up to 20, context). */
export function renderSlack(message: AlertMessage) {
  const shown = message.alerts.slice(0, MAX_DETAILED_ALERTS.slack);
  // The header is plain_text (no formatting); the notification text is mrkdwn: its model a code span.
  const header = slackText(summaryLine(message), 150);
  const text = summaryLine(message, (model) => slackCode(model, 200)); // kind and counts: no free text
  const blocks: unknown[] = [{ type: 'header', text: { type: 'plain_text', text: header, emoji: false } }];
  for (const { alert: a, severity } of shown) {
    // Every name from the alert in a code span, each on this one line (a section holds 3,000 characters).
    const version = a.model_version === '' ? '' : ` version ${slackCode(a.model_version, 300)}`;
    const lines = [
      `*${slackText(a.kind, 50)}* · ${severity} · model ${slackCode(a.model, 500)}${version}${a.feature == null ? '' : ` · feature ${slackCode(a.feature, 500)}`}`,
      `${slackCode(a.method, 200)} = ${fmt(a.statistic)} (threshold ${fmt(a.threshold)})${a.p_value == null ? '' : `, p = ${fmt(a.p_value)}`}${a.share_drifted == null ? '' : `, ${Math.round(a.share_drifted * 100)}% of features drifted`}`,
      `window ${iso(a.window_start)} → ${iso(a.window_end)} · id ${slackCode(a.alert_id, 200)}`,
    ];
    // verbatim: no URL, channel name or mention in the text is turned into a link by Slack.
    blocks.push({ type: 'section', text: { type: 'mrkdwn', text: lines.join('\n'), verbatim: true } });
  }
  const omitted = message.alerts.length - shown.length;
  blocks.push({
    type: 'context',
    elements: [
      {
        type: 'mrkdwn',
        text: omitted > 0 ? `and ${omitted} more alert${omitted === 1 ? '' : 's'} · driftline` : 'driftline',
      },
    ],
  });
  return { text, blocks };
}

/** A message the receiver kept failing, as a delivery check names it: our ids and counts, none of its content. */
export interface FailingDelivery {
  readonly deliveryId: string;
  readonly alerts: number;
  readonly attempts: number;
  /** Of its last attempt; null when that got no answer. */
  readonly httpStatus: number | null;
}

/** Messages a delivery check lists by id; the rest are counted. */
const MAX_CHECK_LISTED = 10;

/**
 * The body of a delivery check: a small message in the receiver's format, sent when a message
 * keeps failing with nothing else delivered after it. A 2xx, or a definite refusal, shows the
 * receiver up (`checkShows`); anything else counts as an outage. It names the failing messages
 * by delivery id only: their content may be what the receiver cannot take. A JSON body has the
 * shape of any message (no alerts, `group: "delivery-check"`) so a receiver that reads ours takes it.
 */
export function renderDeliveryCheck(
  failing: readonly FailingDelivery[],
  receiver: { name: string; format: 'json' | 'slack' },
): string {
  const listed = failing.slice(0, MAX_CHECK_LISTED);
  const alerts = failing.reduce((n, f) => n + f.alerts, 0);
  const last = failing[0];
  const answer = last === undefined || last.httpStatus === null ? 'no answer' : `HTTP ${last.httpStatus}`;
  const text =
    `driftline delivery check: ${failing.length} message${failing.length === 1 ? '' : 's'} ` +
    `(${alerts} alert${alerts === 1 ? '' : 's'}) to this receiver kept failing (last: ${answer}) with nothing else ` +
    'delivered meanwhile. This check reaching you shows the receiver up: each is retried again and, still ' +
    'failing with the receiver shown up once more, is given up (recorded failed in alert_deliveries): ' +
    `${listed.map((f) => f.deliveryId).join(', ')}` +
    (failing.length > listed.length ? ` and ${failing.length - listed.length} more` : '');
  if (receiver.format === 'slack') {
    return JSON.stringify({ text, blocks: [{ type: 'section', text: { type: 'mrkdwn', text } }] });
  }
  return JSON.stringify({
    version: 1,
    receiver: receiver.name,
    group: 'delivery-check',
    model: null,
    kind: null,
    severity: 'warning',
    count: 0,
    alert_ids: [],
    alert_ids_omitted: 0,
    alerts: [],
    omitted: 0,
    delivery_check: {
      text,
      failing: listed.map((f) => ({
        delivery_id: f.deliveryId,
        alerts: f.alerts,
        attempts: f.attempts,
        http_status: f.httpStatus,
      })),
      failing_omitted: failing.length - listed.length,
    },
  });
}

/** The request body for a receiver's format, as JSON text. */
export function renderBody(message: AlertMessage, receiver: { name: string; format: 'json' | 'slack' }): string {
  return JSON.stringify(receiver.format === 'slack' ? renderSlack(message) : renderJson(message, receiver.name));
}
