import { silentLogger } from '@driftline/core';
import { createMetricsRegistry } from '@driftline/observability';
import { parseRolloutPolicy, usableTransitions, viewOf } from '@driftline/policy';
import type { ModelEvent } from '@driftline/schemas';
import { SeededRandom } from '@driftline/test-support/random';
import type { TransitionRow } from '@driftline/warehouse';
import { ModelController, type PairReader } from '../src/controller.js';
import { type LabelledRow, labelledTable, MemoryTransitions } from './memory-warehouse.js';

/**
 * A small world of one model, for the model check of the controller's time semantics: the wall
 * clock (ticks, `recorded_at`, the controller's `now`), event time (an offset and a rate from the
 * wall clock: the same, ahead, a month behind as in a replay, 40× as in `make demo`), requests
 * answered by the versions the servers serve (they switch only once a transition is published, and
 * then after a lag; a version that never loads as canary or as production), labels arriving after
 * a delay, outages of the controller or of the label-joiner (a backlog), a minority producer
 * whose clock runs ahead, controller restarts (a new process: state only from the recorded
 * transitions and the warehouse rows). It drives the REAL ModelController over the in-memory reads
 * (memory-warehouse.ts) and reports what breaks an invariant (see {@link runWorld}).
 */

const MIN = 60_000;
const HOUR = 60 * MIN;
const DAY = 24 * HOUR;
const T0 = Date.UTC(2026, 0, 1);
/** Event time one tick covers. */
const STEP = 10 * MIN;
const MAX_TIME = 4 * HOUR;
const REQUESTS_PER_TICK = 10;
const CANARY_SHARE = 0.5;
const MAX_FUTURE = 2 * DAY;
/** The minority producer's skew (within the allowed future): one request in five. */
const AHEAD = 50 * MIN;

export type Clock = 'same' | 'ahead' | 'behind' | 'fast';
export type Outage = 'none' | 'controller' | 'joiner';
export type Broken = 'none' | 'canary' | 'production';

export interface WorldSpec {
  readonly clock: Clock;
  /** Label delay, event time. */
  readonly labelDelay: number;
  /** A stretch of ticks with no controller tick, or no row reaching the warehouse (then all at once). */
  readonly outage: Outage;
  /** The tick the outage begins (it lasts OUTAGE_TICKS: longer than max_time). */
  readonly outageAt: number;
  /** Whether v2 never loads in that stage (the servers keep what they served). */
  readonly broken: Broken;
  /** Ticks between a transition's publish and the servers applying it. */
  readonly lag: number;
  /** One request in five from a producer whose clock runs AHEAD. */
  readonly producerAhead: boolean;
  /** v2's quality (v1's is 0.3). */
  readonly quality: number;
  readonly seed: number;
  readonly ticks: number;
  /**
   * What v2's candidate and shadow records are dated by: event time (the default), or the wall
   * clock of the tick it is registered at, as the trainer dated them (its `registered_at`) before
   * it read the model's clock: a month ahead of event time in the `behind` clock, hours behind it
   * in the `fast` one once ticks have passed.
   */
  readonly registeredOn?: 'event' | 'wall';
  /** The tick v2 is registered at (default 0: before the first); until then only v1 serves and scores. */
  readonly registerAt?: number;
}

const OUTAGE_TICKS = 30; // 5 h of event time: more than max_time

export const invariants = [
  /** A comparison read rows other than its stage's own (canary: its answers as canary; watch: production's). */
  'rows_not_about_stage',
  /** A fresh controller over the same recorded transitions and rows, at the same wall time, decided otherwise. */
  'replay_differs',
  /** On the same clock, the rows whose (true) label time is at or before its `at` do not decide it. */
  'dated_before_label',
  /**
   * A canary or production that served was rolled back, or a shadow that was scored rejected, for
   * lack of evidence before max_time of its own serving (scoring).
   */
  'untested_end',
  /** v2's last stage (shadow, canary, or production with its watch open) left undecided long after it could decide. */
  'undecided',
  /** A version that never loads was not rolled back within a bounded event time while traffic flowed. */
  'never_loaded_kept',
  /** Rows dated ahead by a minority producer ended a comparison on max_time that their true times would not have. */
  'ended_by_rows_ahead',
] as const;
export type Invariant = (typeof invariants)[number];

