import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { committedOffsets } from '@driftline/kafka';
import { type Runner, type ServiceDefinition, startRunner } from '@driftline/service';
import { eventually, freePort, kafkaFor, uniqueName } from '@driftline/test-support';
import { type ClickHouse, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { alertRouterService } from '../src/index.js';
import { receiverGroupId } from '../src/receiver-groups.js';
import { driftAlert, publishAlerts, type Received, Receiver, routerEnv } from './fixtures.js';

// The service on the real stack: receivers answering 429 with a Retry-After beyond the retry
// budget (1 s here). Before, the router sent a delivery check at once (429 too: an outage) and the
// consumer loop retried the batch every 0.1–10 s: a receiver asking 600 s got about 18 requests in
// 30 s (found by a review).
const stack = inject('stack');
const dir = mkdtempSync(join(tmpdir(), 'alert-router-retry-after-'));
const prefix = `${uniqueName('rafter')}.`;
const database = uniqueName('rafter').replaceAll('-', '_');
const topic = `${prefix}alerts.v1`;
const group = 'router';
const BASE = Math.floor((Date.now() - 60_000) / 3_600_000) * 3_600_000;
/** How long `throttled` is watched after its first request. */
const WATCH_MS = 30_000;
/** `brief` asks this wait, and takes requests again a little before it ends. */
const BRIEF_WAIT_S = 3;
const BRIEF_RECOVERS_MS = 2_500;

const ids = (r: Received) => r.body.alert_ids as string[];
const isCheck = (r: Received) => r.body.group === 'delivery-check';

describe('alert-router: a receiver asking to wait (Retry-After) beyond its retry budget', () => {
  let ch: ClickHouse;
  let runner: Runner | undefined;
  let throttled: Receiver; // 429, Retry-After: 600, to everything
  let brief: Receiver; // 429, Retry-After: 3, until it recovers 2.5 s after its first request; then 200
  let ok: Receiver; // 200
  let briefFirstAt: number | undefined;
  const routesFile = join(dir, 'routes.yaml');

  beforeAll(async () => {
    throttled = new Receiver(await freePort(), () => ({ status: 429, headers: { 'retry-after': '600' } }));
    brief = new Receiver(await freePort(), () => {
      briefFirstAt ??= Date.now();
      return Date.now() - briefFirstAt < BRIEF_RECOVERS_MS
        ? { status: 429, headers: { 'retry-after': String(BRIEF_WAIT_S) } }
        : 200;
    });
    ok = new Receiver(await freePort());
    for (const r of [throttled, brief, ok]) await r.start();
    writeFileSync(
      routesFile,
      `version: 1
receivers:
  throttled: { url: "http://127.0.0.1:${throttled.port}/throttled" }
  brief: { url: "http://127.0.0.1:${brief.port}/brief" }
  ok: { url: "http://127.0.0.1:${ok.port}/ok" }
routes:
  - receivers: [throttled, brief, ok]
`,
    );
    ch = await createClickHouse({ mode: 'embedded', path: join(dir, 'chdb'), database });
    await migrate(ch, migrations);
  });

  afterAll(async () => {
    await runner?.stop();
    for (const r of [throttled, brief, ok]) await r?.stop();
  });

  it('gets one request per asked wait, no delivery check; the alert is delivered once the wait ends; the others are not held', async () => {
    runner = await startRunner({
      services: [alertRouterService as unknown as ServiceDefinition<never, unknown>],
      env: routerEnv({
        stack,
        prefix,
        database,
        chdbPath: join(dir, 'chdb'),
        routesFile,
        group,
        retryBudget: '1s',
        start: 'earliest',
      }),
    });
    await publishAlerts(stack, topic, [driftAlert('a1', BASE)]);
    const firstAt = await eventually(async () => throttled.received[0]?.at, 60_000);
    await eventually(async () => (ok.received.some((r) => ids(r).includes('a1')) ? true : undefined), 30_000);

    // brief: 429 asking 3 s, then nothing until the wait has passed; then the alert, delivered once.
    const delivered = await eventually(async () => {
      const rows = await deliveries('brief');
      return rows.length > 0 ? rows : undefined;
    }, 30_000);
    expect(delivered).toEqual([{ status: 'delivered', ids: ['a1'], attempts: 1 }]);
    const [asked, after, ...more] = brief.received;
    expect([asked, after].map((r) => r && ids(r))).toEqual([['a1'], ['a1']]);
    expect(more).toEqual([]);
    expect(after!.at - asked!.at).toBeGreaterThanOrEqual(BRIEF_WAIT_S * 1_000);

    // A later alert: the receivers that take it get it at once, throttled's partition stays held.
    const publishedAt = Date.now();
    await publishAlerts(stack, topic, [driftAlert('a2', BASE + 3_600_000)]);
    for (const r of [ok, brief]) {
      const got = await eventually(async () => r.received.find((x) => ids(x).includes('a2')), 20_000);
      expect(got.at - publishedAt).toBeLessThan(10_000);
    }

    await new Promise((r) => setTimeout(r, Math.max(0, firstAt + WATCH_MS - Date.now())));
    // Before: the message and a check at once, then both again at every retry of the batch.
    expect(throttled.received.map(ids)).toEqual([['a1']]);
    expect(throttled.received.filter(isCheck)).toEqual([]);
    expect(brief.received.filter(isCheck)).toEqual([]);
    // Held, not given up: no record, and its group has committed nothing past a1 (at-least-once).
    expect(await deliveries('throttled')).toEqual([]);
    const committed = await committedOffsets(
      kafkaFor(stack.kafkaBrokers),
      receiverGroupId(`${prefix}${group}`, 'throttled'),
      topic,
    );
    expect(committed.get(0) ?? -1n).toBeLessThanOrEqual(0n);
    expect((await deliveries('ok')).map((r) => r.ids.join())).toEqual(['a1', 'a2']);
    // What an operator sees: throttled waiting (DriftlineAlertReceiverWaiting), brief no longer
    // (removed when its wait ended). The deferral ends the group's backoff, so
    // DriftlineSinkBackingOff never fires for it: before, nothing showed the held alerts.
    const waiting = await runner.context.registry.getSingleMetric('driftline_alert_receiver_waiting')?.get();
    expect(waiting?.values.map((v) => [v.labels.receiver, v.value])).toEqual([['throttled', 1]]);
  });

  const deliveries = (receiver: string) =>
    ch.select<{ status: string; ids: string[]; attempts: number }>(
      `SELECT status, alert_ids AS ids, attempts FROM ${ch.table('alert_deliveries')}
       WHERE receiver = {receiver:String} ORDER BY finished_at`,
      { receiver },
    );
});
