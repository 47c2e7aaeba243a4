import type { AlertKind, DriftAlert } from '@driftline/schemas';
import { SeededRandom } from '@driftline/test-support/random';
import { describe, expect, it } from 'vitest';
import { decide, MAX_DATA_QUALITY_SPANS, type ModelState, parsePolicy } from '../src/index.js';

// The data-quality veto's spans at MAX_DATA_QUALITY_SPANS, by simulation (found by the review of
// the merge): random worlds of 1-minute DATA_QUALITY windows, routine ones in some minutes and one
// real outage, with the label-joiner's hourly PERFORMANCE alerts days late. Every hour is
// degraded and the cooldown is one window, so an hour the spans no longer cover (at least half)
// joins a run that fires at once: any dilution of the outage shows as a fire on its hour.

const M = 60_000;
const H = 3_600_000;
const START = Date.UTC(2026, 11, 1);
const policy = parsePolicy({
  defaults: { sustain: 3, cooldown: '1h', late_horizon: '1d' },
  models: { fraud: { signals: { share_drifted: 0.3, performance: [{ metric: 'roc_auc', below: 0.7 }] } } },
});

function alert(id: string, kind: AlertKind, start: number, end: number, over: Partial<DriftAlert> = {}): DriftAlert {
  return {
    alert_id: id,
    kind,
    model: 'fraud',
    model_version: 'v1',
    feature: null,
    window_start: start,
    window_end: end,
    event_time: end,
    method: 'missing_share',
    statistic: 1,
    p_value: null,
    threshold: 0.2,
    share_drifted: null,
    evidence: '{}',
    ...over,
  };
}

interface World {
  /** Labels come this many hours after their hour ends. */
  readonly lagHours: number;
  /** Per minute: whether it has a DATA_QUALITY alert. */
  readonly broken: Uint8Array;
  /** The hours the outage alone covers at least half of. */
  readonly outageHours: readonly number[];
  /** The hours whose PERFORMANCE alert is decided (0, 1, …). */
  readonly hours: number;
}

/**
 * Routine DATA_QUALITY in each minute with probability `routine`; an outage of `outage` minutes
 * starting in the first half of an hour between hours 6 and 12 (so it covers at least half of one
 * hour itself); labels `lagDays` days late; the world ends with the hour 4 after the outage's.
 */
function world(rng: SeededRandom, outage: number, routine: number, lagDays: number): World {
  const lagHours = 24 * lagDays;
  const from = (6 + rng.int(6)) * 60 + rng.int(31);
  const hours = Math.floor((from + outage) / 60) + 4;
  const broken = new Uint8Array((hours + lagHours + 1) * 60);
  for (let i = 0; i < broken.length; i++) broken[i] = rng.uniform() < routine ? 1 : 0;
  broken.fill(1, from, from + outage);
  const outageHours: number[] = [];
  for (let h = Math.floor(from / 60); h * 60 < from + outage; h++) {
    if (2 * (Math.min(from + outage, (h + 1) * 60) - Math.max(from, h * 60)) >= 60) outageHours.push(h);
  }
  return { lagHours, broken, outageHours, hours };
}

interface Outcome {
  readonly hour: number;
  readonly kind: string;
  /** A fire's run (hours). */
  readonly run: readonly number[];
}

/** The world through `decide`, minute by minute: the PERFORMANCE decisions and the most spans held. */
function play(w: World): { decisions: Outcome[]; spans: number } {
  // A first, good PERFORMANCE alert: the performance family's horizon keeps the spans for the labels.
  const first = START - (w.lagHours + 2) * H;
  let state: ModelState = decide(
    policy,
    undefined,
    alert('p-first', 'PERFORMANCE', first, first + H, { method: 'roc_auc', statistic: 0.9 }),
  ).state;
  const decisions: Outcome[] = [];
  let spans = 0;
  for (let i = 0; i < w.broken.length; i++) {
    const at = START + i * M;
    if (w.broken[i] === 1) state = decide(policy, state, alert(`dq-${i}`, 'DATA_QUALITY', at, at + M)).state;
    spans = Math.max(spans, state.dataQuality?.length ?? 0);
    const hour = (i + 1) / 60 - w.lagHours - 1; // the hour whose labels are in
    if ((i + 1) % 60 !== 0 || hour < 0) continue;
    const r = decide(
      policy,
      state,
      alert(`p-${hour}`, 'PERFORMANCE', START + hour * H, START + (hour + 1) * H, {
        method: 'roc_auc',
        statistic: 0.55,
      }),
    );
    state = r.state;
    const d = r.decision;
    decisions.push({
      hour,
      kind: d.kind === 'fire' ? 'fire' : d.reason,
      run: d.kind === 'fire' ? d.plan.evidence.windows.map((x) => (x.start - START) / H) : [],
    });
  }
  return { decisions, spans };
}