export interface Finding {
  readonly invariant: Invariant;
  readonly detail: string;
}

interface Row extends LabelledRow {
  /** The true event times (a producer ahead records later ones). */
  readonly truePrediction: number;
  readonly trueLabel: number;
  readonly ahead: boolean;
  /** The tick the row reaches the warehouse. */
  readonly arrives: number;
}

interface Decision {
  readonly row: TransitionRow;
  readonly tick: number;
  /** Rows in the warehouse when it was decided (a prefix: rows only arrive). */
  readonly rows: number;
  readonly history: readonly TransitionRow[];
}

// Pairs as they arrived (arrival_bucket: 0): the worlds' bounds do not count the wait for an
// arrival bucket to close (up to an hour of wall clock, 40 h of event time in the 40× worlds).
const policies = parseRolloutPolicy({
  defaults: {
    promotion: { min_labels: 20, max_time: MAX_TIME },
    rollback: { min_labels: 20, max_time: MAX_TIME },
    canary_share: CANARY_SHARE,
    arrival_bucket: 0,
  },
});

function clockOf(spec: WorldSpec): { offset: number; rate: number } {
  switch (spec.clock) {
    case 'same':
      return { offset: 0, rate: 1 };
    case 'ahead':
      return { offset: 20 * MIN, rate: 1 };
    case 'behind':
      return { offset: -30 * DAY, rate: 1 };
    case 'fast':
      return { offset: 0, rate: 40 };
  }
}

/** What the servers serve, from the models.v1 events applied so far. */
interface Servers {
  production: string;
  canary: string | undefined;
  scored: Set<string>;
}

function apply(servers: Servers, e: ModelEvent, broken: Broken): void {
  const gone = (v: string) => {
    servers.scored.delete(v);
    if (servers.canary === v) servers.canary = undefined;
  };
  switch (e.kind) {
    case 'SHADOW':
      servers.scored.add(e.version);
      return;
    case 'CANARY':
      if (broken === 'canary') {
        gone(e.version); // it never loads: nothing serves or scores it
        return;
      }
      servers.canary = e.version;
      servers.scored.add(e.version);
      return;
    case 'PROMOTED':
      servers.canary = servers.canary === e.version ? undefined : servers.canary;
      if (broken === 'production') {
        gone(e.version); // never loads: the old production serves on
        return;
      }
      servers.production = e.version;
      servers.scored.add(e.version);
      return;
    case 'ROLLED_BACK':
      if (servers.production === e.version && typeof e.previous_version === 'string') {
        servers.production = e.previous_version;
      }
      gone(e.version);
      return;
    case 'REJECTED':
    case 'RETIRED':
      if (servers.production !== e.version) gone(e.version);
      return;
    default:
      return;
  }
}

const score = (r: SeededRandom, label: number, quality: number) =>
  Math.min(1, Math.max(0, 0.5 + (label === 1 ? 0.45 : -0.45) * quality + (r.uniform() - 0.5) * 0.3));

const same = (a: TransitionRow | undefined, b: TransitionRow) =>
  a !== undefined &&
  a.version === b.version &&
  a.to_stage === b.to_stage &&
  a.at === b.at &&
  a.reason === b.reason &&
  a.evidence === b.evidence;

/**
 * One tick of a fresh controller (a restart) over the given transitions and rows at wall time
 * `now`; its clock read from `clockRows` (default: the same rows).
 */
async function freshTick(
  history: readonly TransitionRow[],
  rows: LabelledRow[],
  now: number,
  clockRows: LabelledRow[] = rows,
): Promise<TransitionRow | undefined> {
  const store = new MemoryTransitions([]);
  for (const t of history) store.rows.set(`${t.model}/${t.version}/${t.to_stage}`, t);
  const reader = { ...labelledTable(rows).reader, labelClock: labelledTable(clockRows).reader.labelClock };
  const controller = controllerOf(
    store,
    reader,
    () => now,
    async () => {},
  );
  return (await controller.tick()).transitions[0];
}

