import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type AlertMessage,
  type AttemptVerdict,
  asksWaitBeyondBudget,
  type FailingDelivery,
  honouredRetryAfterMs,
  IDEMPOTENCY_HEADER,
  MAX_RETRY_AFTER_MS,
  nextRetryDelay,
  type Receiver,
  type RetryPolicy,
  receiverWaitUntil,
  renderBody,
  renderDeliveryCheck,
  verdictOf,
} from '@driftline/alerting';
import { cutText, DriftlineError, redactCredentials, withDeadline } from '@driftline/core';
import { type AlertDeliveryRow, chTime } from '@driftline/warehouse';

/** Bytes of a receiver's error answer kept in the delivery record. */
const ERROR_BODY_BYTES = 256;

export interface DeliverOptions {
  readonly retry: RetryPolicy;
  readonly timeoutMs: number;
  /** Aborted when the service stops: the delivery gives up without a record (the batch is not committed). */
  readonly signal: AbortSignal;
  /**
   * Called after each attempt (keeps the consumer's group membership during long retries) with its
   * status, or without an answer the connection error's code (`ENOTFOUND`, …) when there is one.
   */
  readonly onAttempt?: (verdict: AttemptVerdict, status: number | undefined, code?: string) => Promise<void> | void;
  /**
   * Called between the slices (each at most `retry.maxDelayMs`) of a wait longer than that — a
   * receiver's `Retry-After` within the budget — so the consumer sees progress at least every
   * `maxDelayMs` + `timeoutMs`, the bound the config checks against the stall timeout.
   */
  readonly heartbeat?: () => Promise<void> | void;
  /**
   * A retry budget shared by several messages (the router: a batch's messages to one receiver):
   * it starts at the first retriable failure, runs on across messages while they keep failing,
   * and stops when one is delivered. A permanent refusal (400, 413, 415, 422) neither starts nor
   * stops it, so a healthy receiver keeps a full budget for its next transient failure. Absent: per
   * message.
   */
  readonly sharedBudget?: { startedAt: number | undefined };
  readonly now?: () => number;
}

export const deliveryId = (receiver: string, alertIds: readonly string[]): string =>
  createHash('sha256').update(receiver).update('\u0000').update(alertIds.join('\u0000')).digest('hex').slice(0, 32);

/** Bytes of an answer's first chunk read, so that a URL cut by the record's bound is redacted whole. */
const ERROR_BODY_READ_BYTES = 4_096;

/**
 * The first bytes of an answer's body, credentials redacted, then the rest discarded (a receiver
 * cannot make us buffer much). Redacted before the cut: a URL cut inside its user-info has no `@`
 * left to be recognised by.
 */
async function head(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return '';
  try {
    const { value } = await reader.read();
    if (value === undefined) return '';
    const text = redactCredentials(Buffer.from(value.subarray(0, ERROR_BODY_READ_BYTES)).toString('utf8'));
    return Buffer.from(text).subarray(0, ERROR_BODY_BYTES).toString('utf8');
  } finally {
    await reader.cancel().catch(() => {});
  }
}

/** Characters of a redirect target's origin shown. */
const LOCATION_ORIGIN_CHARS = 200;

/**
 * Where a redirect points, as far as it may be shown: the `Location`'s origin (scheme, host, port)
 * and whether its path and query are the receiver's own, those withheld like the receiver's URL (a
 * Slack webhook's path is its secret, and a redirect to https keeps it). Enough to tell an
 * `http://` URL behind an ingress that redirects to https (`https://host (the same path)`) from a
 * login page (`https://login.host (another path)`).
 */
function redirectTarget(location: string | null, receiverUrl: string): string {
  if (location === null) return 'no Location';
  // Resolved, an empty one is the receiver's own URL: it was shown as a redirect to itself.
  if (location.trim() === '') return 'an empty Location';
  let target: URL;
  try {
    target = new URL(location, receiverUrl);
  } catch {
    return 'an unreadable Location';
  }
  const base = new URL(receiverUrl);
  const origin = cutText(target.origin === 'null' ? target.protocol : target.origin, LOCATION_ORIGIN_CHARS);
  const same = target.pathname === base.pathname && target.search === base.search;
  return `${origin} (${same ? 'the same path' : 'another path'})`;
}

