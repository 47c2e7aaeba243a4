/** How one receiver's message is retried: bounded in attempts and in total time. */
export interface RetryPolicy {
  readonly maxAttempts: number;
  readonly initialMs: number;
  readonly maxDelayMs: number;
  /** Total time from the first attempt after which no new attempt starts. */
  readonly budgetMs: number;
  /** 0..1: share of each delay randomised (subtracted), so receivers are not retried in lockstep. */
  readonly jitter: number;
}

/** What an attempt's outcome means: done, try again, or give up now. */
export type AttemptVerdict = 'delivered' | 'retry' | 'failed';

/**
 * 4xx answers that only the receiver's application gives, having read the request's body and
 * refused it (malformed, too large, wrong type, unprocessable). Other 4xx (401, 403, 404, 405, …)
 * and redirects also come from what stands in front of it — an ingress's default backend, an auth
 * gateway — while it is redeployed or gone.
 */
const BODY_REFUSALS: ReadonlySet<number> = new Set([400, 413, 415, 422]);

/**
 * 2xx delivered; a refusal of the body (400, 413, 415, 422: the receiver is up and would refuse it
 * again) failed at once; anything else — no answer (`undefined`), a redirect, 401, 403, 404, 405,
 * 408, 429, 5xx, … — is retried within the budget, then weighed like a 5xx (`checkShows`). One 302
 * or 404 of an ingress or a gateway during a redeploy was taken for a refusal and the alert lost
 * (found by a review).
 */
export function verdictOf(status: number | undefined): AttemptVerdict {
  if (status === undefined) return 'retry';
  if (status >= 200 && status < 300) return 'delivered';
  return BODY_REFUSALS.has(status) ? 'failed' : 'retry';
}

/** Connection errors raised before any byte of the request reached the receiver. */
const NEVER_SENT_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/**
 * Whether the receiver may have taken a message on an attempt without our knowing: a retry with no
 * answer (a timeout, a connection reset) other than a connection that was never made (`code`:
 * refused, no such host, unreachable). Such a message is sent again only as it was — the same
 * alerts, so the same `Idempotency-Key` — never in parts or merged otherwise: a receiver slower than
 * the timeout that drops repeats by the key acted on each alert 3 times when the router split the
 * message, and twice when a digest's groups were sent alone on the batch's retry (found by a review).
 */
export function mayHaveBeenTaken(verdict: AttemptVerdict, status: number | undefined, code?: string): boolean {
  return verdict === 'retry' && status === undefined && (code === undefined || !NEVER_SENT_CODES.has(code));
}

/**
 * Answers that also come, for ever, from a receiver configured wrong: a redirect (an `http://` URL
 * behind an ingress that redirects to https), 401 or 403 (a revoked token), 404 or 410 (a deleted
 * webhook, a Slack webhook of an archived channel), 405. Retried all the same (`verdictOf`: an
 * ingress or a gateway answers them while a receiver is redeployed, nothing is lost), but named to
 * the operator as what they may be: the generic "backing off" alone left a wrong URL unnoticed,
 * its alerts held for ever (found by a review).
 */
export function looksMisconfigured(status: number | undefined): boolean {
  if (status === undefined) return false;
  return (status >= 300 && status < 400) || MISCONFIGURED_ANSWERS.has(status);
}

const MISCONFIGURED_ANSWERS: ReadonlySet<number> = new Set([401, 403, 404, 405, 410]);

/**
 * What shows a receiver possibly configured wrong in `driftline_alert_receiver_refusing`'s
 * `status` label, from an attempt's answer (`status`, undefined without one) and, without one,
 * the connection error's code: the status when it `looksMisconfigured`; `ENOTFOUND` when the host
 * name does not resolve (a mistyped or deleted host does so for ever: it had counted as an outage
 * only, and DriftlineAlertReceiverMisconfigured never fired; found by a review). Not `EAI_AGAIN`:
 * a resolver that failed, transient. Undefined otherwise.
 */
export function misconfiguredSign(status: number | undefined, code?: string): string | undefined {
  if (status !== undefined) return looksMisconfigured(status) ? String(status) : undefined;
  return code === 'ENOTFOUND' ? code : undefined;
}

/**
 * The delay before the next attempt after `attempts` attempts (1-based) and `elapsedMs` since the
 * first one, or undefined when the budget is spent (attempts, or the time the next would start).
 * Exponential (`initialMs · 2^(attempts−1)`, capped at `maxDelayMs`) minus up to `jitter` of it.
 */