function controllerOf(
  store: MemoryTransitions,
  pairs: PairReader,
  now: () => number,
  publish: (events: readonly ModelEvent[]) => Promise<void>,
): ModelController {
  return new ModelController({
    transitions: store,
    pairs,
    publish,
    policies,
    maxPairs: 100_000,
    logger: silentLogger,
    registry: createMetricsRegistry({ service: 'time-world', defaultMetrics: false }),
    now,
    maxFutureMs: MAX_FUTURE,
  });
}

export interface WorldRun {
  readonly findings: Finding[];
  readonly transitions: readonly string[];
}

/**
 * Runs one world for `spec.ticks` ticks and checks, for every transition the controller records:
 * its reads were of its stage's own rows; a fresh controller decides it again from the same
 * transitions and rows (replay), and, on the same clock, from the rows labelled (true time) by its
 * `at` alone (so it is not dated before the label that made it possible); a canary or production rolled back
 * for lack of evidence (too_few_labels, not_scored) while it served, or a shadow rejected so while
 * it was scored, had `max_time` of its own serving (from its first answer, on the newest labelled
 * true prediction time); rows of the producer ahead did not end it on max_time (the same tick over
 * their true times does not). At the end: a version that never loads was rolled back within
 * max_time + label delay + lag + outage + two ticks of event time of the transition's tick; and
 * v2's last stage, if still open, began less than its bound before (see checkDecided).
 */
