import { performance } from 'node:perf_hooks';
import type { Consumer } from 'kafkajs';
import { partitionKey } from './partition-key.js';

/** A partition this member holds, and since when it has held it without a break (`performance.now()`). */
export interface HeldPartition {
  readonly topic: string;
  readonly partition: number;
  readonly heldSince: number;
}

/**
 * What a consumer group member knows of its own membership, for a reader that uses the group as a
 * lease: one member at a time acts on the keys of each partition (the model-controller).
 */
export interface Membership {
  /**
   * The partitions assigned in the current generation. Empty from the moment this member learns of
   * a rebalance (kafkajs' eager protocol: every member gives up everything before anything is
   * assigned) until its next join completes, after a crash, and once stopping.
   */
  readonly partitions: readonly HeldPartition[];
  /**
   * `performance.now()` when the newest request the coordinator accepted from this member was sent:
   * the SyncGroup of its last join, or a heartbeat answered without error. The coordinator restarted
   * the member's session clock on receiving it, so it cannot have evicted the member (and given its
   * partitions to another) before `confirmedAt` + the session timeout. Undefined before a join.
   */
  readonly confirmedAt: number | undefined;
  /** Joins completed so far: a new value is a new assignment. */
  readonly joins: number;
}

/**
 * The membership of one member, from kafkajs' events (`watchMembership`); pure: times are given.
 * A request's send time is what confirms a membership, never its answer's arrival: a heartbeat
 * answered late (or read after the process was frozen) says nothing of the time in between.
 */
export class MembershipTracker {
  private partitions: HeldPartition[] = [];
  /** The member id and partitions of the last join: one assigned again to the same member id was held throughout. */
  private last: { readonly memberId: string; readonly heldSince: ReadonlyMap<string, number> } | undefined;
  private confirmedAt: number | undefined;
  /** Send time of the last answered Heartbeat and SyncGroup requests. */
  private heartbeatSentAt: number | undefined;
  private syncSentAt: number | undefined;
  private joins = 0;

  /** A request of this member was answered (with an error too); `sentAt` is when it was sent. */
  answered(apiName: string, sentAt: number): void {
    // A JoinGroup answered: the group went through a rebalance with this member in it, and the new
    // assignment (the other members' too) follows at once. Also when no REBALANCING event came
    // first (kafkajs rejoins on its own after stale metadata).
    if (apiName === 'JoinGroup') this.partitions = [];
    else if (apiName === 'Heartbeat') this.heartbeatSentAt = sentAt;
    else if (apiName === 'SyncGroup') this.syncSentAt = sentAt;
  }

  /** The last heartbeat answered was accepted (kafkajs emits this only without an error). */
  heartbeatAccepted(): void {
    if (this.heartbeatSentAt !== undefined) this.confirm(this.heartbeatSentAt);
  }

  /** The group is rebalancing: this member is about to join again and holds nothing meanwhile. */
  rebalancing(): void {
    this.partitions = [];
  }

  /** A join completed with this assignment (topic → partitions), at `now`. */
  joined(memberId: string, assignment: Readonly<Record<string, readonly number[]>>, now: number): void {
    this.joins++;
    // The SyncGroup that returned this assignment: the coordinator took it as this member's.
    if (this.syncSentAt !== undefined) this.confirm(this.syncSentAt);
    const kept = this.last?.memberId === memberId ? this.last.heldSince : new Map<string, number>();
    const heldSince = new Map<string, number>();
    const partitions: HeldPartition[] = [];
    for (const [topic, list] of Object.entries(assignment)) {
      for (const partition of list) {
        const since = kept.get(partitionKey(topic, partition)) ?? now;
        heldSince.set(partitionKey(topic, partition), since);
        partitions.push({ topic, partition, heldSince: since });
      }
    }
    this.partitions = partitions;
    this.last = { memberId, heldSince };
  }

  /** Crashed or stopping: nothing held, and nothing carried into the next join. */
  lost(): void {
    this.partitions = [];
    this.last = undefined;
    this.confirmedAt = undefined;
  }

  current(): Membership {
    return { partitions: this.partitions, confirmedAt: this.confirmedAt, joins: this.joins };
  }

  private confirm(sentAt: number): void {
    this.confirmedAt = this.confirmedAt === undefined ? sentAt : Math.max(this.confirmedAt, sentAt);
  }
}

/** Feeds a kafkajs consumer's events to a tracker, with `performance.now()` times (a wall clock step moves nothing). */
export function watchMembership(consumer: Consumer): MembershipTracker {
  const tracker = new MembershipTracker();
  // Emitted as the answer is read, with `duration` measured to that moment: now − duration is the send.
  consumer.on(consumer.events.REQUEST, (e) =>
    tracker.answered(e.payload.apiName, performance.now() - e.payload.duration),
  );
  consumer.on(consumer.events.HEARTBEAT, () => tracker.heartbeatAccepted());
  consumer.on(consumer.events.REBALANCING, () => tracker.rebalancing());
  consumer.on(consumer.events.GROUP_JOIN, (e) =>
    tracker.joined(e.payload.memberId, e.payload.memberAssignment, performance.now()),
  );
  consumer.on(consumer.events.CRASH, () => tracker.lost());
  consumer.on(consumer.events.STOP, () => tracker.lost());
  return tracker;
}

/**
 * The partitions this member may act on at `now` (`performance.now()`): those it holds, while its
 * membership was confirmed less than `leaseMs` ago; none otherwise. `leaseMs` must be below the
 * session timeout: past it the coordinator may have evicted this member (a frozen process, brokers
 * it cannot reach) and given its partitions to another, and this member may not have heard yet.
 */
export function leasedPartitions(m: Membership, now: number, leaseMs: number): readonly HeldPartition[] {
  return m.confirmedAt !== undefined && now - m.confirmedAt < leaseMs ? m.partitions : [];
}
