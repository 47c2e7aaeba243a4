import { mkdtempSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRoutesText, type RetryPolicy } from '@driftline/alerting';
import { DEFAULT_EVENT_TIME_BOUNDS, silentLogger } from '@driftline/core';
import type { DecodedRecord } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import type { DriftAlert } from '@driftline/schemas';
import { freePort, uniqueName } from '@driftline/test-support';
import { type ClickHouse, createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routerProcessor } from '../src/processor.js';
import { driftAlert } from './fixtures.js';

// The processor on embedded ClickHouse and a loopback receiver (no Kafka): what a split of a message
// costs a receiver that takes none, and the Idempotency-Key of a message the receiver may have
// taken without answering in time (found by a review).
const NOW = Date.now();
const context = { topic: 'alerts.v1', partition: 0, highWatermark: '10' };
const items = (alerts: DriftAlert[]): Array<DecodedRecord<DriftAlert>> =>
  alerts.map((value, i) => ({
    record: {
      topic: 'alerts.v1',
      partition: 0,
      offset: String(i),
      key: Buffer.from(value.model),
      value: Buffer.from(JSON.stringify(value)),
      headers: {},
      timestamp: NOW,
    },
    value,
  }));

/** One request of a message (a delivery check has no alert ids). */
interface Sent {
  readonly ids: readonly string[];
  readonly key: string | undefined;
}

/**
 * A loopback receiver that acts on every message (each alert shown once per key) and drops a
 * repeat of an `Idempotency-Key`, as the README asks of a receiver slower than the timeout; the
 * answer (status, and delay in ms) per request is `answer`'s.
 */
