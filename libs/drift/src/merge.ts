import { DriftlineError } from '@driftline/core';
import { mergeAll, type Summary, summaryFromJSON } from '@driftline/stats';
import type { ClosedMessage, PartialMessage, PartialsMessage } from './messages.js';
import type { ReferenceSet } from './reference.js';

export interface MergeConfig {
  /**
   * A source partition that has sent nothing for this long (processing time) while others
   * reported a window is treated as idle for that window, so it cannot block it forever.
   */
  readonly idleTimeoutMs: number;
}

/** The partials of a (model, version) of a completed window built on one reference, one per source. */
export interface ReferencePart {
  readonly referenceId: string;
  readonly partials: readonly PartialMessage[];
  /** Events summarised (on time), and late events (counted only). */
  readonly events: number;
  readonly late: number;
}

/**
 * The partials of one (model, version) of a completed window. Its drift is measured on one
 * reference: `referenceId`, `partials`, `events` and `late` are that part's (see
 * {@link measuredPart}). Sources that summarised the window on other references (a reference
 * re-stored while instances refreshed their catalogs at different times, or a replay after it)
 * are in `setAside`: summaries on other bins cannot be merged, so their events are left out of the
 * drift; data quality, which does not depend on the reference, counts them ({@link wholeWindow}).
 */
export interface MergeGroup extends ReferencePart {
  readonly model: string;
  readonly version: string;
  /** The other references' parts, by id; empty unless the sources disagreed. */
  readonly setAside: readonly ReferencePart[];
}

export interface CompletedWindow {
  readonly windowStart: number;
  readonly windowEnd: number;
  readonly sourcePartitions: number;
  /** Source partitions that reported the window (their marker, or a frontier past it). */
  readonly reported: readonly number[];
  /** Source partitions that did not, and were excluded as idle. */
  readonly idle: readonly number[];
  readonly groups: readonly MergeGroup[];
  /** Processing time at which the first message of the window arrived (merge latency). */
  readonly firstSeenAt: number;
}

export type AddResult = 'accepted' | 'duplicate' | 'after_completion';

/**
 * What holds a merge partition's windows back, in event time ({@link MergeState.held}): windows
 * complete in event-time order, so the oldest one waiting holds every later one.
 */
export interface MergeHold {
  /** From the end of the oldest window waiting to the furthest frontier a source reported (≥ 0). */
  readonly heldMs: number;
  /** The oldest window waiting. */
  readonly windowStart: number;
  /**
   * The source furthest behind among those the oldest window waits for (no marker, frontier
   * before its end), and how far its frontier lies behind the furthest (Infinity when it has
   * reported none); undefined when the window waits only for listed partials.
   */
  readonly slowest?: { readonly source: number; readonly lagMs: number };
}

interface PendingWindow {
  readonly start: number;
  readonly end: number;
  firstOffset: number;
  readonly firstSeenAt: number;
  readonly markers: Map<number, ClosedMessage>;
  readonly partials: Map<string, PartialMessage>;
}

const SEP = '\u0000';
const RECENT_LIMIT = 256;

/**
 * Merge-stage state of ONE partition of the partials topic. Collects, per window, the `closed`
 * marker of every source partition and the partials each marker lists; a window is complete when
 * every source reported it (or is idle) and every listed partial arrived. Duplicates (a source
 * replaying after a crash or a rebalance re-emits the same window) are dropped by
 * (source, model, version, window) and (source, window): first wins, and the first is the
 * original because one producer writes a source's messages in order.
 *
 * Windows complete in event-time order (every source closes its windows in order), so one number,
 * `completedUpTo`, is enough to drop anything older; an incomplete window older than a complete
 * one can only be a fragment of a window completed before a restart of this stage: dropped.
 */
export class MergeState {
  private readonly pending = new Map<number, PendingWindow>();
  private readonly lastHeard = new Map<number, number>();
  /** When any source was last heard (the start before any). */
  private lastAny: number;
  /** End of the last silence of every source (an outage upstream): no source counts idle before it. */
  private resumedAt = Number.NEGATIVE_INFINITY;
  /** Per source: every window ending at or before this was closed there (from its markers). */
  private readonly frontier = new Map<number, number>();
  private readonly recent = new Map<number, ReadonlySet<number>>();
  private completedUpTo: number;
  /** What was completed before this state existed (restored): its sources are unknown here. */
  private readonly restoredUpTo: number;
  /**
   * The most source partitions any message named: a topic only grows, and a stage-one instance
   * that owns none of the added partitions may name the old count for a while (its markers alone
   * completed windows without the new partitions, whose partials then came after completion).
   */
  private sourcePartitions = 0;

