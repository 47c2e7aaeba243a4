import { CLOCK_SKEW_MS, DEFAULT_MAX_FUTURE_MS } from './state.js';

/** One event of a recorded log, as the offline reference join sees it. */
export type LogEvent =
  | { readonly type: 'prediction'; readonly id: string; readonly eventTime: number }
  | { readonly type: 'label'; readonly id: string; readonly eventTime: number; readonly label: number };

export interface OfflineJoin {
  /** prediction id → the label it joins with. */
  readonly joined: ReadonlyMap<string, { readonly label: number; readonly labelTime: number }>;
  /** Predictions with no label within the maximum delay, with their deadline. */
  readonly unlabeled: ReadonlyMap<string, { readonly deadline: number }>;
}

/**
 * The reference join of a whole log, order-free: a prediction joins the earliest label whose event
 * time is at most its own plus `maxDelayMs` and at least its own minus `earlyMs` (labelEarlyMs of
 * the join config: the event-time future bound plus CLOCK_SKEW_MS); duplicates collapse. The
 * streaming joiner must end in the same result for any interleaving (given distinct labels per
 * prediction agree, as duplicates do, and no two labels waiting for it are dated further apart
 * than maxDelayMs + earlyMs: then the streaming joiner keeps the later, see onLabel).
 */
export function offlineJoin(
  log: readonly LogEvent[],
  maxDelayMs: number,
  earlyMs = DEFAULT_MAX_FUTURE_MS + CLOCK_SKEW_MS,
): OfflineJoin {
  const predictions = new Map<string, number>();
  const labels = new Map<string, Array<{ label: number; eventTime: number }>>();
  for (const e of log) {
    if (e.type === 'prediction') {
      if (!predictions.has(e.id)) predictions.set(e.id, e.eventTime);
    } else {
      const list = labels.get(e.id);
      const label = { label: e.label, eventTime: e.eventTime };
      if (list === undefined) labels.set(e.id, [label]);
      else list.push(label);
    }
  }
  const joined = new Map<string, { label: number; labelTime: number }>();
  const unlabeled = new Map<string, { deadline: number }>();
  for (const [id, time] of predictions) {
    const deadline = time + maxDelayMs;
    const earliest = time - earlyMs;
    const valid = (labels.get(id) ?? [])
      .filter((l) => l.eventTime >= earliest && l.eventTime <= deadline)
      .sort((a, b) => a.eventTime - b.eventTime);
    const first = valid[0];
    if (first === undefined) unlabeled.set(id, { deadline });
    else joined.set(id, { label: first.label, labelTime: first.eventTime });
  }
  return { joined, unlabeled };
}