async function receiver(answer: (ids: readonly string[]) => { status: number; delayMs: number }) {
  const port = await freePort();
  const sent: Sent[] = [];
  const keys = new Set<string>();
  const acted = new Map<string, number>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const ids = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { alert_ids?: string[] }).alert_ids ?? [];
      const key = req.headers['idempotency-key'] as string | undefined;
      sent.push({ ids, key });
      if (ids.length > 0 && key !== undefined && !keys.has(key)) {
        keys.add(key);
        for (const id of ids) acted.set(id, (acted.get(id) ?? 0) + 1);
      }
      const { status, delayMs } = answer(ids);
      const timer = setTimeout(() => res.writeHead(status).end(), delayMs);
      res.on('close', () => clearTimeout(timer));
    });
  });
  await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${port}/h`,
    sent,
    acted,
    close: async () => {
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

describe('router processor: splits and idempotency keys', () => {
  let ch: ClickHouse;

  beforeAll(async () => {
    ch = await createClickHouse({
      mode: 'embedded',
      path: mkdtempSync(join(tmpdir(), 'router-split-')),
      database: uniqueName('router_split').replaceAll('-', '_'),
    });
    await migrate(ch, migrations);
  });
  afterAll(async () => {
    await ch.close();
  });

  function processor(name: string, url: string, rateLimit: string, retry: RetryPolicy, timeoutMs: number) {
    return routerProcessor({
      routes: parseRoutesText(
        `receivers: { ${name}: { url: "${url}", rate_limit: ${rateLimit} } }\nroutes: [{ match: { model: ${name} }, receivers: [${name}] }]`,
      ),
      store: warehouseOn(ch).alertDeliveries,
      decode: (r) => JSON.parse(String(r.value)) as DriftAlert,
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      deliver: { retry, timeoutMs, signal: new AbortController().signal },
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test', defaultMetrics: false }),
    });
  }

  const rows = async (receiver: string) =>
    ch.select<{ status: string; ids: string[]; error: string }>(
      `SELECT status, alert_ids AS ids, error FROM ${ch.table('alert_deliveries')} WHERE receiver = {receiver:String} ORDER BY first_attempt_at`,
      { receiver },
    );

  it('a receiver that takes no message at all (500 to each): a split stops once neither half is taken, 2 sends per message (found by a review)', async () => {
    // The review's scenario: 10 groups of 40 alerts, every message answered 500, the delivery checks
    // 200 (the receiver is up). Before, each message was halved down to its sends (12 more for 40),
    // both halves not taken at every level: 154 requests, 266 s at 30 a minute, all 400 failed anyway.
    const hook = await receiver((ids) => ({ status: ids.length > 0 ? 500 : 200, delayMs: 0 }));
    // A budget no attempt reaches, however loaded the machine: each message gets its attempts.
    const retry = { maxAttempts: 2, initialMs: 10, maxDelayMs: 10, budgetMs: 60_000, jitter: 0 };
    try {
      const p = processor('refuses-all', hook.url, '{ per_minute: 60000, burst: 100 }', retry, 10_000);
      const groups = Array.from({ length: 10 }, (_, g) =>
        Array.from({ length: 40 }, (_, i) =>
          driftAlert(`r${g}-${i}`, NOW - 120_000 - g * 3_600_000, { model: 'refuses-all' }),
        ),
      );
      await p.process(items(groups.flat()), context);
      for (const group of groups) {
        const ids = new Set(group.map((a) => a.alert_id));
        const mine = hook.sent.filter((s) => s.ids.length > 0 && s.ids.every((id) => ids.has(id)));
        const whole = mine.filter((s) => s.ids.length === ids.size).length; // its attempts (two budgets)
        const parts = mine.length - whole;
        expect({ whole, parts }).toEqual({ whole: 2 * retry.maxAttempts, parts: 2 }); // before: 12 parts
      }
      // All recorded failed, as before: each message as its two halves, their error saying so.
      const recorded = await rows('refuses-all');
      expect(recorded.every((r) => r.status === 'failed')).toBe(true);
      expect(recorded.map((r) => r.ids.length)).toEqual(Array.from({ length: 20 }, () => 20));
      expect(new Set(recorded.flatMap((r) => r.ids)).size).toBe(400);
      expect(recorded[0]!.error).toContain('sent in parts: the receiver did not take a message of 40 alerts');
    } finally {
      await hook.close();
    }
  });

  it('a message the receiver answers after the timeout is never split: one key, each alert acted on once (found by a review)', async () => {
    // The review's scenario: a receiver that drops repeats by the key, slower than the timeout on a
    // message of more than 3 alerts. Before, the message given up was split (4 + 4, then 2 + 2 + 2 + 2,
    // each part answered in time): 7 keys, each alert acted on 3 times.
    const hook = await receiver((ids) => ({ status: 200, delayMs: ids.length > 3 ? 2_000 : 0 }));
    const retry = { maxAttempts: 2, initialMs: 10, maxDelayMs: 10, budgetMs: 1_000, jitter: 0 };
    try {
      const p = processor('slow-big', hook.url, '{ per_minute: 60000, burst: 100 }', retry, 1_000);
      const alerts = Array.from({ length: 8 }, (_, i) => driftAlert(`s${i}`, NOW - 120_000, { model: 'slow-big' }));
      await p.process(items(alerts), context);
      expect(Object.fromEntries(hook.acted)).toEqual(Object.fromEntries(alerts.map((a) => [a.alert_id, 1])));
      const messages = hook.sent.filter((s) => s.ids.length > 0);
      expect(messages.every((s) => s.ids.length === 8)).toBe(true); // never in parts
      expect(new Set(messages.map((s) => s.key)).size).toBe(1);
      // Given up whole after its two budgets (the checks were answered): what it was before the split.
      const recorded = await rows('slow-big');
      expect(recorded.map((r) => [r.status, r.ids.length])).toEqual([['failed', 8]]);
      expect(recorded[0]!.error).toMatch(/no answer within 1000 ms.*not sent in parts: an attempt got no answer/);
    } finally {
      await hook.close();
    }
  });

  it('a digest the receiver did not answer in time goes out as it was on the batch retry: the same key (found by a review)', async () => {
    // The review's scenario: a burst of 2 sends g0 and a digest of g1 and g2; the receiver answers
    // everything (the checks too) after the timeout, so the batch fails as an outage. Before, the
    // retry sent g1 and g2 alone under new keys, and a receiver dropping repeats acted on them twice.
    let slow = true;
    const hook = await receiver(() => ({ status: 200, delayMs: slow ? 2_000 : 0 }));
    const retry = { maxAttempts: 2, initialMs: 10, maxDelayMs: 10, budgetMs: 1_000, jitter: 0 };
    try {
      const p = processor('slow-digest', hook.url, '{ per_minute: 600, burst: 2 }', retry, 1_000);
      const batch = items(
        [0, 1, 2].map((g) => driftAlert(`d${g}`, NOW - 120_000 - g * 3_600_000, { model: 'slow-digest' })),
      );
      await expect(p.process(batch, context)).rejects.toMatchObject({ code: 'SINK_UNAVAILABLE', retriable: true });
      const first = hook.sent.filter((s) => s.ids.length > 0);
      const digest = first.find((s) => s.ids.length === 2)!;
      expect(digest.ids).toEqual(['d1', 'd2']);
      expect(await rows('slow-digest')).toEqual([]); // an outage: nothing recorded
      slow = false;
      const before = hook.sent.length;
      await p.process(batch, context); // the loop's retry
      const retried = hook.sent.slice(before).filter((s) => s.ids.length > 0);
      expect(retried.find((s) => s.ids.includes('d1'))).toEqual(digest); // the same alerts, the same key
      expect(Object.fromEntries(hook.acted)).toEqual({ d0: 1, d1: 1, d2: 1 });
      expect((await rows('slow-digest')).map((r) => [r.status, r.ids.join(',')]).sort()).toEqual([
        ['delivered', 'd0'],
        ['delivered', 'd1,d2'],
      ]);
    } finally {
      await hook.close();
    }
  });
});
