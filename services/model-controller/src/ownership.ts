import { leasedPartitions, type Membership, partitionOf } from '@driftline/kafka';

/**
 * Kafka session timeout of the controllers' group: a controller that stops heartbeating (crashed,
 * frozen, cut off from the brokers) is evicted after it and its models go to the others.
 */
export const CONTROLLER_SESSION_TIMEOUT_MS = 30_000;
/**
 * A controller decides only while the coordinator confirmed its membership (an accepted heartbeat
 * or join, by send time) less than this ago: a third of the session timeout, so it has stopped
 * deciding 20 s before the coordinator can evict it and give its models to another. kafkajs
 * heartbeats every 3 to 5 s while the member is healthy.
 */
export const CONTROLLER_LEASE_MS = 10_000;
/**
 * A model whose partition this controller has just been given is re-published at once but decided
 * only after this: a write its previous owner checked just before the rebalance has landed by then
 * (read in this controller's history), unless that write took longer.
 */
export const CONTROLLER_SETTLE_MS = 5_000;

/** What a controller may do with a model: decide and publish, publish only (settling), or nothing (another's). */
export type Ownership = 'decide' | 'publish' | 'none';

/**
 * The controllers' group as a lease per model (pure): a model is this controller's when the
 * `topic` (models.v1) partition its events go to (`partitionOf` its name, as every producer keys
 * them; also for a model with no event yet) is assigned to this member and its membership was
 * confirmed within `leaseMs` of `now`; it is decided once that partition has been held for
 * `settleMs`. `partitionCount` is the topic's count read for this assignment (`joins`); without
 * it, or with a partition assigned beyond it (the topic grew since it was read), nothing is owned.
 */
export function modelOwnership(
  membership: Membership,
  topic: string,
  count: { readonly partitions: number; readonly joins: number } | undefined,
  now: number,
  bounds: { readonly leaseMs: number; readonly settleMs: number } = {
    leaseMs: CONTROLLER_LEASE_MS,
    settleMs: CONTROLLER_SETTLE_MS,
  },
): (model: string) => Ownership {
  const held = leasedPartitions(membership, now, bounds.leaseMs).filter((p) => p.topic === topic);
  if (count === undefined || count.joins !== membership.joins || held.some((p) => p.partition >= count.partitions))
    return () => 'none';
  const settled = new Set(held.filter((p) => now - p.heldSince >= bounds.settleMs).map((p) => p.partition));
  const publishing = new Set(held.map((p) => p.partition));
  return (model) => {
    const partition = partitionOf(model, count.partitions);
    if (settled.has(partition)) return 'decide';
    return publishing.has(partition) ? 'publish' : 'none';
  };
}
