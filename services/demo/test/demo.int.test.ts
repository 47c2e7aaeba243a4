import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, inject, it } from 'vitest';
import { runDemo } from '../src/index.js';

const stack = inject('stack');

// The whole loop on the real stack, CPU training on small data: traffic drifts, drift alerts fire,
// exactly one retrain request despite many drifted windows (cooldown), the trainer trains and
// promotes a version, and later windows are measured against the new reference.
describe('end to end: drift → retrain → promotion → new reference', () => {
  it('tells the demo story, measured by the pipeline itself', { timeout: 420_000 }, async () => {
    const lines: string[] = [];
    const result = await runDemo({ endpoints: stack, say: (l) => lines.push(l), speed: 40, rate: 30 });
    const { summary, driftAtWindow, promotedAtWindow, windows } = result;
    const features = (w: { drifted: string[] }) => w.drifted.filter((f) => f !== '__prediction__');

    // Before the drift: measured against v1, nothing drifted.
    const before = windows.filter((w) => w.windowIndex < driftAtWindow);
    expect(before.length).toBeGreaterThanOrEqual(driftAtWindow - 1);
    for (const w of before) expect(w.drifted, `window ${w.windowIndex}`).toEqual([]);

    // After the drift and before the swap: the shifted features drift in every window.
    const after = windows.filter((w) => w.windowIndex >= driftAtWindow && w.version === 'v1');
    expect(after.length).toBeGreaterThanOrEqual(2);
    for (const w of after)
      expect(features(w), `window ${w.windowIndex}`).toEqual(expect.arrayContaining(['amount', 'country']));

    // Many drifted windows, one retrain request, one promoted version.
    expect(summary.drifted_windows).toBeGreaterThan(2);
    expect(summary.retrain_requests).toBe(1);
    expect(summary.model_versions).toBe(1);
    expect(promotedAtWindow).toBeDefined();
    expect(summary.serving_version).not.toBe('v1');

    // Windows measured against the promoted version's reference: the features no longer drift.
    const swapped = windows.filter((w) => w.version === summary.serving_version && w.measured.length >= 5);
    expect(swapped.length).toBeGreaterThanOrEqual(2);
    for (const w of swapped.slice(1)) expect(features(w), `window ${w.windowIndex} vs ${w.version}`).toEqual([]);

    // The report was written and the summary counts what went through Kafka.
    expect(existsSync(summary.report)).toBe(true);
    expect(readFileSync(summary.report, 'utf8')).toContain('<svg');
    expect(summary.events['predictions.v1']).toBeGreaterThan(0);
    expect(lines.some((l) => l.includes('PROMOTED'))).toBe(true);
  });
});
