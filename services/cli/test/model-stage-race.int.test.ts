import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { viewOf } from '@driftline/policy';
import { uniqueName } from '@driftline/test-support';
import {
  createClickHouse,
  migrate,
  migrations,
  type TransitionRow,
  type Warehouse,
  warehouseOn,
} from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { modelCommand } from '../src/commands/model.js';
import { describeError, EXIT } from '../src/describe-error.js';

/**
 * `driftline model stage --to rolled_back` while a model-controller records a promotion of the same
 * canary, on the embedded ClickHouse. The controller's row lands while the command reads the model's
 * clock (seconds at 12M rows); the hook below writes it there, at that moment, every time.
 * Before: the command wrote canary → rolled_back checked and dated on its first read; the
 * promotion, dated later (event time 20 min ahead of the wall clock), stood: v2 in production and
 * the rollback undone (found by a review).
 */
const during = vi.hoisted(() => ({ clockRead: undefined as (() => Promise<void>) | undefined }));

vi.mock('@driftline/warehouse', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@driftline/warehouse')>();
  return {
    ...actual,
    openWarehouse: async (...args: Parameters<typeof actual.openWarehouse>) => {
      const opened = await actual.openWarehouse(...args);
      const predictions = opened.predictions;
      const read = predictions.labelClock.bind(predictions);
      Object.assign(predictions, {
        labelClock: async (...a: Parameters<typeof read>) => {
          const clock = await read(...a);
          await during.clockRead?.();
          return clock;
        },
      });
      return opened;
    },
  };
});

const work = mkdtempSync(join(tmpdir(), 'driftline-model-stage-race-'));
const database = uniqueName('stagerace').replaceAll('-', '_');
let warehouse: Warehouse;

function row(
  version: string,
  from: TransitionRow['from_stage'],
  to: TransitionRow['to_stage'],
  at: number,
  previous: string | null,
): TransitionRow {
  return {
    model: 'fraud',
    version,
    from_stage: from,
    to_stage: to,
    at,
    decided_by: 'trainer:offline_gate',
    reason: 'offline_gate',
    detail: '',
    evidence: '',
    canary_share: null,
    previous_version: previous,
    recorded_at: at,
  };
}

beforeAll(async () => {
  process.env.DRIFTLINE_CLICKHOUSE_PATH = join(work, 'chdb');
  process.env.DRIFTLINE_CLICKHOUSE_DATABASE = database;
  delete process.env.DRIFTLINE_CLICKHOUSE_URL;
  const ch = await createClickHouse({ mode: 'embedded', path: join(work, 'chdb'), database });
  await migrate(ch, migrations);
  warehouse = warehouseOn(ch);
});

afterAll(async () => {
  await warehouse?.close();
});