  /**
   * `completedUpTo`: the last window start this partition completed durably before (restored
   * from the store after a restart or a rebalance), so a replay cannot complete it again from
   * a fragment.
   */
  constructor(
    private readonly config: MergeConfig,
    private readonly startedAt: number,
    completedUpTo = Number.NEGATIVE_INFINITY,
  ) {
    this.completedUpTo = completedUpTo;
    this.restoredUpTo = completedUpTo;
    this.lastAny = startedAt;
  }

  /** Last completed window start (-Infinity when none). */
  completedThrough(): number {
    return this.completedUpTo;
  }

  pendingWindows(): number {
    return this.pending.size;
  }

  /**
   * How far (event time) the oldest pending window lies behind the furthest frontier a source
   * reported, and the slowest source it waits for; undefined when no window is pending.
   *
   * Standard watermark semantics: a source that keeps sending is never idle, so the merge waits
   * for it however far behind its event times are (a producer whose clock or pipeline lags), and
   * every later window of this partition waits with it — for every model routed here. This makes
   * that wait visible (`driftline_drift_merge_held_seconds`); it changes nothing.
   */
  held(): MergeHold | undefined {
    let oldest: PendingWindow | undefined;
    for (const w of this.pending.values()) if (oldest === undefined || w.start < oldest.start) oldest = w;
    if (oldest === undefined) return undefined;
    let furthest = Number.NEGATIVE_INFINITY;
    for (const f of this.frontier.values()) if (f > furthest) furthest = f;
    const heldMs = Number.isFinite(furthest) ? Math.max(0, furthest - oldest.end) : 0;
    let slowest: { source: number; lagMs: number } | undefined;
    for (let s = 0; s < this.sourcePartitions; s++) {
      const f = this.frontier.get(s) ?? Number.NEGATIVE_INFINITY;
      if (oldest.markers.has(s) || f >= oldest.end) continue;
      const lagMs = Number.isFinite(f) ? Math.max(0, furthest - f) : Number.POSITIVE_INFINITY;
      if (slowest === undefined || lagMs > slowest.lagMs) slowest = { source: s, lagMs };
    }
    return { heldMs, windowStart: oldest.start, ...(slowest === undefined ? {} : { slowest }) };
  }

  add(message: PartialsMessage, offset: number, now: number): AddResult {
    const source = message.source.partition;
    // Every source silent for the idle timeout is an outage (broker, this stage, stage one), not an
    // idle source: the idle clocks start over, or the first source back would complete the
    // windows alone and the others' partials, a moment later, would be dropped.
    if (now - this.lastAny >= this.config.idleTimeoutMs) this.resumedAt = now;
    if (now > this.lastAny) this.lastAny = now;
    const heard = this.lastHeard.get(source);
    if (heard === undefined || now > heard) this.lastHeard.set(source, now);
    if (message.source.partitions > this.sourcePartitions) this.sourcePartitions = message.source.partitions;
    if (message.type === 'closed' && (this.frontier.get(source) ?? Number.NEGATIVE_INFINITY) < message.closedUntil) {
      this.frontier.set(source, message.closedUntil);
    }
    if (message.windowStart <= this.completedUpTo) {
      const reported = this.recent.get(message.windowStart);
      if (reported?.has(source) === true) return 'duplicate';
      // Completed before a restart or rebalance: the commit sits below windows completed already
      // (sources close windows at different times), so their partials come again. Which sources
      // reported is not stored: a replay, not a loss (reported as one, it raised a false alarm
      // of excluded events on every restart).
      if (reported === undefined && message.windowStart <= this.restoredUpTo) return 'duplicate';
      return 'after_completion';
    }
    let w = this.pending.get(message.windowStart);
    if (w === undefined) {
      w = {
        start: message.windowStart,
        end: message.windowEnd,
        firstOffset: offset,
        firstSeenAt: now,
        markers: new Map(),
        partials: new Map(),
      };
      this.pending.set(message.windowStart, w);
    } else {
      if (offset < w.firstOffset) w.firstOffset = offset;
    }
    if (message.type === 'closed') {
      if (w.markers.has(source)) return 'duplicate';
      w.markers.set(source, message);
      return 'accepted';
    }
    const key = source + SEP + message.model + SEP + message.version;
    if (w.partials.has(key)) return 'duplicate';
    w.partials.set(key, message);
    return 'accepted';
  }

