// The short form of `make chaos` inside `make test`: 40 s of traffic with every fault kind. It runs
// on a stack of its own (it restarts Kafka, the registry and Redis), not on the shared test stack.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stackDown, stackUp } from '@driftline/stack';
import { afterAll, describe, expect, it } from 'vitest';
import { runChaos } from '../src/run.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const stackDir = mkdtempSync(join(tmpdir(), 'driftline-chaos-stack-'));
const runDir = mkdtempSync(join(tmpdir(), 'driftline-chaos-run-'));

describe('chaos run (short form)', () => {
  let passed = false;
  afterAll(async () => {
    await stackDown({ stateDir: stackDir });
    rmSync(stackDir, { recursive: true, force: true });
    // The services' logs stay for a look when the run failed.
    if (passed) rmSync(runDir, { recursive: true, force: true });
  }, 60_000);

  it('keeps every invariant through kills, outages and hostile records', async () => {
    const { endpoints } = await stackUp({ stateDir: stackDir, durableRedis: true });
    const report = await runChaos({
      endpoints,
      stackDir,
      runDir,
      // The current sources, not a possibly stale bundle.
      launcher: {
        command: process.execPath,
        args: ['--conditions=source', '--import', 'tsx', join(root, 'services/cli/src/main.ts')],
      },
      durationMs: 40_000,
      rate: 30,
      seed: 11,
      log: () => {},
    });
    const summary = report.summary as { lost: number; duplicated: number; dlq_expected: number; dlq_actual: number };
    expect(report.failures, `logs in ${String(report.summary.logs)}`).toEqual([]);
    expect(summary.lost).toBe(0);
    expect(summary.duplicated).toBe(0);
    expect(summary.dlq_actual).toBe(summary.dlq_expected);
    expect(summary.dlq_expected).toBeGreaterThan(0);
    expect(report.summary.kills_by_service_kind).toEqual({
      'feature-materializer': 3,
      'feature-api': 3,
      'warehouse-host': 3,
    });
    expect(report.ok).toBe(true);
    passed = true;
  }, 600_000);
});