export async function runWorld(spec: WorldSpec): Promise<WorldRun> {
  const { offset, rate } = clockOf(spec);
  const eventAt = (tick: number) => T0 + offset + tick * STEP;
  const wallAt = (tick: number) => T0 + Math.round((tick * STEP) / rate);
  const random = new SeededRandom(spec.seed);
  const findings: Finding[] = [];
  const found = (invariant: Invariant, detail: string) => findings.push({ invariant, detail });
  const store = new MemoryTransitions([]);
  const registerAt = spec.registerAt ?? 0;
  const registered = (
    version: string,
    from: TransitionRow['from_stage'],
    to: TransitionRow['to_stage'],
  ): TransitionRow => ({
    model: 'fraud',
    version,
    from_stage: from,
    to_stage: to,
    at: spec.registeredOn === 'wall' ? wallAt(registerAt) : eventAt(registerAt) - 1,
    decided_by: 'trainer:offline_gate',
    reason: 'offline_gate',
    detail: '',
    evidence: '',
    canary_share: null,
    previous_version: to === 'shadow' ? 'v1' : null,
    recorded_at: wallAt(registerAt),
  });
  const servers: Servers = { production: 'v1', canary: undefined, scored: new Set(['v1']) };
  const quality: Record<string, number> = { v1: 0.3, v2: spec.quality };
  const pending: Array<{ tick: number; event: ModelEvent }> = [];
  const register = () => {
    store.rows.set('fraud/v2/candidate', registered('v2', null, 'candidate'));
    store.rows.set('fraud/v2/shadow', registered('v2', 'candidate', 'shadow'));
    // Servers that loaded v2's first SHADOW (the controller re-publishes it at start).
    pending.push({ tick: registerAt, event: { kind: 'SHADOW', version: 'v2', previous_version: 'v1' } as ModelEvent });
  };
  if (registerAt === 0) register();
  const future: Row[] = [];
  const warehouse: Row[] = [];
  const decisions: Decision[] = [];
  /** The first request each version answered in each role (true prediction time). */
  const firstAnswer = new Map<string, number>();
  let tickNow = 0;
  let controller: ModelController | undefined;
  const table = labelledTable(warehouse);
  const reader: PairReader = {
    ...table.reader,
    readPairs: async (q) => {
      const view = viewOf(usableTransitions([...store.rows.values()]));
      const stage = view.versions.get(q.challenger)?.stage;
      const watch = view.watch?.production === q.incumbent && view.watch.previous === q.challenger;
      const expected =
        stage === 'canary' ? `${q.challenger}/canary` : watch || stage === 'shadow' ? `${q.incumbent}/production` : '?';
      const got = `${q.answeredBy.version}/${q.answeredBy.role}`;
      if (got !== expected) found('rows_not_about_stage', `tick ${tickNow}: ${q.challenger} (${stage}) read ${got}`);
      return table.reader.readPairs(q);
    },
  };
  const inOutage = (tick: number) => tick >= spec.outageAt && tick < spec.outageAt + OUTAGE_TICKS;
  let nextId = 0;
  for (let tick = 1; tick <= spec.ticks; tick++) {
    tickNow = tick;
    if (tick === registerAt) register();
    // Servers apply what was published `lag` ticks ago.
    while (pending.length > 0 && pending[0]!.tick + spec.lag <= tick)
      apply(servers, pending.shift()!.event, spec.broken);
    // Requests predicted over the last step, answered by what serves now.
    for (let j = 0; j < REQUESTS_PER_TICK; j++) {
      const predicted = eventAt(tick - 1) + Math.round(((j + 0.5) * STEP) / REQUESTS_PER_TICK);
      const canary = servers.canary !== undefined && random.uniform() < CANARY_SHARE;
      const answered = canary ? servers.canary! : servers.production;
      const role = canary ? 'canary' : 'production';
      const label = random.uniform() < 0.4 ? 1 : 0;
      const scores: Record<string, number> = {};
      for (const v of servers.scored) scores[v] = score(random, label, quality[v] ?? 0.3);
      const ahead = spec.producerAhead && nextId % 5 === 0;
      const skew = ahead ? AHEAD : 0;
      const trueLabel = predicted + spec.labelDelay;
      let arrives = Math.max(tick, Math.ceil((trueLabel - T0 - offset) / STEP));
      if (spec.outage === 'joiner' && inOutage(arrives)) arrives = spec.outageAt + OUTAGE_TICKS;
      const key = `${answered}/${role}`;
      if (!firstAnswer.has(key)) firstAnswer.set(key, predicted);
      for (const v of servers.scored)
        if (v !== answered && !firstAnswer.has(`${v}/shadow`)) firstAnswer.set(`${v}/shadow`, predicted);
      future.push({
        id: `r${String(nextId++).padStart(6, '0')}`,
        answered,
        role,
        predictionTime: predicted + skew,
        labelTime: trueLabel + skew,
        label,
        scores,
        truePrediction: predicted,
        trueLabel,
        ahead,
        arrives,
      });
    }
    for (let i = 0; i < future.length; ) {
      if (future[i]!.arrives <= tick) warehouse.push(...future.splice(i, 1));
      else i++;
    }
    if (spec.outage === 'controller' && inOutage(tick)) continue;
    // A restart now and then: a new process, its only state the warehouse's.
    if (controller === undefined || random.uniform() < 0.05) {
      controller = controllerOf(
        store,
        reader,
        () => wallAt(tickNow),
        async (events) => {
          for (const event of events) pending.push({ tick: tickNow, event });
        },
      );
    }
    const history = [...store.rows.values()];
    const rowsBefore = warehouse.length;
    const result = await controller.tick();
    for (const row of result.transitions) decisions.push({ row, tick, rows: rowsBefore, history });
  }
  await checkDecisions(spec, decisions, warehouse, wallAt, firstAnswer, found);
  checkNeverLoaded(spec, decisions, eventAt, found);
  checkDecided(spec, decisions, eventAt, found);
  return {
    findings,
    transitions: decisions.map(
      (d) => `${d.row.version}:${d.row.from_stage}>${d.row.to_stage}:${d.row.reason}@${d.tick}`,
    ),
  };
}

