import type { DriftAlert } from '@driftline/schemas';
import type { Severity } from './routes.js';

/** An alert with its derived severity. */
export interface RoutedAlert {
  readonly alert: DriftAlert;
  readonly severity: Severity;
}

/** One message to one receiver: alerts of one (model, kind) group, or a digest of several groups. */
export interface AlertMessage {
  /** `model/kind/bucket` of a group; `digest` when the rate limit merged groups. */
  readonly key: string;
  readonly model: string | undefined;
  readonly kind: string | undefined;
  readonly severity: Severity;
  readonly alerts: readonly RoutedAlert[];
}

const RANK: Record<Severity, number> = { info: 0, warning: 1, critical: 2 };

export const maxSeverity = (alerts: readonly RoutedAlert[]): Severity =>
  alerts.reduce<Severity>((s, a) => (RANK[a.severity] > RANK[s] ? a.severity : s), 'info');

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
    const bucket = windowMs > 0 ? Math.floor(a.alert.event_time / windowMs) : a.alert.alert_id;
    const key = `${a.alert.model}/${a.alert.kind}/${bucket}`;
    let list = groups.get(key);
    if (list === undefined) {
      list = [];
      groups.set(key, list);
    }
    list.push(a);
  }
  return [...groups].map(([key, list]) => ({
    key,
    model: list[0]!.alert.model,
    kind: list[0]!.alert.kind,
    severity: maxSeverity(list),
    alerts: list,
  }));
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
