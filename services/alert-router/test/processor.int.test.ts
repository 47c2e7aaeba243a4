import { mkdtempSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRoutesText } from '@driftline/alerting';
import { DEFAULT_EVENT_TIME_BOUNDS, DriftlineError, silentLogger } from '@driftline/core';
import type { DecodedRecord, InboundRecord } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import type { DriftAlert } from '@driftline/schemas';
import { freePort, uniqueName } from '@driftline/test-support';
import {
  type AlertDeliveryStore,
  type ClickHouse,
  createClickHouse,
  migrate,
  migrations,
  warehouseOn,
} from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routerProcessor } from '../src/processor.js';
import { driftAlert } from './fixtures.js';

// The processor on embedded ClickHouse and a loopback receiver, without Kafka: what happens when
// the record of a delivery cannot be written (the loop retries the batch).
const NOW = Date.now();

const alert = (id: string, over: Partial<DriftAlert> = {}) =>
  driftAlert(id, NOW - 120_000, { evidence: '{}', ...over });

const record = (a: DriftAlert, offset = 0): InboundRecord => ({
  topic: 'alerts.v1',
  partition: 0,
  offset: String(offset),
  key: Buffer.from(a.model),
  value: Buffer.from(JSON.stringify(a)),
  headers: {},
  timestamp: NOW,
});
const items = (alerts: DriftAlert[]): Array<DecodedRecord<DriftAlert>> =>
  alerts.map((value, i) => ({ record: record(value, i), value }));
const context = { topic: 'alerts.v1', partition: 0, highWatermark: '10' };