  /**
   * Windows that can be completed now, oldest first, and the starts of stale fragments (older
   * incomplete windows that will never complete). Nothing is removed: call `markDone` once the
   * results are durably written.
   */
  ready(now: number): { complete: CompletedWindow[]; stale: number[] } {
    const starts = [...this.pending.keys()].sort((a, b) => a - b);
    const complete: CompletedWindow[] = [];
    const incomplete: number[] = [];
    let lastComplete = Number.NEGATIVE_INFINITY;
    for (const start of starts) {
      const done = this.tryComplete(this.pending.get(start)!, now);
      if (done === undefined) incomplete.push(start);
      else {
        complete.push(done);
        lastComplete = start;
      }
    }
    return { complete, stale: incomplete.filter((s) => s < lastComplete) };
  }

  private tryComplete(w: PendingWindow, now: number): CompletedWindow | undefined {
    if (w.markers.size === 0) return undefined;
    const partitions = this.sourcePartitions;
    const idle: number[] = [];
    for (let s = 0; s < partitions; s++) {
      // Reported: its marker for this window, or a later marker saying it closed past this window.
      if (w.markers.has(s) || (this.frontier.get(s) ?? Number.NEGATIVE_INFINITY) >= w.end) continue;
      // Silent since when: never earlier than the window's first report — a source that never spoke
      // to this merge (another process's partitions, after a restart) is not idle for a window that
      // appeared a moment ago; its stage one may just be stalled behind an outage.
      const heard = Math.max(this.lastHeard.get(s) ?? this.startedAt, this.resumedAt, w.firstSeenAt);
      if (now - heard < this.config.idleTimeoutMs) return undefined;
      // Idle means silent while others speak; while every source is silent nothing is idle.
      if (now - this.lastAny >= this.config.idleTimeoutMs) return undefined;
      idle.push(s);
    }
    // Per (model, version), then per reference the partials were built on.
    const groups = new Map<string, Map<string, PartialMessage[]>>();
    const reported: number[] = [];
    for (let s = 0; s < partitions; s++) if (!idle.includes(s)) reported.push(s);
    for (const s of [...w.markers.keys()].sort((a, b) => a - b)) {
      for (const mv of w.markers.get(s)!.models) {
        const partial = w.partials.get(s + SEP + mv.model + SEP + mv.version);
        if (partial === undefined) return undefined;
        const key = partial.model + SEP + partial.version;
        let byReference = groups.get(key);
        if (byReference === undefined) {
          byReference = new Map();
          groups.set(key, byReference);
        }
        const list = byReference.get(partial.referenceId);
        if (list === undefined) byReference.set(partial.referenceId, [partial]);
        else list.push(partial);
      }
    }
    const merged: MergeGroup[] = [...groups.keys()].sort().map((key) => {
      const byReference = groups.get(key)!;
      const parts = [...byReference.keys()].sort().map((id) => referencePart(id, byReference.get(id)!));
      const first = parts[0]!.partials[0]!;
      return groupOn(first.model, first.version, parts, []);
    });
    return {
      windowStart: w.start,
      windowEnd: w.end,
      sourcePartitions: partitions,
      reported,
      idle,
      groups: merged,
      firstSeenAt: w.firstSeenAt,
    };
  }

  /** Forgets completed windows (after their results were written) and remembers who reported them. */
  markDone(windows: readonly CompletedWindow[]): void {
    for (const w of windows) {
      this.pending.delete(w.windowStart);
      if (w.windowStart > this.completedUpTo) this.completedUpTo = w.windowStart;
      this.recent.set(w.windowStart, new Set(w.reported));
    }
    while (this.recent.size > RECENT_LIMIT) this.recent.delete(this.recent.keys().next().value!);
  }

  /**
   * What the pending window starting at `start` still waits for: the sources that have not reported
   * it (no marker, frontier before its end) and the partials its markers list that have not come.
   * Undefined when no such window is pending. Said when a window is dropped as a stale fragment
   * (`ready`): one partials message lost between the stages (acknowledged by Kafka, never in the
   * log) drops the whole window that way, which was counted in a metric and said nowhere.
   */
  waitingFor(
    start: number,
  ):
    | { readonly sources: number[]; readonly partials: Array<{ source: number; model: string; version: string }> }
    | undefined {
    const w = this.pending.get(start);
    if (w === undefined) return undefined;
    const sources: number[] = [];
    for (let s = 0; s < this.sourcePartitions; s++) {
      if (!w.markers.has(s) && (this.frontier.get(s) ?? Number.NEGATIVE_INFINITY) < w.end) sources.push(s);
    }
    const partials: Array<{ source: number; model: string; version: string }> = [];
    for (const s of [...w.markers.keys()].sort((a, b) => a - b)) {
      for (const mv of w.markers.get(s)!.models) {
        if (!w.partials.has(s + SEP + mv.model + SEP + mv.version))
          partials.push({ source: s, model: mv.model, version: mv.version });
      }
    }
    return { sources, partials };
  }

