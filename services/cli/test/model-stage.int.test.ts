import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { uniqueName } from '@driftline/test-support';
import { createClickHouse, migrate, migrations, type Warehouse, warehouseOn } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { modelCommand, modelOptions, modelUsage } from '../src/commands/model.js';

const work = mkdtempSync(join(tmpdir(), 'driftline-model-stage-'));
const database = uniqueName('stage').replaceAll('-', '_');
const T0 = Date.UTC(2026, 0, 1);
let warehouse: Warehouse;

beforeAll(async () => {
  process.env.DRIFTLINE_CLICKHOUSE_PATH = join(work, 'chdb');
  process.env.DRIFTLINE_CLICKHOUSE_DATABASE = database;
  delete process.env.DRIFTLINE_CLICKHOUSE_URL;
  const ch = await createClickHouse({ mode: 'embedded', path: join(work, 'chdb'), database });
  await migrate(ch, migrations);
  warehouse = warehouseOn(ch);
  const gate = {
    model: 'fraud',
    version: 'v2',
    at: T0,
    decided_by: 'trainer:offline_gate',
    detail: '',
    evidence: '',
    canary_share: null,
    recorded_at: T0,
  };
  await warehouse.transitions.record([
    { ...gate, from_stage: null, to_stage: 'candidate', reason: 'trained', previous_version: null },
    { ...gate, from_stage: 'candidate', to_stage: 'shadow', reason: 'offline_gate', previous_version: 'v1' },
  ]);
});

afterAll(async () => {
  await warehouse?.close();
});

describe('driftline model stage', () => {
  it('--help lists every option', async () => {
    for (const option of Object.keys(modelOptions)) expect(modelUsage).toContain(`--${option}`);
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(await modelCommand(['stage', '--help'])).toBe(0);
    } finally {
      out.mockRestore();
    }
  });

  it('records an operator transition checked against the stage graph; a bad one names the stages or the option', async () => {
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(
        await modelCommand([
          'stage',
          '--model',
          'fraud',
          '--version',
          'v2',
          '--to',
          'canary',
          '--share',
          '0.3',
          '--by',
          'alice',
          '--reason',
          'looks good',
        ]),
      ).toBe(0);
      expect(String(out.mock.calls.at(-1)?.[0])).toMatch(/^recorded fraud v2: shadow → canary \(operator:alice\)/);
    } finally {
      out.mockRestore();
    }
    const row = (await warehouse.transitions.history('fraud', 'v2')).at(-1);
    expect(row).toMatchObject({
      from_stage: 'shadow',
      to_stage: 'canary',
      decided_by: 'operator:alice',
      reason: 'looks good',
      canary_share: 0.3,
      previous_version: 'v1',
    });
    await expect(
      modelCommand(['stage', '--model', 'fraud', '--version', 'v2', '--to', 'retired', '--by', 'alice']),
    ).rejects.toThrow(/no transition canary → retired \(allowed: production, rolled_back, rejected\)/);
    await expect(modelCommand(['stage', '--model', 'fraud', '--version', 'v2', '--to', 'live'])).rejects.toThrow(
      /^--to: must be one of/,
    );
    await expect(modelCommand(['stage', '--model', 'fraud', '--to', 'canary'])).rejects.toThrow(
      /^--version: is required/,
    );
    await expect(
      modelCommand(['stage', '--model', 'fraud', '--version', 'v2', '--to', 'production', '--share', '2']),
    ).rejects.toThrow(/^--share:/);
  });
});