describe('router processor', () => {
  let ch: ClickHouse;
  let server: Server;
  const bodies: Array<{ alert_ids: string[] }> = [];
  let port = 0;

  beforeAll(async () => {
    ch = await createClickHouse({
      mode: 'embedded',
      path: mkdtempSync(join(tmpdir(), 'router-proc-')),
      database: uniqueName('router_proc').replaceAll('-', '_'),
    });
    await migrate(ch, migrations);
    port = await freePort();
    server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        bodies.push(JSON.parse(Buffer.concat(chunks).toString('utf8')) as { alert_ids: string[] });
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise((r) => server.close(r));
    await ch.close();
  });

  function processor(
    store: AlertDeliveryStore,
    routesText = `receivers: { team: { url: "http://127.0.0.1:${port}/team" } }\nroutes: [{ match: { model: fraud }, receivers: [team] }]`,
    retry = { maxAttempts: 2, initialMs: 10, maxDelayMs: 10, budgetMs: 1_000, jitter: 0 },
  ) {
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const routes = parseRoutesText(routesText);
    return {
      registry,
      processor: routerProcessor({
        routes,
        store,
        decode: (r) => JSON.parse(String(r.value)) as DriftAlert,
        eventTime: DEFAULT_EVENT_TIME_BOUNDS,
        deliver: {
          retry,
          timeoutMs: 2_000,
          signal: new AbortController().signal,
        },
        logger: silentLogger,
        registry,
      }),
    };
  }

  it('does not deliver again when the record failed and the batch is retried; records it with the retry', async () => {
    const real = warehouseOn(ch).alertDeliveries;
    let writes = 0;
    const store: AlertDeliveryStore = {
      delivered: (r, ids) => real.delivered(r, ids),
      async write(rows) {
        writes++;
        if (writes === 1) throw new DriftlineError('SINK_UNAVAILABLE', 'ClickHouse is down', { retriable: true });
        await real.write(rows);
      },
    };
    const { processor: p, registry } = processor(store);
    const batch = items([alert('p1'), alert('p2'), alert('x', { model: 'other' })]);
    await expect(p.process(batch, context)).rejects.toMatchObject({ retriable: true });
    expect(bodies.map((b) => b.alert_ids)).toEqual([['p1', 'p2']]);
    await p.process(batch, context); // the loop's retry of the same batch
    expect(bodies).toHaveLength(1);
    const rows = await ch.select<{ alert_ids: string[]; status: string }>(
      `SELECT alert_ids, status FROM ${ch.table('alert_deliveries')}`,
    );
    expect(rows).toEqual([{ alert_ids: ['p1', 'p2'], status: 'delivered' }]);
    expect(await registry.getSingleMetricAsString('driftline_alerts_unrouted_total')).toMatch(
      /kind="FEATURE_DRIFT"[^}]*\} 2$/m, // the unrouted alert, once per attempt of the batch
    );

    // A fresh process (no memory) replaying the batch: ClickHouse says p1 and p2 were delivered.
    const again = processor(real).processor;
    await again.process(batch, context);
    expect(bodies).toHaveLength(1);
  });

  it('a receiver failing its lookup does not let the retry overlap another receiver still delivering', async () => {
    // `slow` answers after 600 ms; the dedup lookup of `fast` fails once (retriable). The batch
    // must fail only once `slow` is done, so the retry knows `slow` delivered and sends nothing twice.
    let slowRequests = 0;
    const slowPort = await freePort();
    const slow = createServer((_req, res) => {
      slowRequests++;
      setTimeout(() => res.writeHead(200).end(), 600);
    });
    await new Promise<void>((r) => slow.listen(slowPort, '127.0.0.1', r));
    try {
      const real = warehouseOn(ch).alertDeliveries;
      let lookups = 0;
      const store: AlertDeliveryStore = {
        async delivered(receiver, ids) {
          if (receiver === 'fast' && lookups++ === 0) {
            throw new DriftlineError('SINK_UNAVAILABLE', 'ClickHouse is down', { retriable: true });
          }
          return real.delivered(receiver, ids);
        },
        write: (rows) => real.write(rows),
      };
      const { processor: p } = processor(
        store,
        `receivers: { slow: { url: "http://127.0.0.1:${slowPort}/s" }, fast: { url: "http://127.0.0.1:${port}/f" } }\nroutes: [{ match: { model: twice }, receivers: [slow, fast] }]`,
      );
      const batch = items([alert('t1', { model: 'twice' })]);
      await expect(p.process(batch, context)).rejects.toMatchObject({ retriable: true });
      await p.process(batch, context); // the loop's retry, at once
      expect(slowRequests).toBe(1);
      const rows = await ch.select<{ receiver: string; status: string }>(
        `SELECT receiver, status FROM ${ch.table('alert_deliveries')} WHERE has(alert_ids, 't1') ORDER BY receiver`,
      );
      expect(rows).toEqual([
        { receiver: 'fast', status: 'delivered' },
        { receiver: 'slow', status: 'delivered' },
      ]);
    } finally {
      slow.closeAllConnections();
      await new Promise((r) => slow.close(r));
    }
  });

  it('a receiver that stays down holds a batch for one retry budget, not one per message (found by a review)', async () => {
    const downPort = await freePort();
    let requests = 0;
    const down = createServer((_req, res) => {
      requests++;
      res.writeHead(503).end('down');
    });
    await new Promise<void>((r) => down.listen(downPort, '127.0.0.1', r));
    try {
      const { processor: p } = processor(
        warehouseOn(ch).alertDeliveries,
        `receivers: { down: { url: "http://127.0.0.1:${downPort}/d" } }\nroutes: [{ match: { model: gone }, receivers: [down] }]`,
        { maxAttempts: 50, initialMs: 100, maxDelayMs: 100, budgetMs: 1_000, jitter: 0 },
      );
      // Five messages (event times an hour apart: five groups).
      const batch = items(
        Array.from({ length: 5 }, (_, i) => driftAlert(`g${i}`, NOW - 120_000 - i * 3_600_000, { model: 'gone' })),
      );
      const started = Date.now();
      await p.process(batch, context);
      const elapsed = Date.now() - started;
      // Per message it was 5 × ~1 s; shared, the first spends the budget and the rest try once.
      expect(elapsed).toBeLessThan(2_500);
      expect(requests).toBeGreaterThanOrEqual(8 + 4);
      expect(requests).toBeLessThanOrEqual(11 + 4);
      const rows = await ch.select<{ status: string; attempts: number }>(
        `SELECT status, attempts FROM ${ch.table('alert_deliveries')} WHERE receiver = 'down' ORDER BY first_attempt_at`,
      );
      expect(rows.map((r) => r.status)).toEqual(['failed', 'failed', 'failed', 'failed', 'failed']);
      expect(rows.slice(1).map((r) => Number(r.attempts))).toEqual([1, 1, 1, 1]);
    } finally {
      down.closeAllConnections();
      await new Promise((r) => down.close(r));
    }
  });

  it('a permanent refusal does not eat into the shared budget: the next message retries a transient failure (found by a review)', async () => {
    const flakyPort = await freePort();
    let requests = 0;
    const flaky = createServer((_req, res) => {
      requests++;
      // The first message: a slow 400 (longer than the budget); the second: 503 twice, then 200.
      if (requests === 1) setTimeout(() => res.writeHead(400).end('bad'), 1_200);
      else res.writeHead(requests <= 3 ? 503 : 200).end();
    });
    await new Promise<void>((r) => flaky.listen(flakyPort, '127.0.0.1', r));
    try {
      const { processor: p } = processor(
        warehouseOn(ch).alertDeliveries,
        `receivers: { flaky: { url: "http://127.0.0.1:${flakyPort}/f" } }\nroutes: [{ match: { model: flaky }, receivers: [flaky] }]`,
        { maxAttempts: 10, initialMs: 50, maxDelayMs: 50, budgetMs: 1_000, jitter: 0 },
      );
      const batch = items([0, 1].map((i) => driftAlert(`f${i}`, NOW - 120_000 - i * 3_600_000, { model: 'flaky' })));
      await p.process(batch, context);
      const rows = await ch.select<{ status: string; attempts: number }>(
        `SELECT status, attempts FROM ${ch.table('alert_deliveries')} WHERE receiver = 'flaky' ORDER BY first_attempt_at`,
      );
      expect(rows.map((r) => [r.status, Number(r.attempts)])).toEqual([
        ['failed', 1],
        ['delivered', 3],
      ]);
    } finally {
      flaky.closeAllConnections();
      await new Promise((r) => flaky.close(r));
    }
  });

  it('sends an alert whose event time is out of bounds to the DLQ (poison)', async () => {
    const { processor: p } = processor(warehouseOn(ch).alertDeliveries);
    await expect(p.decode(record(alert('late', { event_time: NOW + 2 * 3_600_000 })))).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
    });
    // The window too (it was rendered at delivery: a RangeError, dead-lettered as INTERNAL after
    // the batch's good messages were sent again by bisection).
    await expect(p.decode(record(alert('far', { window_start: -9e15 })))).rejects.toMatchObject({
      code: 'VALIDATION_FAILED',
      message: expect.stringMatching(/^alert far: window_start -9000000000000000 .* is before the minimum 1900/),
    });
    const empty = alert('empty');
    await expect(p.decode(record({ ...empty, window_start: empty.window_end }))).rejects.toThrow(/an empty window/);
    await expect(p.decode(record(alert('ok')))).resolves.toMatchObject({ alert_id: 'ok' });
  });
});