/** The code of a failed connection (`ENOTFOUND`, `ECONNREFUSED`, …): fetch's TypeError carries it as its cause's. */
function connectionCode(error: unknown): string | undefined {
  const cause = (error as { cause?: { code?: unknown } } | undefined)?.cause;
  return typeof cause?.code === 'string' ? cause.code : undefined;
}

/**
 * What went wrong with an attempt that got no answer, without the URL (a Slack webhook URL is a
 * secret) and with any credentials a client's text quotes redacted: it is logged and stored. A
 * timeout names its variable: a receiver slower than it acts on every attempt while none is
 * recorded (found by a review).
 */
function describe(error: unknown, timeoutMs: number): string {
  if (error instanceof Error && error.name === 'TimeoutError') {
    return `no answer within ${timeoutMs} ms (DRIFTLINE_ALERT_ROUTER_TIMEOUT)`;
  }
  const code = connectionCode(error);
  if (code === 'ENOTFOUND') return `${code}: the receiver's host name does not resolve`;
  if (code !== undefined) return `${code}: connection failed`;
  return redactCredentials(error instanceof Error ? `${error.name}: ${error.message}` : String(error));
}

/**
 * The attempt's request, or why none can ever be built (a URL or header fetch refuses: a
 * TypeError): built before fetch, whose own rejection cannot tell such an error from a network
 * failure (both TypeErrors). Not retried: every attempt would fail the same way. A receiver's
 * header replaces the client's of the same name in any case: spread into an object, `Content-Type`
 * beside `content-type` went out as `application/json, application/json`, refused by Express (400)
 * and Fastify (415), every alert recorded failed (found by a review). `idempotencyKey`: a message's
 * delivery id (`Idempotency-Key`); a delivery check has none.
 */
function buildRequest(
  receiver: Receiver,
  body: string,
  signal: AbortSignal,
  idempotencyKey: string | undefined,
): Request | { readonly refused: string } {
  try {
    const headers = new Headers({ 'content-type': 'application/json', 'user-agent': 'driftline-alert-router' });
    for (const [name, value] of Object.entries(receiver.headers)) headers.set(name, value);
    if (idempotencyKey !== undefined) headers.set(IDEMPOTENCY_HEADER, idempotencyKey);
    return new Request(receiver.url, {
      method: 'POST',
      headers,
      body,
      redirect: 'manual',
      signal,
    });
  } catch (error) {
    // The message may quote the URL (`…includes credentials: <URL>`): redacted, path and all dropped.
    const text = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
    return {
      refused: `the request cannot be built: ${redactCredentials(text).replace(/https?:\/\/\S*/gi, '<receiver url>')}`,
    };
  }
}

/**
 * A message its receiver still failed transiently (no answer, a redirect, 401, 403, 404, 429,
 * 5xx, …) when the retry budget ended: retriable, so on its own it fails the batch (an outage).
 * `row` is its record were it given up: the router records it `failed` when the receiver took
 * another message, or a delivery check, after it (the receiver is up; this message is what it
 * cannot take). `asked`: the last answer (a 429 or 503) asked, by `Retry-After`, a wait the budget cannot hold
 * (`asksWaitBeyondBudget`), and until when the receiver is to be sent nothing (`receiverWaitUntil`).
 */
export class ReceiverFailingError extends DriftlineError {
  readonly row: AlertDeliveryRow;
  readonly asked: ReceiverWait | undefined;
  constructor(message: string, row: AlertDeliveryRow, asked?: ReceiverWait) {
    super('SINK_UNAVAILABLE', message, { retriable: true });
    this.name = 'ReceiverFailingError';
    this.row = row;
    this.asked = asked;
  }
}

/** A receiver's `Retry-After`: the wait it asked, and until when it is sent nothing (the wait capped). */
export interface ReceiverWait {
  readonly askedMs: number;
  readonly until: number;
}

/** Why no further attempt starts: the one limit that ended the retries, named (a review found a wait blamed for max attempts). */
function whyStopped(retry: RetryPolicy, attempts: number, elapsedMs: number, askedMs: number | undefined): string {
  if (attempts >= retry.maxAttempts) return `the most attempts, ${retry.maxAttempts}`;
  if (askedMs !== undefined && elapsedMs + askedMs > retry.budgetMs) {
    // Capped as the wait is (`receiverWaitUntil`): `Retry-After: 999…9` read "asked to wait Infinity ms".
    const shown = askedMs > MAX_RETRY_AFTER_MS ? `over an hour (${MAX_RETRY_AFTER_MS} ms honoured)` : `${askedMs} ms`;
    return `the receiver asked to wait ${shown}, beyond the ${retry.budgetMs} ms retry budget`;
  }
  return `the ${retry.budgetMs} ms retry budget is spent`;
}