  dropStale(starts: readonly number[]): void {
    for (const s of starts) this.pending.delete(s);
  }

  /** First offset still needed by an incomplete window, or `nextOffset` when none is pending. */
  commitOffset(nextOffset: number): number {
    let min = nextOffset;
    for (const w of this.pending.values()) if (w.firstOffset < min) min = w.firstOffset;
    return min;
  }
}

function referencePart(referenceId: string, partials: readonly PartialMessage[]): ReferencePart {
  let events = 0;
  let late = 0;
  for (const p of partials) {
    events += p.events;
    late += p.late;
  }
  return { referenceId, partials, events, late };
}

/**
 * The part a window summarised on several references is measured on. A reference its drift was
 * already written on (`written`, read back from drift_windows) wins while the window has a part on
 * it: the parts of one window can differ between attempts (an idle source's partial arriving
 * before a retry or a replay), and a second choice writes a second answer for the window
 * (`reference_id` is in drift_windows' key). Otherwise, and among several written, the one with
 * the most summarised events, ties to the smaller reference id: only the partials decide (the
 * stored time of a reference is not in them, and the catalog's latest changes with the next
 * re-store), so every merge instance choosing first chooses the same.
 */
export function measuredPart(parts: readonly ReferencePart[], written: readonly string[] = []): ReferencePart {
  const onWritten = parts.filter((p) => written.includes(p.referenceId));
  let best: ReferencePart | undefined;
  for (const p of onWritten.length > 0 ? onWritten : parts) {
    if (best === undefined || p.events > best.events || (p.events === best.events && p.referenceId < best.referenceId))
      best = p;
  }
  if (best === undefined) throw new DriftlineError('INTERNAL', 'merge: a (model, version) without partials');
  return best;
}

/**
 * The group measured again, now knowing the references its window's drift was already written on
 * (see {@link measuredPart}); the same parts, the measured one perhaps another.
 */
export function measuredOnWritten(group: MergeGroup, written: readonly string[]): MergeGroup {
  const { referenceId, partials, events, late } = group;
  const parts = [{ referenceId, partials, events, late }, ...group.setAside].sort((a, b) =>
    a.referenceId < b.referenceId ? -1 : 1,
  );
  return groupOn(group.model, group.version, parts, written);
}

function groupOn(
  model: string,
  version: string,
  parts: readonly ReferencePart[],
  written: readonly string[],
): MergeGroup {
  const measured = measuredPart(parts, written);
  return { model, version, ...measured, setAside: parts.filter((p) => p !== measured) };
}

/**
 * Every partial of the group's (model, version) and window, whatever its reference, with their
 * events: what data quality is measured on.
 */
export function wholeWindow(group: MergeGroup): Pick<ReferencePart, 'partials' | 'events' | 'late'> {
  const parts: readonly ReferencePart[] = [group, ...group.setAside];
  return {
    partials: parts.flatMap((p) => p.partials),
    events: parts.reduce((n, p) => n + p.events, 0),
    late: parts.reduce((n, p) => n + p.late, 0),
  };
}

/**
 * Merges the partials of a group's measured part (never its `setAside`) feature by feature against
 * the reference they were built with. Summaries are merged in source order; merging is exact, so
 * the order does not matter anyway.
 */
export function mergeGroup(group: Omit<MergeGroup, 'setAside'>, ref: ReferenceSet): Map<string, Summary> {
  if (group.referenceId !== ref.referenceId) {
    throw new DriftlineError(
      'VALIDATION_FAILED',
      `merge: group built against ${group.referenceId}, got ${ref.referenceId}`,
    );
  }
  const out = new Map<string, Summary>();
  for (let i = 0; i < ref.features.length; i++) {
    const feature = ref.features[i]!;
    const profile = ref.profiles[i]!;
    const summaries: Summary[] = [];
    for (const p of group.partials) {
      const json = Object.hasOwn(p.summaries, feature) ? p.summaries[feature] : undefined;
      if (json !== undefined) summaries.push(summaryFromJSON(json, profile));
    }
    const merged = mergeAll(summaries, profile);
    if (merged !== undefined) out.set(feature, merged);
  }
  return out;
}
