import { performance } from 'node:perf_hooks';
import { toDriftlineError } from '@driftline/core';
import { leasedPartitions } from '@driftline/kafka';
import { contracts } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { type ModelControllerConfig, modelControllerEnvShape, toModelControllerConfig } from './config.js';
import { ModelController } from './controller.js';
import { CONTROLLER_LEASE_MS, CONTROLLER_SESSION_TIMEOUT_MS, modelOwnership } from './ownership.js';

export const modelControllerService = defineService({
  name: 'model-controller',
  description:
    'Shadow → canary → production on live paired evidence, rollback of a degrading production (recorded, then published on models.v1)',
  needs: ['kafka', 'registry', 'clickhouse'],
  envShape: modelControllerEnvShape,
  configure: toModelControllerConfig,
  async start(ctx: ServiceContext, config: ModelControllerConfig) {
    const warehouse = await ctx.warehouse();
    const models = ctx.publisher(contracts.model);
    await models.prepare(); // an incompatible schema fails start-up, not the first transition
    // The lease: controllers share a consumer group on models.v1, and each model is decided by the
    // member holding the partition its events go to (two controllers had recorded and published
    // contradicting transitions: found by a review). The records themselves are read for nothing.
    const topic = ctx.topic('model');
    const group = `${ctx.common.topicPrefix}${config.group}`;
    const lease = await ctx.consume<null>({
      groupId: group,
      topics: [topic],
      fromBeginning: false,
      sessionTimeoutMs: CONTROLLER_SESSION_TIMEOUT_MS,
      processor: { decode: () => null, process: async () => {} },
    });
    /** models.v1's partition count, read once per assignment (the join it was read for). */
    let count: { partitions: number; joins: number } | undefined;
    let lapsed = false;
    /** Before each tick: the partition count of a new assignment, and a membership left unconfirmed, said once. */
    const observeLease = async () => {
      const membership = lease.membership();
      if (membership.joins > 0 && count?.joins !== membership.joins) {
        try {
          count = { partitions: await ctx.partitionCount(topic), joins: membership.joins };
          const partitions = membership.partitions.filter((p) => p.topic === topic).map((p) => p.partition);
          ctx.logger.info(
            { group, partitions, of: count.partitions },
            'models.v1 partitions held: this controller decides the models whose events go to them',
          );
        } catch (error) {
          const e = toDriftlineError(error);
          ctx.logger.warn(
            { topic, code: e.code, err: e.message },
            'reading the partition count of models.v1 failed: no model is decided here until it is read',
          );
        }
      }
      const unconfirmed =
        membership.partitions.length > 0 &&
        leasedPartitions(membership, performance.now(), CONTROLLER_LEASE_MS).length === 0;
      if (unconfirmed && !lapsed)
        ctx.logger.warn(
          { group, leaseMs: CONTROLLER_LEASE_MS },
          'group membership not confirmed by the coordinator within the lease: deciding nothing until a heartbeat is accepted',
        );
      else if (!unconfirmed && lapsed) ctx.logger.info({ group }, 'group membership confirmed again');
      lapsed = unconfirmed;
    };
    ctx.logger.info(
      { policy: config.policySource, models: Object.keys(config.policies.models), intervalMs: config.intervalMs },
      'rollout policy loaded',
    );
    const controller = new ModelController({
      transitions: warehouse.transitions,
      pairs: {
        readPairs: (q) => warehouse.predictions.readPairsCounted(q),
        labelClock: (model, now, notAfter) => warehouse.predictions.labelClock(model, now, notAfter),
        answeredSince: (model, version, since) => warehouse.predictions.answeredSince(model, version, since),
        labelDelays: (model, since) => warehouse.predictions.labelDelays(model, since),
      },
      publish: (events) => models.publish(events),
      policies: config.policies,
      maxPairs: config.maxPairs,
      maxFutureMs: ctx.common.eventTime.maxFutureMs,
      logger: ctx.logger,
      registry: ctx.registry,
      ownership: (model) => modelOwnership(lease.membership(), topic, count, performance.now())(model),
    });

    // Ticks never overlap: the next one is scheduled when the previous one has finished.
    let stopped = false;
    let ticked = false;
    let listingFails = false;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> = Promise.resolve();
    const run = async () => {
      try {
        await observeLease();
        await controller.tick();
        listingFails = false;
      } catch (error) {
        // Listing the models failed (ClickHouse down): nothing decided, retried next tick.
        listingFails = true;
        ctx.logger.warn({ err: (error as Error).message }, 'controller tick failed; retried next tick');
      }
      ticked = true;
      if (!stopped) {
        timer = setTimeout(() => {
          running = run();
        }, config.intervalMs);
      }
    };
    // The first tick runs at once, joined (ctx.consume returns after the first join): it
    // re-publishes the newest transition of every version of the models this controller holds.
    running = run();
    return {
      // Not ready while no tick can even list the models (its warehouse is down), nor out of its
      // group: /readyz says so. A member given no partition (more controllers than models.v1
      // partitions) is ready: a standby, it takes models over when another leaves.
      ready: () => ticked && !listingFails && lease.ready(),
      async stop() {
        stopped = true;
        if (timer !== undefined) clearTimeout(timer);
        // The tick in hand finishes (its writes land) before this member leaves the group and its
        // models go to another controller.
        await running;
        await lease.stop();
      },
    };
  },
});