/**
 * One attempt's outcome: the status (undefined without an answer), its verdict, why it failed, the
 * wait asked, and where a redirect points (`redirectTarget`).
 */
interface AttemptOutcome {
  readonly status: number | undefined;
  readonly verdict: AttemptVerdict;
  readonly error: string;
  readonly askedMs: number | undefined;
  readonly location?: string;
  /** Without an answer: the connection error's code (`ENOTFOUND`, …), when there is one. */
  readonly code?: string;
}

/** One POST of `body` to the receiver within `timeoutMs`; throws a retriable error when stopping. */
async function attempt(
  receiver: Receiver,
  body: string,
  options: Pick<DeliverOptions, 'timeoutMs' | 'signal'>,
  now: () => number,
  idempotencyKey?: string,
): Promise<AttemptOutcome> {
  const result = await withDeadline(
    options.timeoutMs,
    async (signal): Promise<AttemptOutcome> => {
      const request = buildRequest(receiver, body, signal, idempotencyKey);
      if (!(request instanceof Request)) {
        return { status: undefined, verdict: 'failed', error: request.refused, askedMs: undefined };
      }
      const response = await fetch(request);
      const answered = verdictOf(response.status);
      if (answered === 'delivered') {
        await response.body?.cancel().catch(() => {});
        return { status: response.status, verdict: answered, error: '', askedMs: undefined };
      }
      // The status decides; the body only explains. A slow body used to time the attempt out, so
      // a 4xx counted as "no answer" and was retried (found by a review): unread, it is left out.
      // A receiver's answer may echo the request (its URL, credentials included): head() redacts.
      const text = await head(response).catch(() => '(body not read within the timeout)');
      // Retried for ever when it is the receiver's URL that moved: the log names where to.
      const location =
        response.status >= 300 && response.status < 400
          ? redirectTarget(response.headers.get('location'), receiver.url)
          : undefined;
      return {
        status: response.status,
        verdict: answered,
        error: `HTTP ${response.status}${location === undefined ? '' : ` to ${location}`}${text === '' ? '' : `: ${text}`}`,
        ...(location === undefined ? {} : { location }),
        // A 429 or 503 may say when to come back (Slack's rate limits do): waited for, not hammered.
        // Any other status's Retry-After is ignored: a 500 asking 600 s took its receiver off for
        // up to an hour (found by a review).
        askedMs: honouredRetryAfterMs(response.status, response.headers.get('retry-after'), now()),
      };
    },
    options.signal,
  );
  if (result.ok) return result.value;
  if (result.stopped) {
    throw new DriftlineError('SINK_UNAVAILABLE', `delivery to ${receiver.name} abandoned: stopping`, {
      retriable: true,
    });
  }
  const code = connectionCode(result.error);
  return {
    status: undefined,
    verdict: 'retry',
    error: describe(result.error, options.timeoutMs),
    askedMs: undefined,
    ...(code === undefined ? {} : { code }),
  };
}

/**
 * One attempt of a delivery check (`renderDeliveryCheck`): the receiver's answer to a message of
 * ours when one of its messages keeps failing with nothing else delivered after it. What the
 * answer shows of the receiver is `checkShows`'s. Throws a retriable error when stopping.
 */
export function checkReceiver(
  receiver: Receiver,
  failing: readonly FailingDelivery[],
  options: Pick<DeliverOptions, 'timeoutMs' | 'signal' | 'now'>,
): Promise<AttemptOutcome> {
  return attempt(receiver, renderDeliveryCheck(failing, receiver), options, options.now ?? Date.now);
}

/**
 * POSTs one message to one receiver until it is delivered or refused for good (400, 413, 415, 422,
 * or a request that cannot be built: `verdictOf`) and returns the delivery's record. Every attempt
 * carries `Idempotency-Key: <delivery id>`, the same for the same alerts (the id hashes the
 * receiver and the message's alert ids: every attempt, and any later message of the same
 * composition, which the router keeps for one that may have been taken), so a receiver slower than
 * the timeout, which gets the message again on each attempt, can drop the repeats. Throws a
 * retriable error when the retry budget (attempts, total time) ends on a transient failure (any
 * other answer, or none) or the service stops: the batch is retried, nothing committed.
 */
