import { existsSync, readFileSync, rmSync } from 'node:fs';
import { dirname } from 'node:path';
import { describe, expect, inject, it, onTestFinished } from 'vitest';
import { runDemo } from '../src/index.js';

const stack = inject('stack');

// The whole loop on the real stack, CPU training on small data, served by the model-server: the
// first version is trained on the rules' labelled history; traffic drifts; drift alerts fire;
// exactly one retrain request despite many drifted windows (cooldown); the trainer's version goes
// to shadow, the controller takes it through canary to production on paired live labels; live
// AUC recovers and later windows are measured against the new reference. The bad-candidate
// scenario (the harder one, so the one tested) also sends an inverted model into shadow before the
// drift, which must be rejected and never answer a request.
describe('end to end: serve → drift → retrain → shadow → canary → production', () => {
  it('tells the demo story, measured by the pipeline itself', { timeout: 600_000 }, async () => {
    const lines: string[] = [];
    const result = await runDemo({
      endpoints: stack,
      say: (l) => lines.push(l),
      speed: 40,
      rate: 30,
      scenario: 'bad-candidate',
    });
    const { summary, driftAtWindow, promotedAtWindow, windows, firstVersion } = result;
    // Every `make test` ran one of these: the run folder (report, model cards, models) goes after the checks.
    onTestFinished(() => rmSync(dirname(summary.report), { recursive: true, force: true }));
    const features = (w: { drifted: string[] }) => w.drifted.filter((f) => !f.startsWith('__'));

    // Before the drift: measured against the first version, nothing drifted.
    const before = windows.filter(
      (w) => w.windowIndex >= 0 && w.windowIndex < driftAtWindow && w.version === firstVersion,
    );
    expect(before.length).toBeGreaterThanOrEqual(driftAtWindow - 2);
    for (const w of before) expect(w.drifted, `window ${w.windowIndex}`).toEqual([]);

    // After the drift and before the swap: the shifted features drift.
    const after = windows.filter((w) => w.windowIndex >= driftAtWindow && w.version === firstVersion);
    expect(after.length).toBeGreaterThanOrEqual(2);
    for (const w of after)
      expect(features(w), `window ${w.windowIndex}`).toEqual(expect.arrayContaining(['amount', 'country']));

    // One retrain request from the trigger; the first version and the retrained one.
    expect(summary.drifted_windows).toBeGreaterThan(2);
    expect(summary.retrain_requests).toBe(1);
    expect(summary.model_versions).toBe(2);
    expect(promotedAtWindow).toBeDefined();
    expect(summary.serving_version).not.toBe(firstVersion);

    // The version timeline: the retrained version went shadow → canary → production, decided on
    // evidence; the first version retired after the rollback watch, or still watched.
    const of = (v: string) => summary.stages.filter((s) => s.version === v).map((s) => s.to);
    expect(of(summary.serving_version)).toEqual(
      expect.arrayContaining(['candidate', 'shadow', 'canary', 'production']),
    );
    const promotion = summary.stages.find((s) => s.version === summary.serving_version && s.to === 'canary');
    expect(promotion?.decided_by).toBe('policy:promotion');
    // The bad candidate was rejected in shadow and never answered.
    expect(summary.rejected).toEqual([`${firstVersion}-inverted`]);
    expect(of(`${firstVersion}-inverted`)).not.toContain('canary');
    expect(summary.rollbacks).toBe(0);

    // Live ROC AUC: good before the drift, degraded during it, recovered after the promotion.
    const auc = summary.live_auc;
    expect(auc.before_drift).toBeGreaterThan(0.7);
    expect(auc.during_drift).toBeLessThan(auc.before_drift! - 0.05);
    expect(auc.after_promotion).toBeGreaterThan(auc.during_drift! + 0.05);

    // Windows measured against the promoted version's reference: features and predictions settle.
    const swapped = windows.filter((w) => w.version === summary.serving_version && w.measured.length >= 5);
    expect(swapped.length).toBeGreaterThanOrEqual(2);
    for (const w of swapped.slice(1)) expect(w.drifted, `window ${w.windowIndex} vs ${w.version}`).toEqual([]);

    // The report (with the version timeline and model cards) was written; the output is human lines.
    expect(existsSync(summary.report)).toBe(true);
    const html = readFileSync(summary.report, 'utf8');
    expect(html).toContain('<svg');
    expect(html).toContain('stage PRODUCTION');
    expect(summary.events['predictions.v1']).toBeGreaterThan(0);
    expect(lines.some((l) => l.includes('reached production on live evidence'))).toBe(true);
    for (const l of lines) expect(l.startsWith('{'), l).toBe(false);
  });
});