/**
 * The same PERFORMANCE decisions with no cap on the spans: each hour's coverage counted exactly
 * from the broken minutes. Every hour is degraded and the cooldown is one window, so a run is the
 * hours since the last fire (within `late_horizon`), cut after the last one covered at least half.
 */
function exact(w: World): Outcome[] {
  const covered = (h: number) => w.broken.subarray(h * 60, (h + 1) * 60).reduce((n, b) => n + b, 0);
  const out: Outcome[] = [];
  let after = 0; // the first hour after the last fire
  for (let hour = 0; (hour + w.lagHours + 1) * 60 <= w.broken.length; hour++) {
    const run: number[] = [];
    for (let h = Math.max(after, hour - 24); h <= hour; h++) run.push(h);
    let cut = run.length - 1;
    while (cut >= 0 && 2 * covered(run[cut]!) < 60) cut--;
    const counted = run.slice(cut + 1);
    if (counted.length >= 3) {
      out.push({ hour, kind: 'fire', run: counted });
      after = hour + 1;
    } else {
      out.push({ hour, kind: cut >= 0 ? 'data_quality' : 'sustaining', run: [] });
    }
  }
  return out;
}

// ~4 s on an idle 2-core machine (about 90,000 decisions), 21 s seen under load: a limit for a hang.
describe('DATA_QUALITY spans at MAX_DATA_QUALITY_SPANS, by simulation (found by the review of the merge)', {
  timeout: 120_000,
}, () => {
  it('an outage of 35, 45 or 60 minutes among routine DATA_QUALITY holds its late PERFORMANCE run in every world with the spans full', () => {
    // Before, the two spans with the smallest gap merged: the outage took in the routine spans
    // around it until it was under half covered, and its hour's run fired (here 4 of the 24
    // worlds, all 4 with the 45-minute outage among their 8, and 5 of 24 decided otherwise than
    // with no cap; the review's own worlds: 1 of 8 with 35 minutes). Now the merge that misstates
    // coverage least: the outage stays dense, and every decision equals the one with no cap.
    const rng = new SeededRandom(20261206);
    const unheld: string[] = [];
    const differing: string[] = [];
    for (const outage of [35, 45, 60]) {
      for (let i = 0; i < 8; i++) {
        const routine = 0.1 + 0.2 * rng.uniform();
        const w = world(rng, outage, routine, 10 + rng.int(5));
        const { decisions, spans } = play(w);
        const name = `${outage} min, routine ${routine.toFixed(2)}, hours ${w.outageHours.join(',')}`;
        expect(spans, name).toBe(MAX_DATA_QUALITY_SPANS);
        expect(w.outageHours.length, name).toBeGreaterThan(0);
        const held = w.outageHours.every((h) => decisions[h]!.kind === 'data_quality');
        const fire = decisions.find((d) => d.kind === 'fire' && d.run.some((h) => w.outageHours.includes(h)));
        if (!held || fire !== undefined)
          unheld.push(`${name}: ${fire === undefined ? 'not held' : `fired at ${fire.hour}`}`);
        if (JSON.stringify(decisions) !== JSON.stringify(exact(w))) differing.push(name);
      }
    }
    expect(unheld).toEqual([]);
    expect(differing).toEqual([]);
  });

  it('below the cap every decision equals the one with no cap, the outage held', () => {
    // No merge happens below the cap, so this holds by either rule: it keeps one from merging
    // early, and checks the no-cap reference (`exact`) against `decide` itself.
    const rng = new SeededRandom(61202026);
    for (const outage of [35, 45, 60]) {
      for (let i = 0; i < 4; i++) {
        const routine = 0.01 + 0.04 * rng.uniform();
        const w = world(rng, outage, routine, 2);
        const { decisions, spans } = play(w);
        const name = `${outage} min, routine ${routine.toFixed(3)}`;
        expect(spans, name).toBeLessThan(MAX_DATA_QUALITY_SPANS);
        expect(decisions, name).toEqual(exact(w));
        for (const h of w.outageHours) expect(decisions[h]!.kind, name).toBe('data_quality');
      }
    }
  });
});