async function checkDecisions(
  spec: WorldSpec,
  decisions: readonly Decision[],
  warehouse: readonly Row[],
  wallAt: (tick: number) => number,
  firstAnswer: ReadonlyMap<string, number>,
  found: (invariant: Invariant, detail: string) => void,
): Promise<void> {
  for (const d of decisions) {
    const t = d.row;
    const name = `${t.version} ${t.from_stage}>${t.to_stage} (${t.reason}) at tick ${d.tick}`;
    const seen = warehouse.slice(0, d.rows);
    const now = wallAt(d.tick);
    if (!same(await freshTick(d.history, [...seen], now), t)) found('replay_differs', name);
    // The same clock, the pairs labelled (true time) by `at` alone.
    const labelled = seen.filter((r) => r.trueLabel <= t.at);
    const again = await freshTick(d.history, labelled, now, [...seen]);
    if (again?.version !== t.version || again.to_stage !== t.to_stage) found('dated_before_label', name);
    const lackOfEvidence =
      (t.to_stage === 'rolled_back' || t.to_stage === 'rejected') &&
      (t.reason === 'too_few_labels' || t.reason === 'not_scored');
    if (lackOfEvidence) {
      const role = t.from_stage === 'canary' ? 'canary' : t.from_stage === 'shadow' ? 'shadow' : 'production';
      const served = firstAnswer.get(`${t.version}/${role}`);
      const newest = seen.reduce((m, r) => Math.max(m, r.truePrediction), Number.NEGATIVE_INFINITY);
      if (served !== undefined && newest - served < MAX_TIME) {
        found('untested_end', `${name}: ${Math.round((newest - served) / MIN)} min of own serving`);
      }
    }
    const onTime = t.reason === 'max_time' || t.reason === 'too_few_labels' || t.reason === 'not_scored';
    if (spec.producerAhead && onTime && seen.some((r) => r.ahead)) {
      const honest = seen.map((r) => ({ ...r, predictionTime: r.truePrediction, labelTime: r.trueLabel }));
      const without = await freshTick(d.history, honest, now);
      if (without?.version !== t.version || without.to_stage !== t.to_stage) found('ended_by_rows_ahead', name);
    }
  }
}

/**
 * v2's last stage is decided within the time it needs: max_time, the label delay, the servers'
 * lag, an outage and the producer's skew, and a few ticks (a shadow that never decided where its
 * records were dated a month ahead of event time was found by a review: no transition, no log line).
 */
function checkDecided(
  spec: WorldSpec,
  decisions: readonly Decision[],
  eventAt: (tick: number) => number,
  found: (invariant: Invariant, detail: string) => void,
): void {
  const last = decisions.filter((d) => d.row.version === 'v2').at(-1);
  const stage = last?.row.to_stage ?? 'shadow';
  const watched =
    stage === 'production' && !decisions.some((d) => d.row.version === 'v1' && d.row.to_stage === 'retired');
  if (stage !== 'shadow' && stage !== 'canary' && !watched) return;
  const began = last?.tick ?? spec.registerAt ?? 0;
  const outage = spec.outage === 'none' || spec.outageAt + OUTAGE_TICKS < began ? 0 : OUTAGE_TICKS * STEP;
  const bound = MAX_TIME + spec.labelDelay + (spec.lag + 3) * STEP + outage + (spec.producerAhead ? AHEAD : 0);
  if (eventAt(spec.ticks) - eventAt(began) > bound) {
    found(
      'undecided',
      `v2 ${watched ? 'production (watch open)' : stage} since tick ${began}, ${spec.ticks - began} ticks`,
    );
  }
}

function checkNeverLoaded(
  spec: WorldSpec,
  decisions: readonly Decision[],
  eventAt: (tick: number) => number,
  found: (invariant: Invariant, detail: string) => void,
): void {
  if (spec.broken === 'none') return;
  const stage = spec.broken;
  const began = decisions.find((d) => d.row.version === 'v2' && d.row.to_stage === stage);
  if (began === undefined) return;
  const ended = decisions.find((d) => d.row.version === 'v2' && d.row.to_stage === 'rolled_back');
  const outage = spec.outage === 'none' || spec.outageAt + OUTAGE_TICKS < began.tick ? 0 : OUTAGE_TICKS * STEP;
  const bound = eventAt(began.tick) + MAX_TIME + spec.labelDelay + spec.lag * STEP + outage + 2 * STEP;
  const last = eventAt(spec.ticks);
  if (ended === undefined ? last > bound : eventAt(ended.tick) > bound) {
    found(
      'never_loaded_kept',
      `v2 ${stage} from tick ${began.tick}: ${ended === undefined ? 'never rolled back' : `rolled back at tick ${ended.tick}`}`,
    );
  }
}
