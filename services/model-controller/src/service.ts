import { contracts } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { type ModelControllerConfig, modelControllerEnvShape, toModelControllerConfig } from './config.js';
import { ModelController } from './controller.js';

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
    ctx.logger.info(
      { policy: config.policySource, models: Object.keys(config.policies.models), intervalMs: config.intervalMs },
      'rollout policy loaded',
    );
    const controller = new ModelController({
      transitions: warehouse.transitions,
      pairs: {
        readPairs: (q) => warehouse.predictions.readPairsCounted(q),
        labelClock: (model, notAfter) => warehouse.predictions.labelClock(model, notAfter),
        answeredSince: (model, version, since) => warehouse.predictions.answeredSince(model, version, since),
      },
      publish: (events) => models.publish(events),
      policies: config.policies,
      maxPairs: config.maxPairs,
      maxFutureMs: ctx.common.eventTime.maxFutureMs,
      logger: ctx.logger,
      registry: ctx.registry,
    });

    // Ticks never overlap: the next one is scheduled when the previous one has finished.
    let stopped = false;
    let ticked = false;
    let listingFails = false;
    let timer: NodeJS.Timeout | undefined;
    let running: Promise<void> = Promise.resolve();
    const run = async () => {
      try {
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
    // The first tick runs at once: it re-publishes the newest transition of every version.
    running = run();
    return {
      // Not ready while no tick can even list the models (its warehouse is down): /readyz says so.
      ready: () => ticked && !listingFails,
      async stop() {
        stopped = true;
        if (timer !== undefined) clearTimeout(timer);
        await running;
      },
    };
  },
});
