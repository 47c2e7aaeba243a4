// The short form of `make chaos` inside `make test`: 40 s of traffic with every fault kind. It runs
// on a stack of its own (it restarts Kafka, the registry and Redis), not on the shared test stack.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freshBundle } from '@driftline/cli/fresh-bundle';
import { stackDown, stackUp } from '@driftline/stack';
import { afterAll, describe, expect, it } from 'vitest';
import { runChaos } from '../src/run.js';

const stackDir = mkdtempSync(join(tmpdir(), 'driftline-chaos-stack-'));
const runDir = mkdtempSync(join(tmpdir(), 'driftline-chaos-run-'));
// 11 unless CHAOS_SEED names another (as `make chaos` takes it): a failure names its seed to replay.
const SEED = process.env.CHAOS_SEED === undefined ? 11 : Number(process.env.CHAOS_SEED);
if (!Number.isSafeInteger(SEED)) throw new Error(`CHAOS_SEED must be an integer, got ${process.env.CHAOS_SEED}`);

describe('chaos run (short form)', () => {
  let passed = false;
  let removeBundle = async () => {};
  afterAll(async () => {
    await removeBundle();
    await stackDown({ stateDir: stackDir });
    rmSync(stackDir, { recursive: true, force: true });
    // The services' logs stay for a look when the run failed.
    if (passed) rmSync(runDir, { recursive: true, force: true });
  }, 60_000);

  it('keeps every invariant through kills, outages and hostile records', async () => {
    const began = Date.now();
    // A bundle of the current sources, built now: nine processes and fifteen restarts start in a
    // fraction of the CPU time tsx would spend compiling the sources in each.
    const [{ endpoints }, bundle] = await Promise.all([
      stackUp({ stateDir: stackDir, durableRedis: true }),
      freshBundle('chaos'),
    ]);
    removeBundle = bundle.remove;
    const report = await runChaos({
      endpoints,
      stackDir,
      runDir,
      launcher: { command: process.execPath, args: [bundle.main] },
      durationMs: 40_000,
      rate: 30,
      seed: SEED,
      log:
        process.env.CHAOS_VERBOSE === '1'
          ? (l) => process.stderr.write(`[chaos +${((Date.now() - began) / 1000).toFixed(0)}s] ${l}\n`)
          : () => {},
    });
    process.stderr.write(`[chaos] ${JSON.stringify(report.summary)}\n`);
    const summary = report.summary as { lost: number; duplicated: number; dlq_expected: number; dlq_actual: number };
    expect(report.failures, `seed ${SEED}, logs in ${String(report.summary.logs)}`).toEqual([]);
    expect(summary.lost).toBe(0);
    expect(summary.duplicated).toBe(0);
    expect(summary.dlq_actual).toBe(summary.dlq_expected);
    expect(summary.dlq_expected).toBeGreaterThan(0);
    expect(report.summary.kills_by_service_kind).toEqual({
      'feature-materializer': 3,
      'feature-api': 3,
      'label-joiner': 3,
      'drift-monitor': 3,
      'retrain-trigger': 3,
    });
    expect(report.summary.faults_injected).toMatchObject({ 'kill:clickhouse': 1 });
    expect(report.summary.drift_statistics_compared).toBeGreaterThan(0);
    expect(report.ok).toBe(true);
    passed = true;
  }, 600_000);
});
