// Id lookups send their ids as query parameters, which @clickhouse/client puts in the URL; every
// server bounds a URL (Node's 16 KiB by default: the host refused 400 alert ids with 431, retried for
// ever — found by a review). Each lookup goes in chunks whose URL stays within MAX_LOOKUP_URL_BYTES,
// measured here on the URLs the real client sends to a loopback server answering as ClickHouse.
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createClickHouse } from '../src/index.js';
import { arrayElementUrlBytes, chunksByUrlBytes, MAX_LOOKUP_URL_BYTES } from '../src/lookup-chunks.js';
import { ClickHouseAlertDeliveryStore } from '../src/tables/alert-deliveries.js';
import { ClickHouseDecisionStore } from '../src/tables/retrain-decisions.js';
import { ClickHouseSkewWindowStore } from '../src/tables/skew-windows.js';

const servers: Server[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) await new Promise<void>((resolve) => s.close(() => resolve()));
});

/** A loopback "ClickHouse" answering every query with no rows; `urls` records each request's URL. */
async function recording(): Promise<{ url: string; urls: string[] }> {
  const urls: string[] = [];
  // Node's default bound would refuse the old lookups before they were recorded.
  const server = createServer({ maxHeaderSize: 4 * 1024 * 1024 }, (req, res) => {
    urls.push(req.url ?? '');
    req.resume();
    req.on('end', () => {
      res.writeHead(200, { 'x-clickhouse-query-id': 'q', 'x-clickhouse-summary': '{}' });
      res.end('');
    });
  });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, urls };
}

// Ids with every character the client escapes or the URL encodes, ~120 bytes each.
const ids = (n: number, prefix: string) =>
  Array.from({ length: n }, (_, i) => `${prefix}${i}'\\ é\t${'x'.repeat(100)}`);
// The query id, database and settings beside the parameters.
const URL_OVERHEAD = 1_024;

/** How many of `values` each recorded URL's `param_<name>` holds (each value begins with `prefix`). */
const sentCount = (urls: readonly string[], name: string, prefix: string) =>
  urls
    .map((u) => new URL(u, 'http://x').searchParams.get(`param_${name}`) ?? '')
    .reduce((n, text) => n + text.split(`'${prefix}`).length - 1, 0);

describe('id lookups stay within a bounded URL, whatever the number of ids', () => {
  it('alert_deliveries.outcomes, retrain_decisions.loadStates / recordedAlerts, skew_windows.partials / totals', async () => {
    const { url, urls } = await recording();
    const ch = await createClickHouse({ mode: 'server', url, database: 'driftline', timeoutMs: 10_000 });
    const n = 3_000;

    await new ClickHouseAlertDeliveryStore(ch).outcomes('receiver', [...ids(n, 'alert-'), ...ids(10, 'alert-')]);
    const decisions = new ClickHouseDecisionStore(ch);
    await decisions.loadStates(ids(n, 'model-'));
    await decisions.recordedAlerts(new Map([['fraud', ids(n, 'decided-')]]));
    const skew = new ClickHouseSkewWindowStore(ch);
    const keys = ids(n, 'skew-').map((model, i) => ({
      model,
      version: `v-${model}`,
      windowStart: 1_700_000_000_000 + i,
    }));
    await skew.partials('topic', 0, 0, keys, 60_000);
    await skew.totals('topic', keys, 60_000);
    await ch.close();

    const longest = Math.max(...urls.map((u) => u.length));
    expect(longest).toBeLessThanOrEqual(MAX_LOOKUP_URL_BYTES + URL_OVERHEAD);
    // Every id was asked once (a duplicate id once only), in several queries.
    expect(sentCount(urls, 'ids', 'alert-')).toBe(n);
    expect(sentCount(urls, 'models', 'model-')).toBe(n);
    expect(sentCount(urls, 'ids', 'decided-')).toBe(n);
    expect(sentCount(urls, 'models', 'skew-')).toBe(2 * n);
    expect(urls.length).toBeGreaterThan(5 * 2);
  });
});

describe('chunksByUrlBytes', () => {
  it('keeps order and each chunk within the bound; a single item over it is a chunk of its own', () => {
    const items = ['a'.repeat(10), 'b'.repeat(10), 'c'.repeat(50), 'd'.repeat(10)];
    const chunks = chunksByUrlBytes(items, arrayElementUrlBytes, 40);
    expect(chunks.flat()).toEqual(items);
    expect(chunks).toEqual([[items[0], items[1]], [items[2]], [items[3]]]);
    expect(chunksByUrlBytes([], arrayElementUrlBytes)).toEqual([]);
  });

  it('measures an element as the URL carries it: quoted, escaped, encoded, with its comma', () => {
    const element = "it's\\ é\t";
    const text = `'it\\'s\\\\ é\\t',`;
    expect(arrayElementUrlBytes(element)).toBe(new URLSearchParams([['', text]]).toString().length - 1);
  });
});