export function nextRetryDelay(
  policy: RetryPolicy,
  attempts: number,
  elapsedMs: number,
  random: () => number = Math.random,
  /** The receiver's own wait (`Retry-After`), honoured even beyond `maxDelayMs`, never beyond the budget. */
  askedMs?: number,
): number | undefined {
  if (attempts >= policy.maxAttempts) return undefined;
  const base = Math.min(policy.maxDelayMs, policy.initialMs * 2 ** Math.max(0, attempts - 1));
  const delay = Math.max(askedMs ?? 0, Math.round(base * (1 - policy.jitter * random())));
  if (elapsedMs + delay > policy.budgetMs) return undefined;
  return delay;
}

/**
 * The longest a receiver's `Retry-After` keeps the router from it: 1 hour, the consumer loop's
 * longest deferral. A longer ask (a day, a far HTTP date, a proxy's mistake) is asked again after
 * the hour: one request an hour.
 */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** Until when a receiver that asked to wait `askedMs` at `now` is sent nothing: the wait, capped at MAX_RETRY_AFTER_MS. */
export function receiverWaitUntil(askedMs: number, now: number): number {
  return now + Math.min(Math.max(0, askedMs), MAX_RETRY_AFTER_MS);
}

/**
 * Whether an answer's `Retry-After` (`askedMs`) asks a wait the retry budget cannot hold: with
 * `elapsedMs` of the budget run, the wait ends after the budget does. The budget ends then (the
 * next attempt would start too late: `nextRetryDelay`), and the receiver has said when it will
 * take requests again: a delivery check sent at once met the same 429 and counted as an outage,
 * the batch retried every few seconds against a `Retry-After: 600` (found by a review). Such a
 * receiver is sent nothing until `receiverWaitUntil`.
 */
export function asksWaitBeyondBudget(
  policy: Pick<RetryPolicy, 'budgetMs'>,
  elapsedMs: number,
  askedMs: number | undefined,
): askedMs is number {
  return askedMs !== undefined && askedMs > 0 && elapsedMs + askedMs > policy.budgetMs;
}

/**
 * The statuses whose `Retry-After` is honoured: 429 (rate limited) and 503 (unavailable), what
 * RFC 9110 and RFC 6585 give it a meaning for, and what Slack sends. On any other answer (a 500,
 * a 404 of an ingress's default backend, a redirect) it is ignored and the answer retried like
 * any other: honoured, a `500 Retry-After: 600` stopped every request to the receiver for 10
 * minutes, up to an hour, against the documented 429/503 (found by a review).
 */
const RETRY_AFTER_STATUSES: ReadonlySet<number> = new Set([429, 503]);

/** The wait an answer asks (`retryAfterMs`) when its status is a 429 or a 503; undefined otherwise. */
export function honouredRetryAfterMs(
  status: number,
  header: string | null | undefined,
  now: number,
): number | undefined {
  return RETRY_AFTER_STATUSES.has(status) ? retryAfterMs(header, now) : undefined;
}

/**
 * A `Retry-After` header in ms: delay-seconds or an HTTP-date (RFC 9110 §10.2.3) in any of the
 * three forms a recipient must accept (§5.6.7): IMF-fixdate, RFC 850, asctime; undefined when
 * absent or not one of those.
 */
export function retryAfterMs(header: string | null | undefined, now: number): number | undefined {
  if (header === null || header === undefined) return undefined;
  const text = header.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1_000;
  const at = httpDate(text, now);
  return at === undefined ? undefined : Math.max(0, at - now);
}