describe('driftline model stage racing a model-controller decision', () => {
  it("a rollback of a canary the controller promotes meanwhile rolls back the new production: the operator's move stands", async () => {
    const now = Date.now();
    const E = now + 20 * 60_000; // event time 20 min ahead of the wall clock (within the allowed future)
    await warehouse.transitions.record([
      row('v1', null, 'candidate', E - 900_000, null),
      row('v1', 'candidate', 'shadow', E - 900_000, null),
      row('v1', 'shadow', 'canary', E - 800_000, null),
      row('v1', 'canary', 'production', E - 700_000, null),
      row('v2', null, 'candidate', E - 600_000, null),
      row('v2', 'candidate', 'shadow', E - 600_000, 'v1'),
      row('v2', 'shadow', 'canary', E - 500_000, 'v1'),
    ]);
    during.clockRead = async () => {
      during.clockRead = undefined;
      await warehouse.transitions.record([
        { ...row('v2', 'canary', 'production', E - 400_000, 'v1'), decided_by: 'policy:promotion', reason: 'evidence' },
      ]);
    };
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      expect(
        await modelCommand(['stage', '--model', 'fraud', '--version', 'v2', '--to', 'rolled_back', '--by', 'alice']),
      ).toBe(0);
      expect(String(out.mock.calls.at(-1)?.[0])).toMatch(
        /^recorded fraud v2: production → rolled_back \(operator:alice\)/,
      );
    } finally {
      out.mockRestore();
    }
    expect(during.clockRead).toBeUndefined(); // the controller's row did land during the command
    const history = await warehouse.transitions.history('fraud');
    const rollback = history.find((r) => r.version === 'v2' && r.to_stage === 'rolled_back');
    expect(rollback).toMatchObject({ from_stage: 'production', decided_by: 'operator:alice', previous_version: 'v1' });
    expect(rollback?.at).toBeGreaterThan(E - 400_000);
    const view = viewOf(history);
    expect(view.production).toBe('v1');
    expect(view.versions.get('v2')?.stage).toBe('rolled_back');
  });

  it('a rollback of a canary the controller rolls back meanwhile: done, one line naming who (exit 0, nothing recorded)', async () => {
    const now = Date.now();
    const E = now + 20 * 60_000;
    const churn = (r: TransitionRow): TransitionRow => ({ ...r, model: 'churn' });
    await warehouse.transitions.record(
      [
        row('v1', null, 'candidate', E - 900_000, null),
        row('v1', 'candidate', 'shadow', E - 900_000, null),
        row('v1', 'shadow', 'canary', E - 800_000, null),
        row('v1', 'canary', 'production', E - 700_000, null),
        row('v2', null, 'candidate', E - 600_000, null),
        row('v2', 'candidate', 'shadow', E - 600_000, 'v1'),
        row('v2', 'shadow', 'canary', E - 500_000, 'v1'),
      ].map(churn),
    );
    during.clockRead = async () => {
      during.clockRead = undefined;
      await warehouse.transitions.record([
        churn({
          ...row('v2', 'canary', 'rolled_back', E - 400_000, 'v1'),
          decided_by: 'policy:promotion',
          reason: 'evidence',
        }),
      ]);
    };
    const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    let code: number;
    try {
      // Before: a usage error, exit 2, "no transition rolled_back → rolled_back".
      code = await modelCommand([
        'stage',
        '--model',
        'churn',
        '--version',
        'v2',
        '--to',
        'rolled_back',
        '--by',
        'alice',
      ]);
      expect(String(out.mock.calls.at(-1)?.[0])).toMatch(
        /^churn v2 already rolled_back \(by policy:promotion\), recorded while this command ran: nothing recorded\n$/,
      );
    } finally {
      out.mockRestore();
    }
    expect(code).toBe(0);
    expect(during.clockRead).toBeUndefined();
    const history = await warehouse.transitions.history('churn');
    expect(history.filter((r) => r.decided_by === 'operator:alice')).toEqual([]);
    expect(viewOf(history).versions.get('v2')?.stage).toBe('rolled_back');
  });

  it('--to canary --share 0.5 while the controller moves it to canary at 0.1: one line naming both shares, exit 2, nothing recorded; at the same share: done (found by a regression review: "already canary", exit 0)', async () => {
    const now = Date.now();
    const E = now + 20 * 60_000;
    const stage = async (model: string, share: string) => {
      const m = (r: TransitionRow): TransitionRow => ({ ...r, model });
      await warehouse.transitions.record(
        [
          row('v1', null, 'candidate', E - 900_000, null),
          row('v1', 'candidate', 'shadow', E - 900_000, null),
          row('v1', 'shadow', 'canary', E - 800_000, null),
          row('v1', 'canary', 'production', E - 700_000, null),
          row('v2', null, 'candidate', E - 600_000, null),
          row('v2', 'candidate', 'shadow', E - 600_000, 'v1'),
        ].map(m),
      );
      during.clockRead = async () => {
        during.clockRead = undefined;
        await warehouse.transitions.record([
          m({
            ...row('v2', 'shadow', 'canary', E - 400_000, 'v1'),
            decided_by: 'policy:promotion',
            reason: 'evidence',
            canary_share: 0.1,
          }),
        ]);
      };
      const out = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
      try {
        const args = [
          'stage',
          '--model',
          model,
          '--version',
          'v2',
          '--to',
          'canary',
          '--share',
          share,
          '--by',
          'alice',
        ];
        const code = await modelCommand(args);
        return { code, line: String(out.mock.calls.at(-1)?.[0]) };
      } catch (error) {
        return describeError(error, 'driftline model --help');
      } finally {
        out.mockRestore();
        expect(during.clockRead).toBeUndefined();
        const history = await warehouse.transitions.history(model);
        expect(history.filter((r) => r.decided_by === 'operator:alice')).toEqual([]);
      }
    };
    const other = await stage('share', '0.5');
    expect(other.code).toBe(EXIT.usage);
    expect(other.line).toMatch(
      /^--share: share v2 became canary at share 0\.1 \(by policy:promotion\) while this command ran, not at the 0\.5 asked: nothing recorded/,
    );
    expect(await stage('same', '0.1')).toEqual({
      code: 0,
      line: 'same v2 already canary (by policy:promotion), recorded while this command ran: nothing recorded\n',
    });
  });
});