export async function deliver(
  receiver: Receiver,
  message: AlertMessage,
  options: DeliverOptions,
): Promise<AlertDeliveryRow> {
  const now = options.now ?? Date.now;
  const body = renderBody(message, receiver);
  const alertIds = message.alerts.map((a) => a.alert.alert_id);
  const id = deliveryId(receiver.name, alertIds);
  const started = now();
  const budget = options.sharedBudget ?? { startedAt: undefined };
  let attempts = 0;
  let status: number | undefined;
  let error = '';
  let verdict: AttemptVerdict;
  for (;;) {
    attempts++;
    const outcome = await attempt(receiver, body, options, now, id);
    ({ status, verdict } = outcome);
    const askedMs = outcome.askedMs;
    // A delivered record keeps the last failure's text (the row says what it recovered from).
    if (verdict !== 'delivered') error = outcome.error;
    await options.onAttempt?.(verdict, status, outcome.code);
    if (verdict === 'delivered') budget.startedAt = undefined;
    if (verdict !== 'retry') break;
    budget.startedAt ??= now();
    const elapsed = now() - budget.startedAt;
    const delay = nextRetryDelay(options.retry, attempts, elapsed, Math.random, askedMs);
    if (delay === undefined) {
      // The receiver is unreachable or overloaded, not refusing: an outage, retried with the batch
      // (nothing committed) rather than recorded failed and lost once its budget was spent.
      const why = `${error} (${attempts} attempt${attempts === 1 ? '' : 's'} in ${now() - started} ms; ${whyStopped(options.retry, attempts, elapsed, askedMs)})`;
      throw new ReceiverFailingError(
        `receiver ${receiver.name} still failing: ${why}; the batch is retried`,
        record(receiver, message, alertIds, { verdict, attempts, status, error: why, started, finished: now() }),
        asksWaitBeyondBudget(options.retry, elapsed, askedMs)
          ? { askedMs, until: receiverWaitUntil(askedMs, now()) }
          : undefined,
      );
    }
    await pause(receiver, delay, options);
  }
  return record(receiver, message, alertIds, { verdict, attempts, status, error, started, finished: now() });
}

/**
 * Waits `ms` before a retry, in slices of at most `retry.maxDelayMs` with a heartbeat between
 * them. One silent sleep of a 429's `Retry-After: 15` (honoured up to the budget, beyond
 * `maxDelayMs`) outlasted a 5 s DRIFTLINE_STALL_TIMEOUT: the partition marked stalled, /healthz
 * failing, the pod restarted in a loop (found by a review).
 */
async function pause(receiver: Receiver, ms: number, options: DeliverOptions): Promise<void> {
  const slice = Math.max(1, options.retry.maxDelayMs);
  for (let left = ms; ; ) {
    const part = Math.min(left, slice);
    try {
      await sleep(part, undefined, { signal: options.signal });
    } catch {
      throw new DriftlineError('SINK_UNAVAILABLE', `delivery to ${receiver.name} abandoned: stopping`, {
        retriable: true,
      });
    }
    left -= part;
    if (left <= 0) return;
    await options.heartbeat?.();
  }
}

/** The alert_deliveries row of a message's outcome. */
function record(
  receiver: Receiver,
  message: AlertMessage,
  alertIds: string[],
  outcome: {
    verdict: AttemptVerdict;
    attempts: number;
    status: number | undefined;
    error: string;
    started: number;
    finished: number;
  },
): AlertDeliveryRow {
  return {
    delivery_id: deliveryId(receiver.name, alertIds),
    receiver: receiver.name,
    alert_ids: alertIds,
    group_key: message.key,
    model: message.model ?? '',
    kind: message.kind ?? '',
    severity: message.severity,
    status: outcome.verdict === 'delivered' ? 'delivered' : 'failed',
    attempts: outcome.attempts,
    http_status: outcome.status ?? null,
    latency_ms: Math.max(0, outcome.finished - outcome.started),
    error: outcome.error.slice(0, 1_024),
    first_attempt_at: chTime(outcome.started),
    finished_at: chTime(outcome.finished),
  };
}