const MONTHS = 'Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec';
const MONTH_INDEX = new Map(MONTHS.split('|').map((m, i) => [m.toLowerCase(), i]));
const TIME = '(\\d{2}):(\\d{2}):(\\d{2})';
/** `Sun, 06 Nov 1994 08:49:37 GMT`, what senders must send. */
const IMF_FIXDATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), (\\d{2}) (${MONTHS}) (\\d{4}) ${TIME} GMT$`, 'i');
/** `Sunday, 06-Nov-94 08:49:37 GMT` (obsolete): a two-digit year. */
const RFC850_DATE = new RegExp(
  `^(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday), (\\d{2})-(${MONTHS})-(\\d{2}) ${TIME} GMT$`,
  'i',
);
/** `Sun Nov  6 08:49:37 1994` (obsolete, C's asctime): the day padded with a space, UTC. */
const ASCTIME_DATE = new RegExp(`^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (${MONTHS}) ( \\d|\\d{2}) ${TIME} (\\d{4})$`, 'i');

/**
 * An HTTP-date in ms since the epoch, or undefined. Read field by field, never by `Date.parse`:
 * it reads "1.5" as a date and an asctime date in local time. An RFC 850 year more than 50 years
 * ahead of `now` is the century before (RFC 9110 §5.6.7).
 */
function httpDate(text: string, now: number): number | undefined {
  const fields = dateFields(text, now);
  if (fields === undefined) return undefined;
  const { year, month, day, hours, minutes, seconds } = fields;
  if (hours > 23 || minutes > 59 || seconds > 60) return undefined; // 60: a leap second
  const midnight = Date.UTC(year, MONTH_INDEX.get(month.toLowerCase())!, day);
  if (new Date(midnight).getUTCDate() !== day) return undefined; // 31 Feb rolled over into March
  return midnight + ((hours * 60 + minutes) * 60 + seconds) * 1_000;
}

function dateFields(text: string, now: number) {
  const time = (h: string | undefined, m: string | undefined, s: string | undefined) => ({
    hours: Number(h),
    minutes: Number(m),
    seconds: Number(s),
  });
  const imf = IMF_FIXDATE.exec(text);
  if (imf !== null) {
    const [, day, month, year, h, m, s] = imf;
    return { year: Number(year), month: month!, day: Number(day), ...time(h, m, s) };
  }
  const rfc850 = RFC850_DATE.exec(text);
  if (rfc850 !== null) {
    const [, day, month, yy, h, m, s] = rfc850;
    const thisYear = new Date(now).getUTCFullYear();
    const year = thisYear - (thisYear % 100) + Number(yy);
    return { year: year > thisYear + 50 ? year - 100 : year, month: month!, day: Number(day), ...time(h, m, s) };
  }
  const asctime = ASCTIME_DATE.exec(text);
  if (asctime !== null) {
    const [, month, day, h, m, s, year] = asctime;
    return { year: Number(year), month: month!, day: Number(day!.trim()), ...time(h, m, s) };
  }
  return undefined;
}

/**
 * What the answer to a delivery check shows of its receiver (`status` undefined: no answer, or no
 * request could be built): `up` only when its application read the check — a 2xx, or a refusal
 * of the body (400, 413, 415, 422: a receiver whose schema wants alerts refuses `alerts: []`;
 * counted as an outage, that held the partition for ever); `down` otherwise (no answer, a
 * redirect, 401, 403, 404, 405, 408, 425, 429, 5xx, …). An ingress's 404 or a gateway's 401/403
 * during a redeploy had shown the receiver up, and a message failing 503 was given up: lost
 * (found by a review).
 */
export function checkShows(status: number | undefined): 'up' | 'down' {
  // The same line as a message's verdict: only what a retry would not change shows it up.
  return verdictOf(status) === 'retry' ? 'down' : 'up';
}

/**
 * The wait between two delivery checks of one round: a retry's first delay, never above the
 * delay cap (a 10-minute `initialMs` beside a 30-second `maxDelayMs` was slept whole).
 */
export function checkSpacingMs(policy: Pick<RetryPolicy, 'initialMs' | 'maxDelayMs'>): number {
  return Math.min(policy.initialMs, policy.maxDelayMs);
}

/**
 * Answers of its receiver (other messages delivered, delivery checks answered) after a message's
 * second failed budget before it is given up for good: more than one, so that one lucky 2xx of a
 * receiver answering most requests 503 does not lose it (found by a review). After its first
 * budget one answer is enough: it only buys the message a second budget.
 */
export const ANSWERS_TO_GIVE_UP = 2;

/**
 * What a message still failing transiently after a retry budget means, from `answers`, the
 * answers of its receiver since that budget began (other messages delivered, delivery checks
 * answered), `needed` of them to show the receiver up:
 * - `receiver-up`: enough answers: the receiver takes requests but not this message.
 * - `check`: not enough yet (nothing else was sent: the message is alone in its batch, or last):
 *   send a delivery check, then ask again with what it shows (`checkShows`).
 * - `outage`: the check showed the receiver down: nothing is given up; the batch is retried.
 * The router asks twice: shown up after the message's first budget (one answer), the message gets
 * a retry budget again (Retry-After and the rate limit honoured); only when that fails too and the
 * receiver answers `ANSWERS_TO_GIVE_UP` times more is it given up. A receiver that fails
 * everything never loses one; before, one 2xx between two failures gave a message up for good.
 */
export function failingMessageVerdict(
  answers: number,
  needed: number,
  check?: 'up' | 'down',
): 'receiver-up' | 'check' | 'outage' {
  if (answers >= needed) return 'receiver-up';
  return check === 'down' ? 'outage' : 'check';
}
