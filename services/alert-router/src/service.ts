import type { ConsumerHandle } from '@driftline/kafka';
import { contracts } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import {
  type AlertRouterConfig,
  alertRouterEnvShape,
  checkAgainstStallTimeout,
  toAlertRouterConfig,
} from './config.js';
import { routerProcessor } from './processor.js';
import { receiverGroupId, seedReceiverGroups } from './receiver-groups.js';

export const alertRouterService = defineService({
  name: 'alert-router',
  description: 'Alerts → webhooks (JSON, Slack) by model, kind and severity: retries, dedupe, grouping, rate limits',
  needs: ['kafka', 'registry', 'clickhouse'],
  envShape: alertRouterEnvShape,
  configure: toAlertRouterConfig,
  async start(ctx: ServiceContext, config: AlertRouterConfig) {
    const routes = config.routes;
    if (routes === undefined) {
      ctx.logger.warn(
        { variable: 'DRIFTLINE_ALERT_ROUTES_FILE' },
        'no routes file: the alert-router is idle and sends no alerts',
      );
      return { ready: () => true, stop: async () => {} };
    }
    checkAgainstStallTimeout(config, ctx.common.stallTimeoutMs);
    const warehouse = await ctx.warehouse();
    const alertCodec = ctx.codec().forTopic(contracts.alert, ctx.topic('alert'));
    const stopping = new AbortController();
    ctx.logger.info(
      {
        routes: config.routesSource,
        receivers: [...routes.receivers.keys()],
        groupWindowMs: routes.groupWindowMs,
        retry: config.retry,
        timeoutMs: config.timeoutMs,
      },
      'alert routes loaded',
    );
    // One consumer group per receiver: a receiver that is down holds back its own alerts only,
    // never the other receivers' later batches (with one group, every batch after the outage
    // waited out the down receiver's retry budget).
    const receivers = [...routes.receivers.keys()];
    const topic = ctx.topic('alert');
    const group = `${ctx.common.topicPrefix}${config.group}`;
    await ctx.ensureTopics([{ topic }]);
    const seeded = await seedReceiverGroups(
      ctx.kafka(),
      topic,
      group,
      receivers,
      warehouse.alertDeliveries,
      config.start,
    );
    for (const { receiver, from } of seeded) {
      const fields = { receiver, group: receiverGroupId(group, receiver), from };
      if (from === 'start of topic') {
        ctx.logger.warn(
          fields,
          'receiver group has no commits but the receiver has delivery records (its commits were deleted: the topic re-created, or the group deleted or expired): reading the topic from its start; alert_deliveries drops what it delivered',
        );
      } else ctx.logger.info(fields, 'new receiver group: where it starts');
    }
    const consumers: ConsumerHandle[] = [];
    for (const [i, receiver] of receivers.entries()) {
      consumers.push(
        await ctx.consume({
          groupId: receiverGroupId(group, receiver),
          topics: [topic],
          // Only a group left unseeded reads from the beginning: DRIFTLINE_ALERT_ROUTER_START=earliest.
          fromBeginning: true,
          processor: routerProcessor({
            routes,
            receiver,
            reportsUnrouted: i === 0,
            store: warehouse.alertDeliveries,
            decode: (r) => alertCodec.decode(r.value),
            eventTime: ctx.common.eventTime,
            deliver: { retry: config.retry, timeoutMs: config.timeoutMs, signal: stopping.signal },
            logger: ctx.logger,
            registry: ctx.registry,
          }),
        }),
      );
    }
    return {
      ready: () => consumers.every((c) => c.ready()),
      async stop() {
        // Retries and rate-limit waits end now; the batches in hand are left uncommitted (redelivered).
        stopping.abort();
        await Promise.all(consumers.map((c) => c.stop()));
      },
    };
  },
});
