import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { type AlertDeliveryRow, chTime, createClickHouse, migrate, migrations, warehouseOn } from '../src/index.js';
import { testClickHouse } from './fixtures/clickhouse.js';

const path = mkdtempSync(join(tmpdir(), 'driftline-ch-deliveries-'));

const row = (receiver: string, status: AlertDeliveryRow['status'], alertIds: string[]): AlertDeliveryRow => ({
  delivery_id: `${receiver}-${alertIds.join()}`,
  receiver,
  alert_ids: alertIds,
  group_key: 'fraud/FEATURE_DRIFT/0',
  model: 'fraud',
  kind: 'FEATURE_DRIFT',
  severity: 'warning',
  status,
  attempts: 1,
  http_status: status === 'delivered' ? 200 : 404,
  latency_ms: 3,
  error: '',
  first_attempt_at: chTime(Date.now()),
  finished_at: chTime(Date.now()),
});

describe('alert_deliveries: receiversWithDeliveries', () => {
  it('names the receivers with any row, delivered or failed, among those asked', async () => {
    const ch = await createClickHouse(testClickHouse(path, `t_${randomUUID().replaceAll('-', '').slice(0, 12)}`));
    await migrate(ch, migrations);
    const store = warehouseOn(ch).alertDeliveries;
    await store.write([
      row('pager', 'delivered', ['a1', 'a2']),
      row('pager', 'delivered', ['a3']),
      row("it's-failed", 'failed', ['a1']),
      row('not-asked', 'delivered', ['a1']),
    ]);
    const found = await store.receiversWithDeliveries(['pager', "it's-failed", 'renamed', 'pager']);
    expect([...found].sort()).toEqual(["it's-failed", 'pager']);
    expect(await store.receiversWithDeliveries(['renamed'])).toEqual(new Set());
    expect(await store.receiversWithDeliveries([])).toEqual(new Set());
    await ch.close();
  });
});
