import type { ConsumerHandle } from '@driftline/kafka';
import { contracts } from '@driftline/schemas';
import { defineService, type ServiceContext } from '@driftline/service';
import { type AlertRouterConfig, alertRouterEnvShape, toAlertRouterConfig } from './config.js';
import { routerProcessor } from './processor.js';

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
    const consumer: ConsumerHandle = await ctx.consume({
      groupId: `${ctx.common.topicPrefix}${config.group}`,
      topics: [ctx.topic('alert')],
      fromBeginning: true,
      processor: routerProcessor({
        routes,
        store: warehouse.alertDeliveries,
        decode: (r) => alertCodec.decode(r.value),
        eventTime: ctx.common.eventTime,
        deliver: { retry: config.retry, timeoutMs: config.timeoutMs, signal: stopping.signal },
        logger: ctx.logger,
        registry: ctx.registry,
      }),
    });
    return {
      ready: () => consumer.ready(),
      async stop() {
        // Retries and rate-limit waits end now; the batch in hand is left uncommitted (redelivered).
        stopping.abort();
        await consumer.stop();
      },
    };
  },
});
