import { mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { silentLogger } from '@driftline/core';
import { parseFeatureViewsText, planWrites, validateFeatureEvent } from '@driftline/features';
import { createMetricsRegistry } from '@driftline/observability';
import { InMemoryOnlineStore, type ReadBatchOptions, type RowRequest } from '@driftline/online-store';
import type { PredictionEvent } from '@driftline/schemas';
import { eventually } from '@driftline/test-support';
import { afterAll, describe, expect, it } from 'vitest';
import { artifactLoader } from '../src/artifacts.js';
import { startModelServer } from '../src/server.js';
import { VIEWS_YAML, writeVersion } from './fixtures.js';

const views = parseFeatureViewsText(VIEWS_YAML);
const dir = mkdtempSync(join(tmpdir(), 'model-server-departed-'));
writeVersion(dir, 'm', 'v1', 1);

/** The in-memory store, its batch reads held until `release()`; the signal of each read kept. */
class HeldStore extends InMemoryOnlineStore {
  readonly signals: Array<AbortSignal | undefined> = [];
  private opened!: () => void;
  private gate = new Promise<void>((resolve) => {
    this.opened = resolve;
  });
  release(): void {
    this.opened();
  }
  override async readBatch(requests: readonly RowRequest[], options: ReadBatchOptions = {}) {
    this.signals.push(options.signal);
    await this.gate;
    return super.readBatch(requests, options);
  }
}

// Found by a review: the handler logged the predictions of a client already gone and counted them
// answered (200): 300 aborted batch requests logged 28,100 predictions no client holds an id of (a
// retrying client's request logged twice; orphans never get labels).
describe('a client gone before its answer', () => {
  const closing: Array<() => Promise<void>> = [];
  afterAll(async () => {
    for (const close of closing) await close();
  });

  it('logs nothing, counts a 499, and its read, not issued yet, is skipped (an aborted signal)', async () => {
    const store = new HeldStore();
    const logged: PredictionEvent[] = [];
    const registry = createMetricsRegistry({ service: 'test', defaultMetrics: false });
    const server = await startModelServer({
      store,
      views,
      load: artifactLoader(dir),
      log: {
        publish: async (events) => {
          logged.push(...events);
        },
        deadLetter: async () => {},
      },
      registry,
      logger: silentLogger,
      logBounds: { flushIntervalMs: 5 },
    });
    closing.push(() => server.close());
    await server.table.promote('m', 'v1');
    const t = Date.now();
    const event = (view: string, i: number, features: Record<string, number>) =>
      validateFeatureEvent(views, { event_id: `${view}${i}`, view, entity_id: `u${i}`, event_time: t, features });
    await store.write(
      planWrites(
        Array.from({ length: 50 }, (_, i) => [
          event('user', i, { f0: i, f1: -i }),
          event('account', i, { f2: 2 }),
        ]).flat(),
      ),
    );

    const body = JSON.stringify({
      instances: Array.from({ length: 50 }, (_, i) => ({ entity_id: `u${i}`, features: { f3: 1 } })),
    });
    const socket = connect(server.port, '127.0.0.1');
    socket.on('error', () => {});
    socket.write(
      `POST /v1/models/m:predict HTTP/1.1\r\nHost: x\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    // The read is under way (held), then the client goes.
    await eventually(async () => (store.signals.length > 0 ? true : undefined), 10_000, 10);
    socket.destroy();
    // The server notices (the signal aborts); old code passed no signal: waited out, then on.
    await eventually(async () => (store.signals[0]?.aborted === true ? true : undefined), 3_000, 10).catch(() => {});
    store.release();
    const finished = await eventually(async () => {
      const text = await registry.getSingleMetricAsString('driftline_model_server_request_seconds');
      const line = text.split('\n').find((l) => l.includes('_count{') && l.includes('route="predict"'));
      return line === undefined ? undefined : /status="(\d+)"/.exec(line)?.[1];
    }, 10_000);
    expect(finished).toBe('499');
    expect(store.signals[0]?.aborted).toBe(true);

    // A request that stays is answered and logged as before, and nothing else was.
    store.release();
    const res = await fetch(`http://127.0.0.1:${server.port}/v1/models/m:predict`, {
      method: 'POST',
      body: JSON.stringify({ entity_id: 'u1', features: { f3: 1 } }),
    });
    expect(res.status).toBe(200);
    const answered = (await res.json()) as { prediction_id: string };
    await eventually(async () => (logged.length > 0 ? true : undefined), 10_000, 10);
    expect(logged.map((e) => e.prediction_id)).toEqual([answered.prediction_id]);
  }, 30_000);
});
