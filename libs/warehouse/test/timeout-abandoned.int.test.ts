// A call to the embedded engine that times out leaves its query running (chdb cannot interrupt a
// query), and `process.exit` waits for it: `driftline report` printed its timeout and ran on for
// minutes (found by a review). The warehouse says so until nothing native is left running, so the
// CLI can end the process at once (services/cli with-warehouse.ts).
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type ClickHouse, createClickHouse, embeddedQueryAbandoned } from '../src/index.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-abandoned-'));
const database = `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
let ch: ClickHouse | undefined;

afterAll(async () => {
  await ch?.close();
});

describe('an embedded call that timed out', () => {
  it('is an abandoned query until the engine has finished it, then no longer', async () => {
    ch = await createClickHouse({ mode: 'embedded', path, database, timeoutMs: 200 });
    await ch.select('SELECT 1 AS one');
    expect(embeddedQueryAbandoned()).toBe(false);
    // Seconds of work on a loaded machine; the call gives up after 200 ms.
    const started = Date.now();
    const error = await ch
      .select('SELECT sum(sipHash64(number)) AS s FROM numbers(100000000) SETTINGS max_threads = 1')
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(String(error)).toMatch(/timed out after 200 ms/);
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(embeddedQueryAbandoned()).toBe(true);
    // Cleared once the engine is done with it: a later exit waits for nothing.
    const deadline = Date.now() + 120_000;
    while (embeddedQueryAbandoned() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    expect(embeddedQueryAbandoned()).toBe(false);
  }, 150_000);
});
