import type { DriftAlert } from '@driftline/schemas';
import type { Severity } from './routes.js';

/** An alert with its derived severity. */
export interface RoutedAlert {
  readonly alert: DriftAlert;
  readonly severity: Severity;
}

/** One message to one receiver: alerts of one (model, kind) group, or a digest of several groups. */
export interface AlertMessage {
  /** `model/kind/bucket` of a group (shown only: groups are told apart by the fields); `digest` when the rate limit merged groups. */
  readonly key: string;
  readonly model: string | undefined;
  readonly kind: string | undefined;
  readonly severity: Severity;
  readonly alerts: readonly RoutedAlert[];
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

export const maxSeverity = (alerts: readonly RoutedAlert[]): Severity =>
  alerts.reduce<Severity>((s, a) => (RANK[a.severity] > RANK[s] ? a.severity : s), 'info');

const groupBucket = (a: RoutedAlert, windowMs: number): string | number =>
  windowMs > 0 ? Math.floor(a.alert.event_time / windowMs) : a.alert.alert_id;

/**
 * Groups a receiver's alerts: alerts of the same model and kind whose event times fall in the same
 * `windowMs` bucket (epoch-aligned) form one message, in order of first appearance. Deterministic,
 * so a replay forms the same groups. Repeated alert ids are kept once.
 */
export function groupAlerts(alerts: readonly RoutedAlert[], windowMs: number): AlertMessage[] {
  const groups = new Map<string, RoutedAlert[]>();
  const seen = new Set<string>();
  for (const a of alerts) {
    if (seen.has(a.alert.alert_id)) continue;
    seen.add(a.alert.alert_id);
    const bucket = groupBucket(a, windowMs);
    // The fields as a tuple: joined by `/`, model `a` with id `x/FEATURE_DRIFT/y` and model
    // `a/FEATURE_DRIFT/x` with id `y` were one group, one message (found by a review).
    const tuple = JSON.stringify([a.alert.model, a.alert.kind, bucket]);
    let list = groups.get(tuple);
    if (list === undefined) {
      list = [];
      groups.set(tuple, list);
    }
    list.push(a);
  }
  return [...groups.values()].map((list) => ({
    // Shown (the body's `group`, the record's group_key), never used to tell groups apart.
    key: `${list[0]!.alert.model}/${list[0]!.alert.kind}/${groupBucket(list[0]!, windowMs)}`,
    model: list[0]!.alert.model,
    kind: list[0]!.alert.kind,
    severity: maxSeverity(list),
    alerts: list,
  }));
}

/**
 * A receiver's alerts as messages when some were already sent in messages it may have taken
 * (`mayHaveBeenTaken`): each such message whose alerts are all in `alerts` is formed again as it
 * was — the same alerts in the same order, its key and fields, so the same delivery id and
 * `Idempotency-Key` — and the other alerts are grouped (`groupAlerts`). A message some of whose
 * alerts are no longer to send (recorded meanwhile) is not kept: those left are grouped.
 */
export function regroupAlerts(
  alerts: readonly RoutedAlert[],
  windowMs: number,
  sentBefore: readonly AlertMessage[],
): { readonly asSent: AlertMessage[]; readonly grouped: AlertMessage[] } {
  const byId = new Map(alerts.map((a) => [a.alert.alert_id, a]));
  const asSent: AlertMessage[] = [];
  for (const message of sentBefore) {
    const again = message.alerts.map((a) => byId.get(a.alert.alert_id));
    if (again.length === 0 || again.some((a) => a === undefined)) continue;
    const kept = again as RoutedAlert[];
    for (const a of kept) byId.delete(a.alert.alert_id);
    asSent.push({ ...message, severity: maxSeverity(kept), alerts: kept });
  }
  const rest = alerts.filter((a) => byId.get(a.alert.alert_id) === a);
  return { asSent, grouped: groupAlerts(rest, windowMs) };
}

/** Merges messages into one digest (what the rate limit does with the excess). */
export function digestOf(messages: readonly AlertMessage[]): AlertMessage {
  const alerts = messages.flatMap((m) => m.alerts);
  const models = new Set(messages.map((m) => m.model));
  const kinds = new Set(messages.map((m) => m.kind));
  return {
    key: 'digest',
    model: models.size === 1 ? messages[0]?.model : undefined,
    kind: kinds.size === 1 ? messages[0]?.kind : undefined,
    severity: maxSeverity(alerts),
    alerts,
  };
}

/**
 * The two halves of a message its receiver did not take (the first the larger), each a message of
 * its own with the same key: the router sends them alone to find the alerts it refuses, so that one
 * alert no longer takes its whole group or digest with it (found by a review).
 */
export function halvesOf(message: AlertMessage): [AlertMessage, AlertMessage] {
  const mid = Math.ceil(message.alerts.length / 2);
  const part = (alerts: readonly RoutedAlert[]): AlertMessage => ({
    ...message,
    severity: maxSeverity(alerts),
    alerts,
  });
  return [part(message.alerts.slice(0, mid)), part(message.alerts.slice(mid))];
}

/**
 * The most sends spent splitting a message of `alerts` alerts (`halvesOf`, again on each half not
 * taken): two per halving, enough to isolate one alert it refuses (2·⌈log₂ n⌉); 0 for one alert.
 */
export const splitSends = (alerts: number): number => (alerts < 2 ? 0 : 2 * Math.ceil(Math.log2(alerts)));
