import { createHash } from 'node:crypto';
import { DEFAULT_EVENT_TIME_BOUNDS, type Logger, PoisonRecordError, silentLogger } from '@driftline/core';
import type { DecodedRecord } from '@driftline/kafka';
import { createMetricsRegistry } from '@driftline/observability';
import { type ModelState, type Policy, parsePolicyText } from '@driftline/policy';
import type { DriftAlert, RetrainRequest } from '@driftline/schemas';
import type { DecisionRow, DecisionStore } from '@driftline/warehouse';
import { describe, expect, it } from 'vitest';
import { loadPolicy } from '../src/config.js';
import { DATA_QUALITY_HOLD_WARNING_INTERVAL_MS, OVERDUE_SERIES_SETTLE_MS, triggerProcessor } from '../src/processor.js';

const T0 = Date.UTC(2024, 0, 1);
const W = 60_000;
const policy = parsePolicyText(`
models:
  fraud:
    signals: { share_drifted: 0.3 }
    sustain: 2
    cooldown: 1h
    training_window: 1h
`);

/** Any model: sustain 2, cooldown 1h. */
const wildcard = parsePolicyText(`
models:
  '*':
    signals: { share_drifted: 0.3 }
    sustain: 2
    cooldown: 1h
    training_window: 1h
`);

const alert = (w: number): DriftAlert => ({
  alert_id: `a${w}`,
  kind: 'FEATURE_DRIFT',
  model: 'fraud',
  model_version: 'v1',
  feature: null,
  window_start: T0 + w * W,
  window_end: T0 + (w + 1) * W,
  event_time: T0 + (w + 1) * W,
  method: 'psi',
  statistic: 0.5,
  p_value: null,
  threshold: 0.2,
  share_drifted: 0.5,
  evidence: '{}',
});

/** Offsets go on from batch to batch, as in a partition (a replay is the same records again). */
let nextOffset = 0;
const record = () => ({
  topic: 't',
  partition: 0,
  offset: String(nextOffset++),
  key: null,
  value: null,
  headers: {},
  timestamp: 0,
});

const items = (ws: number[]): Array<DecodedRecord<DriftAlert>> =>
  ws.map((w) => ({ record: record(), value: alert(w) }));

/** An alert at a given offset (a topic recreated starts again at 0). */
const at = (offset: number, value: DriftAlert): DecodedRecord<DriftAlert> => ({
  record: { ...record(), offset: String(offset) },
  value,
});

/** Keeps rows like retrain_decisions FINAL would: per (model, alert_id) the max `first`, then the last. */
class MemoryStore implements DecisionStore {
  readonly rows: DecisionRow[] = [];
  failWrites = 0;
  /** Writes that land and then fail (a timeout after the server wrote them). */
  landThenFail = 0;
  /** The next write lands only its first this many rows, then fails (an insert cut short). */
  landPrefixThenFail: number | undefined;
  failLookups = 0;
  /** The ids each recordedAlerts call asked for, by model. */
  readonly lookups: Array<Map<string, string[]>> = [];
  /**
   * `argMax(state, seq)` between rows of equal seq takes whichever ClickHouse reads first: `first`
   * makes that the earliest written (the worst case), `last` the latest.
   */
  constructor(private readonly ties: 'first' | 'last' = 'last') {}
  async loadStates(models: readonly string[]) {
    const out = new Map<string, ModelState>();
    for (const m of models) {
      const ordered = this.rows
        .filter((r) => r.model === m && r.first === 1 && r.state !== '')
        .sort((a, b) => a.seq - b.seq);
      const top = ordered.at(-1);
      const last = this.ties === 'last' ? top : ordered.find((r) => r.seq === top?.seq);
      if (last !== undefined) out.set(m, JSON.parse(last.state) as ModelState);
    }
    return out;
  }
  /** `SELECT … FINAL`: per (model, alert_id) the row of greatest `first`, the last written among equals. */
  final(): DecisionRow[] {
    const kept = new Map<string, DecisionRow>();
    for (const r of this.rows) {
      const key = `${r.model}\u0000${r.alert_id}`;
      const prior = kept.get(key);
      if (prior === undefined || r.first >= prior.first) kept.set(key, r);
    }
    return [...kept.values()];
  }
  async baseline() {
    return undefined;
  }
  async recordedAlerts(
    alertIds: ReadonlyMap<string, readonly string[]>,
    includedThrough?: ReadonlyMap<string, number>,
  ) {
    if (this.failLookups > 0) {
      this.failLookups--;
      throw new Error('ClickHouse down');
    }
    this.lookups.push(new Map([...alertIds].map(([m, ids]) => [m, [...ids]])));
    // Per id: the seq of its first decision (`minIf(seq, first = 1)`, 0 without one).
    const firstSeq = new Map<string, number | undefined>();
    for (const r of this.rows) {
      if (!alertIds.get(r.model)?.includes(r.alert_id)) continue;
      const key = `${r.model}\u0000${r.alert_id}`;
      const prior = firstSeq.get(key);
      firstSeq.set(key, r.first === 0 ? prior : Math.min(prior ?? r.seq, r.seq));
    }
    const out = new Map<string, Set<string>>();
    for (const [key, seq] of firstSeq) {
      const [model, id] = key.split('\u0000') as [string, string];
      if ((seq ?? 0) > (includedThrough?.get(model) ?? Number.POSITIVE_INFINITY)) continue;
      out.set(model, (out.get(model) ?? new Set<string>()).add(id));
    }
    return out;
  }
  async write(rows: readonly DecisionRow[]) {
    if (this.failWrites > 0) {
      this.failWrites--;
      throw new Error('ClickHouse down');
    }
    if (this.landPrefixThenFail !== undefined) {
      this.rows.push(...rows.slice(0, this.landPrefixThenFail));
      this.landPrefixThenFail = undefined;
      throw new Error('clickhouse insert: ECONNRESET: socket hang up');
    }
    this.rows.push(...rows);
    if (this.landThenFail > 0) {
      this.landThenFail--;
      throw new Error('clickhouse insert: timed out after 10000 ms');
    }
  }
}

function processor(
  store: DecisionStore,
  sent: RetrainRequest[],
  isServing?: (model: string, version: string) => Promise<boolean>,
  policyOf: Policy = policy,
) {
  return triggerProcessor({
    ...(isServing === undefined ? {} : { isServing }),
    policy: policyOf,
    store,
    decode: () => alert(0),
    eventTime: DEFAULT_EVENT_TIME_BOUNDS,
    send: async (r) => {
      sent.push(...r);
    },
    logger: silentLogger,
    registry: createMetricsRegistry({ service: 'test' }),
    now: () => 0,
  });
}

const ctx = { topic: 't', partition: 0, highWatermark: '0' };

describe('trigger processor', () => {
  it('records every decision with the state after it and publishes fired requests', async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    await processor(store, sent).process(items([0, 1, 2, 1]), ctx);
    expect(store.rows.map((r) => r.reason)).toEqual(['sustaining', 'fire', 'cooldown', 'duplicate']);
    expect(store.rows.map((r) => r.first)).toEqual([1, 1, 1, 0]);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ model: 'fraud', model_version: 'v1', data_to: T0 + 2 * W, event_time: T0 + 2 * W });
    expect(store.rows[1]!.request_id).toBe(sent[0]!.request_id);
  });

  it("holds a shadow's or canary's alerts as not_serving: only production's windows make a streak", async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const shadow = (w: number): DecodedRecord<DriftAlert> => ({
      record: record(),
      value: { ...alert(w), alert_id: `s${w}`, model_version: 'v2-shadow' },
    });
    const p = processor(store, sent, async (_model, version) => version === 'v1');
    // Two drifted shadow windows would fire (sustain 2) if they counted.
    await p.process([shadow(0), shadow(1)], ctx);
    expect(store.rows.map((r) => r.reason)).toEqual(['not_serving', 'not_serving']);
    expect(sent).toEqual([]);
    // Production's own windows still fire, the shadow's never joined their streak.
    await p.process(items([0, 1]), ctx);
    expect(store.rows.slice(2).map((r) => r.reason)).toEqual(['sustaining', 'fire']);
    expect(sent).toHaveLength(1);
  });

  it('a new instance rebuilds the state from the recorded decisions', async () => {
    const store = new MemoryStore();
    await processor(store, []).process(items([0, 1]), ctx);
    const sent: RetrainRequest[] = [];
    await processor(store, sent).process(items([2, 3, 1]), ctx);
    expect(store.rows.slice(2).map((r) => r.reason)).toEqual(['cooldown', 'cooldown', 'duplicate']);
    expect(sent).toHaveLength(0);
  });

  it('a failed record after publishing decides the retry to the same request id, and the state is not adopted', async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const p = processor(store, sent);
    store.failWrites = 1;
    await expect(p.process(items([0, 1]), ctx)).rejects.toThrow(/ClickHouse down/);
    await p.process(items([0, 1]), ctx); // the loop retries the batch
    expect(store.rows.map((r) => r.reason)).toEqual(['sustaining', 'fire']);
    expect(store.rows[1]!.request_id).toBe(sent[0]!.request_id);
    expect(sent).toHaveLength(1); // published once, not again by the retry
    // Another instance retrying the batch (after a crash or a rebalance) publishes it once more: the same id.
    store.failWrites = 1;
    const batch = items([70, 71]);
    await expect(p.process(batch, ctx)).rejects.toThrow(/ClickHouse down/);
    await processor(store, sent).process(batch, ctx);
    expect(sent).toHaveLength(3);
    expect(sent[2]!.request_id).toBe(sent[1]!.request_id);
  });

  it('an insert outage publishes a fired request once, however many times the batch is retried (found by a review)', async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const p = processor(store, sent);
    store.failWrites = 5;
    const batch = items([0, 1]);
    for (let i = 0; i < 5; i++) await expect(p.process(batch, ctx)).rejects.toThrow(/ClickHouse down/);
    await p.process(batch, ctx); // the insert works again
    expect(sent).toHaveLength(1);
    expect(store.final().map((r) => [r.reason, r.request_id])).toEqual([
      ['sustaining', null],
      ['fire', sent[0]!.request_id],
    ]);
    // Recorded, the id is forgotten: a later fire is published as usual; a revocation forgets too.
    store.failWrites = 1;
    await expect(p.process(items([70, 71]), ctx)).rejects.toThrow(/ClickHouse down/);
    p.revoked?.([{ topic: 't', partition: 0 }]);
    await p.process(items([70, 71]), ctx);
    expect(sent.map((r) => r.data_to)).toEqual([T0 + 2 * W, T0 + 72 * W, T0 + 72 * W]);
    expect(sent[2]!.request_id).toBe(sent[1]!.request_id);
  });

  it('a write that landed but reported failure: the retry reloads the state, so the fire is kept and its cooldown holds (found by a review)', async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const p = processor(store, sent);
    await p.process(items([0]), ctx);
    store.landThenFail = 1;
    await expect(p.process(items([1]), ctx)).rejects.toThrow(/timed out/);
    await p.process(items([1]), ctx); // the loop retries the batch: every id is recorded by now
    await p.process(items([2, 3]), ctx); // a new streak inside the 1 h cooldown
    expect(sent).toHaveLength(1);
    expect(store.final().map((r) => `${r.alert_id}:${r.reason}`)).toEqual([
      'a0:sustaining',
      'a1:fire',
      'a2:cooldown',
      'a3:cooldown',
    ]);
    const seqs = store.rows.filter((r) => r.first === 1).map((r) => r.seq);
    expect(new Set(seqs).size).toBe(seqs.length); // every recorded state orders after the one before
  });

  it('a replay after the record never replaces a decision, even of an alert the policy forgot (found by a review)', async () => {
    const strict = parsePolicyText(`
models:
  fraud:
    signals: { share_drifted: 0.3 }
    sustain: 1
    cooldown: 1h
    late_horizon: 10m
`);
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const options = {
      policy: strict,
      store,
      decode: () => alert(0),
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      send: async (r: readonly RetrainRequest[]) => {
        sent.push(...r);
      },
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test' }),
      now: () => 0,
    };
    const batch = items([0, 100]);
    await triggerProcessor(options).process(batch, ctx);
    expect(store.rows.map((r) => r.reason)).toEqual(['fire', 'fire']);
    // Crash after the record, before the commit: a new instance gets the same batch again. a0's
    // window is far behind the horizon of the recorded state: decided as new it was too_late.
    await triggerProcessor(options).process(batch, ctx);
    expect(store.rows.slice(2).map((r) => [r.reason, r.first])).toEqual([
      ['duplicate', 0],
      ['duplicate', 0],
    ]);
    expect(store.final().map((r) => [r.alert_id, r.reason, r.fired])).toEqual([
      ['a0', 'fire', 1],
      ['a100', 'fire', 1],
    ]);
    expect(sent).toHaveLength(2);
    // Later alerts of the partition are decided as before.
    await triggerProcessor(options).process(items([200]), ctx);
    expect(store.rows.at(-1)).toMatchObject({ alert_id: 'a200', reason: 'fire', first: 1 });
  });

  it("a recreated topic's alerts (offsets from 0 again) are decided, never taken for replays (found by a review)", async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    await processor(store, sent).process([at(500, alert(0)), at(501, alert(1))], ctx);
    expect(store.rows.map((r) => r.reason)).toEqual(['sustaining', 'fire']);
    // The topic deleted and recreated, the service restarted: new alerts at offsets 0.. for
    // windows past the cooldown were all `duplicate` (a replay) until the offsets passed 501.
    await processor(store, sent).process([at(0, alert(150)), at(1, alert(151)), at(2, alert(152))], ctx);
    expect(store.rows.slice(2).map((r) => [r.reason, r.first])).toEqual([
      ['sustaining', 1],
      ['fire', 1],
      ['cooldown', 1],
    ]);
    expect(sent).toHaveLength(2);
    // A replay of the new topic's records is still one.
    await processor(store, sent).process([at(1, alert(151))], ctx);
    expect(store.rows.at(-1)).toMatchObject({ alert_id: 'a151', reason: 'duplicate', first: 0 });
  });

  it("a recreated topic's new alert for an old window, at an offset below the old ones, is decided (found by a review)", async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const quiet = { ...alert(0), share_drifted: 0.1 };
    await processor(store, sent).process([at(500, alert(1)), at(501, quiet)], ctx);
    expect(store.rows.map((r) => r.reason)).toEqual(['sustaining', 'no_signal']);
    // Recreated: offsets from 0 again. An id never seen, for window 0 (no newer than the latest
    // decided): by its position a replay, held as duplicate; it completes the run 0..1 and fires.
    const fresh = { ...alert(0), alert_id: 'new-0' };
    await processor(store, sent).process([at(0, fresh)], ctx);
    expect(store.rows.at(-1)).toMatchObject({ alert_id: 'new-0', reason: 'fire', first: 1 });
    expect(sent).toHaveLength(1);
    // Its own replay (a crash after the record) is one, by id.
    await processor(store, sent).process([at(0, fresh)], ctx);
    expect(store.rows.at(-1)).toMatchObject({ alert_id: 'new-0', reason: 'duplicate', first: 0 });
    expect(store.final().find((r) => r.alert_id === 'new-0')).toMatchObject({ reason: 'fire', fired: 1 });
    expect(sent).toHaveLength(1);
  });

  it('an id published again at a later offset, forgotten by the policy, never replaces its decision (found by a review)', async () => {
    const strict = parsePolicyText(`
models:
  fraud:
    signals: { share_drifted: 0.3 }
    sustain: 1
    cooldown: 1h
    late_horizon: 10m
`);
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const p = triggerProcessor({
      policy: strict,
      store,
      decode: () => alert(0),
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      send: async (r) => {
        sent.push(...r);
      },
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test' }),
      now: () => 0,
    });
    await p.process([at(10, alert(0)), at(11, alert(100))], ctx);
    expect(store.rows.map((r) => r.reason)).toEqual(['fire', 'fire']);
    // The producer publishes a0 again (new offsets), twice in one batch: the state forgot it (its
    // window is far behind the horizon, and a100 fired since); decided as new it was too_late, first = 1.
    await p.process([at(12, alert(0)), at(13, alert(0))], ctx);
    expect(store.rows.slice(2).map((r) => [r.alert_id, r.reason, r.first])).toEqual([
      ['a0', 'duplicate', 0],
      ['a0', 'duplicate', 0],
    ]);
    expect(store.final().map((r) => [r.alert_id, r.reason, r.fired])).toEqual([
      ['a0', 'fire', 1],
      ['a100', 'fire', 1],
    ]);
    expect(sent).toHaveLength(2);
    // One lookup per batch, only of the ids the state does not remember.
    expect(store.lookups.map((l) => l.get('fraud'))).toEqual([
      ['a0', 'a100'],
      ['a0', 'a0'],
    ]);
    await p.process([at(14, alert(100))], ctx);
    expect(store.lookups).toHaveLength(3);
    expect(store.lookups[2]!.size).toBe(0);
  });

  it('a forgotten id seen twice in one batch is decided once', async () => {
    const strict = parsePolicyText(`
models:
  fraud:
    signals: { share_drifted: 0.3 }
    sustain: 1
    cooldown: 1h
    late_horizon: 10m
`);
    const store = new MemoryStore();
    const p = triggerProcessor({
      policy: strict,
      store,
      decode: () => alert(0),
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      send: async () => {},
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test' }),
      now: () => 0,
    });
    // a0 is too_late behind a100: the state stays as it was and does not remember a0.
    await p.process([at(0, alert(100)), at(1, alert(0)), at(2, alert(0))], ctx);
    expect(store.rows.map((r) => [r.alert_id, r.reason, r.first])).toEqual([
      ['a100', 'fire', 1],
      ['a0', 'too_late', 1],
      ['a0', 'duplicate', 0],
    ]);
  });

  it("names holding NUL never collide in the batch's keys: each alert decided, each version asked whether it serves (found by a review)", async () => {
    // Names are bounded in length only: a NUL joining (model, id) or (model, version) made
    // ("a\0b", "c") and ("a", "b\0c") one key: the second alert a duplicate, never decided, or
    // given the other model's answer to whether its version serves.
    const store = new MemoryStore();
    const asked: string[] = [];
    const hostile = { ...alert(0), model: 'a\u0000b', alert_id: 'c', model_version: 'c' };
    const sameId = { ...alert(0), model: 'a', alert_id: 'b\u0000c', model_version: 'v1' };
    const sameVersion = { ...alert(1), model: 'a', alert_id: 'a1', model_version: 'b\u0000c' };
    await processor(
      store,
      [],
      async (model, version) => {
        asked.push(JSON.stringify([model, version]));
        return model === 'a';
      },
      wildcard,
    ).process([at(0, hostile), at(1, sameId), at(2, sameVersion)], ctx);
    expect(store.rows.map((r) => [r.model, r.alert_id, r.reason, r.first])).toEqual([
      ['a\u0000b', 'c', 'not_serving', 1],
      ['a', 'b\u0000c', 'sustaining', 1],
      ['a', 'a1', 'fire', 1],
    ]);
    expect(asked).toEqual([
      JSON.stringify(['a\u0000b', 'c']),
      JSON.stringify(['a', 'v1']),
      JSON.stringify(['a', 'b\u0000c']),
    ]);
  });

  it('ClickHouse down during the lookup: nothing published or recorded, the retried batch decides as before', async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const p = processor(store, sent);
    store.failLookups = 1;
    await expect(p.process([at(0, alert(0)), at(1, alert(1))], ctx)).rejects.toThrow(/ClickHouse down/);
    expect(sent).toEqual([]);
    expect(store.rows).toEqual([]);
    await p.process([at(0, alert(0)), at(1, alert(1))], ctx);
    expect(store.rows.map((r) => r.reason)).toEqual(['sustaining', 'fire']);
    expect(sent).toHaveLength(1);
  });

  it("a replayed shadow's alert is a replay, though its window is newer than the policy's windows", async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    let serving: (version: string) => boolean = (version) => version === 'v1';
    const batch = [at(10, alert(0)), at(11, { ...alert(5), alert_id: 's5', model_version: 'v2' })];
    await processor(store, sent, async (_m, v) => serving(v)).process(batch, ctx);
    expect(store.rows.map((r) => r.reason)).toEqual(['sustaining', 'not_serving']);
    // Promoted meanwhile: decided again, s5 would count and fire.
    serving = () => true;
    await processor(store, sent, async (_m, v) => serving(v)).process(batch, ctx);
    expect(store.rows.slice(2).map((r) => [r.reason, r.first])).toEqual([
      ['duplicate', 0],
      ['duplicate', 0],
    ]);
    expect(sent).toEqual([]);
  });

  it('every recorded decision orders after the one before, so a reload takes the newest state (found by a review)', async () => {
    const strict = parsePolicyText(`
models:
  fraud:
    signals: { share_drifted: 0.3 }
    sustain: 1
    cooldown: 1h
    late_horizon: 10m
`);
    // ClickHouse's argMax between equal seqs: here the earliest written row.
    const store = new MemoryStore('first');
    const sent: RetrainRequest[] = [];
    const options = {
      policy: strict,
      store,
      decode: () => alert(0),
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      send: async (r: readonly RetrainRequest[]) => {
        sent.push(...r);
      },
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test' }),
      now: () => 0,
    };
    // a0 is too_late behind a100: a hold that leaves the policy state (and its seq) as it was.
    const batch = [at(20, alert(100)), at(21, alert(0))];
    await triggerProcessor(options).process(batch, ctx);
    expect(store.rows.map((r) => [r.reason, r.seq])).toEqual([
      ['fire', 1],
      ['too_late', 2],
    ]);
    // A crash before the commit: the reloaded state must be the one after a0, or a0's replay
    // is decided as new (first = 1) and its row replaces the original in FINAL.
    await triggerProcessor(options).process(batch, ctx);
    expect(store.rows.slice(2).map((r) => [r.alert_id, r.reason, r.first])).toEqual([
      ['a100', 'duplicate', 0],
      ['a0', 'duplicate', 0],
    ]);
    expect(sent).toHaveLength(1);
  });

  it('keeps at most maxModelStates model states; an evicted model reloads the same state', async () => {
    const store = new MemoryStore();
    let loads = 0;
    const loadStates = store.loadStates.bind(store);
    store.loadStates = async (models) => {
      loads += models.length;
      return loadStates(models);
    };
    const sent: RetrainRequest[] = [];
    const p = triggerProcessor({
      policy: wildcard,
      store,
      decode: () => alert(0),
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      send: async (r) => {
        sent.push(...r);
      },
      logger: silentLogger,
      registry: createMetricsRegistry({ service: 'test' }),
      now: () => 0,
      maxModelStates: 2,
    });
    const of = (model: string, w: number) =>
      items([w]).map((i) => ({ ...i, value: { ...i.value, model, alert_id: `${model}-${w}` } }));
    await p.process(of('fraud', 0), ctx); // sustaining 1/2
    for (let m = 0; m < 1_000; m++) await p.process(of(`random-${m}`, 0), ctx); // a flood of model names
    expect(loads).toBe(1_001);
    await p.process(of('fraud', 1), ctx); // evicted long ago: reloaded, and the streak goes on
    expect(loads).toBe(1_002);
    expect(sent.map((r) => r.model)).toEqual(['fraud']);
  });

  it('forgets states on revocation and reloads them', async () => {
    const store = new MemoryStore();
    const p = processor(store, []);
    await p.process(items([0]), ctx);
    p.revoked?.([{ topic: 't', partition: 0 }]);
    await p.process(items([0]), ctx);
    expect(store.rows.map((r) => r.reason)).toEqual(['sustaining', 'duplicate']);
  });

  it('an alert with a µs or pre-1900 time is poison (DLQ with the reason), never a decision', async () => {
    const NOW = T0 + 3_600_000;
    const decodeOf = (a: DriftAlert) =>
      triggerProcessor({
        policy,
        store: new MemoryStore(),
        decode: () => a,
        eventTime: DEFAULT_EVENT_TIME_BOUNDS,
        send: async () => {},
        logger: silentLogger,
        registry: createMetricsRegistry({ service: 'test' }),
        now: () => NOW,
      }).decode;
    const record = { topic: 't', partition: 0, offset: '0', key: null, value: null, headers: {}, timestamp: 0 };
    const us = { ...alert(0), event_time: alert(0).event_time * 1000 };
    await expect(decodeOf(us)(record)).rejects.toThrow(PoisonRecordError);
    await expect(decodeOf(us)(record)).rejects.toThrow(
      /^alert [^:]+: event_time \d+ is [\d,]+ years in the future.*microseconds\?$/,
    );
    const old = { ...alert(0), window_start: Date.UTC(1899, 0, 1) };
    await expect(decodeOf(old)(record)).rejects.toThrow(/window_start .* is before the minimum 1900-01-01/);
    // An empty window (start = end) hung the policy for ever (found by a review): poison now.
    const empty = { ...alert(0), window_start: alert(0).window_end };
    await expect(decodeOf(empty)(record)).rejects.toThrow(
      /^alert [^:]+: window_start \d+ is not before window_end \d+ \(an empty window\)$/,
    );
    // The model name is bounded like the producers' (it is part of every state, row and metric).
    await expect(decodeOf({ ...alert(0), model: 'm'.repeat(10_000) })(record)).rejects.toThrow(
      /model must be 1\.\.256 characters/,
    );
    // An empty version is what the SDK accepts and the skew-monitor raises alerts for (it was
    // dead-lettered; found by a review); the bound stays.
    const versionless = { ...alert(0), model_version: '' };
    await expect(decodeOf(versionless)(record)).resolves.toEqual(versionless);
    await expect(decodeOf({ ...alert(0), model_version: 'v'.repeat(257) })(record)).rejects.toThrow(
      /model_version must be 0\.\.256 characters \(got 257\)/,
    );
    await expect(decodeOf({ ...alert(0), model: '' })(record)).rejects.toThrow(/model must be 1\.\.256 characters/);
    // The id is looked up in retrain_decisions as a query parameter: bounded too.
    await expect(decodeOf({ ...alert(0), alert_id: 'x'.repeat(257) })(record)).rejects.toThrow(
      /alert_id must be 1\.\.256 characters \(got 257\)/,
    );
    await expect(decodeOf(alert(0))(record)).resolves.toEqual(alert(0));
  });

  it('names the variable when the policy file is missing, the field when it is wrong', () => {
    expect(() => loadPolicy('/nonexistent/policy.yaml')).toThrow(/DRIFTLINE_RETRAIN_POLICY_FILE/);
    expect(Object.keys(loadPolicy(undefined).models)).toEqual(['*']);
  });
});

describe('the state in retrain_decisions: once per model and batch, bounded (found by a review)', () => {
  const FIVE = 300_000;
  /** The review's shape: one model, 40 per-feature alerts (32-hex ids) per 5-minute window, 288 windows. */
  const wide = (w: number, f: number): DriftAlert => ({
    ...alert(0),
    alert_id: createHash('sha256').update(`wide${w}-${f}`).digest('hex').slice(0, 32),
    model: 'mwide',
    feature: `f${f}`,
    share_drifted: 0.6,
    window_start: T0 + w * FIVE,
    window_end: T0 + (w + 1) * FIVE,
    event_time: T0 + (w + 1) * FIVE,
  });
  const backlog = Array.from({ length: 288 }, (_, w) => Array.from({ length: 40 }, (_, f) => wide(w, f))).flat();
  const wideItems = (alerts: readonly DriftAlert[]) => alerts.map((value) => ({ record: record(), value }));
  const withPolicy = (policyOf: Policy, store: DecisionStore, sent: RetrainRequest[]) =>
    processor(store, sent, undefined, policyOf);

  it("40 features × 288 windows: each batch's rows stay bounded in bytes, and a restart replays them exactly", async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const p = withPolicy(loadPolicy(undefined), store, sent);
    // The review's batches: 625 at a time, then the remaining 6,520 at once (1.6 GB of state before).
    const bounds = [...Array.from({ length: 9 }, (_, i) => i * 625), backlog.length];
    for (let i = 0; i + 1 < bounds.length; i++) {
      const before = store.rows.length;
      await p.process(wideItems(backlog.slice(bounds[i], bounds[i + 1])), ctx);
      const rows = store.rows.slice(before);
      expect(rows).toHaveLength(bounds[i + 1]! - bounds[i]!);
      // One row carries the model's state (its last), and that state is bounded.
      const carrying = rows.filter((r) => r.state !== '');
      expect(carrying.map((r) => r.seq)).toEqual([rows.at(-1)!.seq]);
      expect(carrying[0]!.state.length).toBeLessThan(40_000);
      expect(Buffer.byteLength(JSON.stringify(rows))).toBeLessThan(rows.length * 600 + 40_000);
    }
    expect(sent).toHaveLength(1); // sustain 3, then a 24 h cooldown
    // A restart replays the whole backlog: every alert a duplicate, nothing sent again.
    const again: RetrainRequest[] = [];
    const replayed = store.rows.length;
    await withPolicy(loadPolicy(undefined), store, again).process(wideItems(backlog), ctx);
    expect(again).toEqual([]);
    expect(new Set(store.rows.slice(replayed).map((r) => `${r.reason}/${r.first}`))).toEqual(new Set(['duplicate/0']));
    expect((await store.loadStates(['mwide'])).get('mwide')?.seq).toBe(backlog.length);
  }, 90_000); // ~10 s alone; the unit project runs it beside every other file on 2 cores

  /** Windows [from, to) with `perWindow` alerts each. */
  const windows = (from: number, to: number, perWindow = 40) =>
    Array.from({ length: to - from }, (_, k) => Array.from({ length: perWindow }, (_, f) => wide(from + k, f))).flat();

  it('an id the state remembered before the batch, pushed out of it by the batch, is a duplicate when it comes again in that batch (found by a review)', async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const p = withPolicy(loadPolicy(undefined), store, sent);
    const again = wide(0, 39); // the newest alert of window 0: the state after batch 1 remembers it
    await p.process(wideItems(windows(0, 1)), ctx);
    const original = store.final().find((r) => r.alert_id === again.alert_id)!;
    expect([original.reason, original.first, original.seq]).toEqual(['sustaining', 1, 40]);
    // 800 new ids (windows 1..20) push window 0's ids out of the state (256 at most), then the
    // producer publishes the window 0 alert again: decided as new it was before_last_retrain, first = 1.
    const before = store.rows.length;
    await p.process(wideItems([...windows(1, 21), again]), ctx);
    expect(store.rows.slice(before).at(-1)).toMatchObject({ alert_id: again.alert_id, reason: 'duplicate', first: 0 });
    expect(store.final().find((r) => r.alert_id === again.alert_id)).toEqual(original);
    // The duplicate takes no seq: the state is the 800 new decisions' after the 40 before.
    expect((await store.loadStates(['mwide'])).get('mwide')?.seq).toBe(840);
  });

  it('a fire remembered before the batch and pushed out of it keeps its row when it comes again in that batch (found by a review)', async () => {
    // Every signalled window fires, one window (5 minutes) after the last.
    const everyWindow = parsePolicyText(
      "models: { '*': { signals: { share_drifted: 0.3 }, sustain: 1, cooldown: 5m, training_window: 1h } }",
    );
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const p = withPolicy(everyWindow, store, sent);
    const fired = wide(0, 0);
    await p.process(wideItems([fired]), ctx);
    expect(store.final().map((r) => [r.reason, r.fired])).toEqual([['fire', 1]]);
    // Windows 1..9 fire each (the last fire is no longer window 0's) and their 288 ids push
    // window 0's out of the state; decided as new, window 0's alert was before_last_retrain and
    // its row replaced the fire (the request id gone from the decisions).
    await p.process(wideItems([...windows(1, 10, 32), fired]), ctx);
    expect(store.rows.at(-1)).toMatchObject({ alert_id: fired.alert_id, reason: 'duplicate', first: 0 });
    const kept = store.final().find((r) => r.alert_id === fired.alert_id)!;
    expect([kept.reason, kept.fired, kept.request_id]).toEqual(['fire', 1, sent[0]!.request_id]);
    expect(sent).toHaveLength(10);
  });

  /** fraud and other interleaved, windows 0..5: each fires on window 1, then cools down. */
  const mixed = () => [0, 1, 2, 3, 4, 5].flatMap((w) => [alert(w), { ...alert(w), model: 'other', alert_id: `o${w}` }]);
  const finalRows = (store: MemoryStore) =>
    store
      .final()
      .map((r) => [r.model, r.alert_id, r.reason, r.seq, r.request_id, r.first].join('/'))
      .sort();

  it('an insert that landed in part (no state row among it) is decided again the same way: no second fire', async () => {
    const clean = new MemoryStore();
    const cleanSent: RetrainRequest[] = [];
    await withPolicy(wildcard, clean, cleanSent).process(wideItems(mixed()), ctx);
    expect(cleanSent.map((r) => r.model)).toEqual(['fraud', 'other']);

    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const p = withPolicy(wildcard, store, sent);
    // The first 4 rows land (both fires among them), none of them the models' last: no state.
    store.landPrefixThenFail = 4;
    await expect(p.process(wideItems(mixed()), ctx)).rejects.toThrow(/socket hang up/);
    expect(store.rows.filter((r) => r.state !== '')).toEqual([]);
    await p.process(wideItems(mixed()), ctx); // the loop's retry of the batch
    // Held as duplicates, the landed fires were forgotten and windows 2..3 fired again.
    expect(new Set(sent.map((r) => r.request_id))).toEqual(new Set(cleanSent.map((r) => r.request_id)));
    expect(finalRows(store)).toEqual(finalRows(clean));
    // And a restart after it replays the batch as duplicates.
    const again: RetrainRequest[] = [];
    await withPolicy(wildcard, store, again).process(wideItems(mixed()), ctx);
    expect(again).toEqual([]);
    expect(finalRows(store)).toEqual(finalRows(clean));
  });

  it('rows of the previous release (a state on every row) load, and newer rows without one do not hide it', async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    // One alert per batch: every row carries the state after it, as every row did before.
    for (const a of mixed().slice(0, 4)) await withPolicy(wildcard, store, sent).process(wideItems([a]), ctx);
    expect(store.rows.every((r) => r.state !== '')).toBe(true);
    // A new process decides on from those states (cooldown), its rows carrying one state per model.
    await withPolicy(wildcard, store, sent).process(wideItems(mixed().slice(4)), ctx);
    expect(store.rows.slice(4).map((r) => r.reason)).toEqual(Array.from({ length: 8 }, () => 'cooldown'));
    expect(
      store.rows
        .slice(4)
        .filter((r) => r.state !== '')
        .map((r) => r.alert_id),
    ).toEqual(['a5', 'o5']);
    expect(sent.map((r) => r.model)).toEqual(['fraud', 'other']);
    const states = await store.loadStates(['fraud', 'other']);
    expect([states.get('fraud')?.seq, states.get('other')?.seq]).toEqual([6, 6]);
  });
});

describe('late PERFORMANCE alerts after alerts of other kinds (found by a review)', () => {
  // Labels arrive ~2 days late: hourly PERFORMANCE windows 2 days back, while the drift-monitor
  // raises a DATA_QUALITY alert for the current 5-minute window (every window whose missing share rose).
  const H = 3_600_000;
  const NOW = T0 + 10 * 24 * H;
  const performancePolicy = parsePolicyText(`
models:
  fraud:
    signals:
      performance:
        - { metric: roc_auc, below: 0.7 }
`);
  const performance = (i: number): DriftAlert => ({
    ...alert(0),
    alert_id: `perf-${i}`,
    kind: 'PERFORMANCE',
    method: 'roc_auc',
    statistic: 0.55,
    threshold: 0.7,
    share_drifted: null,
    window_start: NOW - 48 * H + i * H,
    window_end: NOW - 47 * H + i * H,
    event_time: NOW,
  });
  const quality: DriftAlert = {
    ...alert(0),
    alert_id: 'dq-now',
    kind: 'DATA_QUALITY',
    method: 'null_rate',
    share_drifted: null,
    window_start: NOW - 300_000,
    window_end: NOW,
    event_time: NOW,
  };
  const batch = (alerts: readonly DriftAlert[]) => alerts.map((value) => ({ record: record(), value }));

  it('a DATA_QUALITY alert of now leaves them their horizon; its replays are duplicates from retrain_decisions', async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    const p = processor(store, sent, undefined, performancePolicy);
    await p.process(batch([quality, performance(0), quality]), ctx);
    // A restart in between: the state after batch 1 does not remember dq-now, retrain_decisions does.
    await processor(store, sent, undefined, performancePolicy).process(
      batch([quality, performance(1), performance(2)]),
      ctx,
    );
    expect(store.rows.map((r) => `${r.alert_id}:${r.reason}:${r.first}`)).toEqual([
      'dq-now:no_signal:1',
      'perf-0:sustaining:1',
      'dq-now:duplicate:0',
      'dq-now:duplicate:0',
      'perf-1:sustaining:1',
      'perf-2:fire:1',
    ]);
    expect(sent).toHaveLength(1);
    expect(sent[0]).toMatchObject({ data_to: performance(2).window_end });
    expect(store.final().find((r) => r.alert_id === 'dq-now')).toMatchObject({ reason: 'no_signal', first: 1 });
  });

  it('a state the previous release persisted (one window list for every kind) loads and decides on', async () => {
    const store = new MemoryStore();
    // The review's B as that release left it: the DATA_QUALITY window of now moved its one
    // maxWindowEnd, two performance windows were decided before it.
    const legacy = {
      seq: 3,
      maxWindowEnd: NOW,
      windows: [0, 1].map((i) => ({
        start: performance(i).window_start,
        end: performance(i).window_end,
        signals: ['performance:roc_auc<0.7'],
        alertIds: [performance(i).alert_id],
      })),
      lastFire: null,
    };
    legacy.windows.push({ start: NOW - 300_000, end: NOW, signals: [], alertIds: ['dq-now'] });
    await processor(store, [], undefined, performancePolicy).process(batch([performance(0)]), ctx);
    store.rows[0] = { ...store.rows[0]!, seq: 3, state: JSON.stringify(legacy) };
    const sent: RetrainRequest[] = [];
    await processor(store, sent, undefined, performancePolicy).process(
      batch([quality, performance(1), performance(2)]),
      ctx,
    );
    // Before: too_late, the performance windows being 2 days behind the one maxWindowEnd.
    expect(store.rows.slice(1).map((r) => `${r.alert_id}:${r.reason}:${r.seq}`)).toEqual([
      'dq-now:duplicate:3',
      'perf-1:duplicate:3',
      'perf-2:fire:4',
    ]);
    expect(sent).toHaveLength(1);
    const state = (await store.loadStates(['fraud'])).get('fraud');
    expect(state?.performance?.windows.map((w) => w.alertIds)).toEqual([['perf-0'], ['perf-1'], ['perf-2']]);
    expect(state?.windows.map((w) => w.alertIds)).toEqual([['dq-now']]);
  });
});

describe('the data-quality veto (found by a review)', () => {
  // A broken upstream: a feature stops arriving, and the breakage drifts the others. The
  // drift-monitor sends each window's DATA_QUALITY alert, then its FEATURE_DRIFT alert (keyed by
  // model: this order on one partition). Before, the third window fired a retrain on the broken
  // windows, and its 24 h cooldown held the real one once the upstream was fixed.
  const defaults = loadPolicy(undefined);
  const quality = (w: number): DriftAlert => ({
    ...alert(w),
    alert_id: `dq${w}`,
    kind: 'DATA_QUALITY',
    feature: 'merchant_id',
    method: 'missing_share',
    statistic: 1,
    share_drifted: null,
    evidence: '{"missing_share":1}',
  });
  const batch = (alerts: readonly DriftAlert[]) => alerts.map((value) => ({ record: record(), value }));

  it('the outage holds data_quality and sends nothing; after a restart, clean windows fire once', async () => {
    const store = new MemoryStore();
    const sent: RetrainRequest[] = [];
    await processor(store, sent, undefined, defaults).process(
      batch([quality(0), alert(0), quality(1), alert(1), quality(2), alert(2)]),
      ctx,
    );
    expect(store.rows.map((r) => `${r.alert_id}:${r.reason}`)).toEqual([
      'dq0:no_signal',
      'a0:data_quality',
      'dq1:no_signal',
      'a1:data_quality',
      'dq2:no_signal',
      'a2:data_quality',
    ]);
    expect(sent).toEqual([]);
    expect(store.rows[5]!.detail).toMatch(/\(dq0, dq1, dq2\)/);
    // The spans are persisted with the state (on the batch's last row) and reload after a restart.
    const state = (await store.loadStates(['fraud'])).get('fraud');
    expect(state?.dataQuality).toEqual([{ start: T0, end: T0 + 3 * W, alertIds: ['dq0', 'dq1', 'dq2'] }]);
    expect(state?.lastFire).toBeNull();
    await processor(store, sent, undefined, defaults).process(
      batch([quality(2), alert(3), alert(4), alert(5), alert(6)]),
      ctx,
    );
    expect(store.rows.slice(6).map((r) => `${r.alert_id}:${r.reason}:${r.first}`)).toEqual([
      'dq2:duplicate:0',
      'a3:data_quality:1', // the run counts from window 3 on: 1/3
      'a4:data_quality:1',
      'a5:fire:1',
      'a6:cooldown:1',
    ]);
    expect(sent.map((r) => [r.data_to, JSON.parse(r.evidence).windows.length])).toEqual([[T0 + 6 * W, 3]]);
  });

  it('a state the previous release persisted (no DATA_QUALITY spans) loads, and the veto starts with the next DATA_QUALITY alert', async () => {
    const store = new MemoryStore();
    await processor(store, [], undefined, defaults).process(batch([alert(0)]), ctx);
    const legacy = {
      seq: 2,
      maxWindowEnd: T0 + W,
      windows: [{ start: T0, end: T0 + W, signals: ['share_drifted>=0.5'], alertIds: ['a0'] }],
      performance: { maxWindowEnd: 0, windows: [] },
      lastFire: null,
    };
    store.rows[0] = { ...store.rows[0]!, seq: 2, state: JSON.stringify(legacy) };
    const sent: RetrainRequest[] = [];
    await processor(store, sent, undefined, defaults).process(batch([quality(0), alert(1), quality(1), alert(2)]), ctx);
    expect(store.rows.slice(1).map((r) => `${r.alert_id}:${r.reason}:${r.seq}`)).toEqual([
      'dq0:no_signal:3',
      'a1:data_quality:4',
      'dq1:no_signal:5',
      'a2:data_quality:6',
    ]);
    expect(sent).toEqual([]);
  });

  /** A logger that keeps its warnings. */
  const warnings = () => {
    const seen: Array<{ obj: Record<string, unknown>; msg: string | undefined }> = [];
    const logger: Logger = {
      ...silentLogger,
      warn: (obj, msg) => {
        seen.push({ obj: obj as Record<string, unknown>, msg });
      },
      child: () => logger,
    };
    return { seen, logger };
  };

  it('routine DATA_QUALITY alerts: once the veto has held the retrains longer than the cooldown, a warning (one per model per hour) and its metrics (found by a review)', async () => {
    // An expectation that fails every other window, drift in every one: with the veto every run
    // holds data_quality (before the upgrade: a fire a day), and nothing else said so.
    const store = new MemoryStore();
    const { seen, logger } = warnings();
    const registry = createMetricsRegistry({ service: 'test' });
    let wall = 0;
    const sent: RetrainRequest[] = [];
    const trigger = triggerProcessor({
      policy: defaults,
      store,
      decode: () => alert(0),
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      send: async (r) => {
        sent.push(...r);
      },
      logger,
      registry,
      now: () => wall,
    });
    const routine = (from: number, to: number) =>
      batch(
        Array.from({ length: to - from }, (_, k) => from + k).flatMap((w) => [
          ...(w % 2 === 0 ? [quality(w)] : []),
          alert(w),
        ]),
      );
    const metric = async (name: string) =>
      (await registry.getSingleMetric(name)?.get())?.values.find((v) => v.labels.model === 'fraud')?.value;
    // 1-minute windows: 12 hours, then 24 hours and 2 minutes of event time since the first held fire (window 2).
    await trigger.process(routine(0, 720), ctx);
    expect(new Set(store.rows.map((r) => r.reason))).toEqual(new Set(['no_signal', 'data_quality']));
    expect(seen).toEqual([]);
    expect(await metric('driftline_retrain_data_quality_held_seconds')).toBe(717 * 60);
    expect(await metric('driftline_retrain_data_quality_overdue_total')).toBe(0);
    wall += OVERDUE_SERIES_SETTLE_MS; // its 0 scraped: counts are added at once from now on
    await trigger.process(routine(720, 1446), ctx);
    expect(sent).toEqual([]);
    // Held from window 2's end to window 1445's: 1,443 minutes > 1,440; windows 1443–1445 overdue.
    expect(await metric('driftline_retrain_data_quality_held_seconds')).toBe(1443 * 60);
    expect(await metric('driftline_retrain_data_quality_overdue_total')).toBe(3);
    expect(seen).toEqual([
      {
        obj: {
          model: 'fraud',
          heldSince: new Date(T0 + 3 * W).toISOString(),
          heldHours: 24.05,
          cooldownHours: 24,
          overdueHolds: 3,
        },
        msg: expect.stringMatching(
          /^the data-quality veto has held this model's retrains for longer than its cooldown/,
        ),
      },
    ]);
    // Rate-limited per model: not again within the hour (wall clock), again after it.
    await trigger.process(routine(1446, 1450), ctx);
    expect(seen).toHaveLength(1);
    expect(await metric('driftline_retrain_data_quality_overdue_total')).toBe(7);
    wall += DATA_QUALITY_HOLD_WARNING_INTERVAL_MS;
    await trigger.process(routine(1450, 1452), ctx);
    expect(seen).toHaveLength(2);
    // The expectation fixed: windows 1451–1453 are clean, the third fires, and the hold is over.
    await trigger.process(batch([alert(1452), alert(1453)]), ctx);
    expect(store.rows.slice(-2).map((r) => r.reason)).toEqual(['data_quality', 'fire']);
    expect(sent).toHaveLength(1);
    expect(await metric('driftline_retrain_data_quality_held_seconds')).toBe(0);
    expect(await metric('driftline_retrain_data_quality_overdue_total')).toBe(10);
    expect(seen).toHaveLength(2);
  });

  it("a model no policy lists (a typo in the policy file): one warning per hour naming it and the policy's models, not one per alert (found by a review)", async () => {
    const store = new MemoryStore();
    const { seen, logger } = warnings();
    let wall = 0;
    const trigger = triggerProcessor({
      policy, // lists `fraud` only, no '*'
      store,
      decode: () => alert(0),
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      send: async () => {},
      logger,
      registry: createMetricsRegistry({ service: 'test' }),
      now: () => wall,
    });
    const typo = (w: number) => batch([{ ...alert(w), alert_id: `t${w}`, model: 'fraud-v2' }]);
    // A day of 5-minute windows, one batch each, within an hour of wall clock.
    for (let w = 0; w < 288; w++) {
      await trigger.process(typo(w), ctx);
      wall += 10_000;
    }
    expect(store.rows.filter((r) => r.reason === 'unknown_model')).toHaveLength(288);
    expect(seen).toEqual([
      {
        obj: { model: 'fraud-v2', policyModels: ['fraud'], heldAlerts: 1 },
        msg: expect.stringMatching(/unknown_model/),
      },
    ]);
    // An hour after that line: the next one, counting the holds left out since.
    wall = 3_600_000;
    await trigger.process(typo(288), ctx);
    expect(seen.map((l) => l.obj.heldAlerts)).toEqual([1, 288]);
    // The listed model says nothing.
    await trigger.process(batch([alert(0), alert(1)]), ctx);
    expect(seen).toHaveLength(2);
  });

  it("after a restart a model's first hold can be overdue: its series is created at 0, counted OVERDUE_SERIES_SETTLE_MS later (increase() missed a series that started at 1; found by a review)", async () => {
    const store = new MemoryStore();
    const routine = (from: number, to: number) =>
      batch(
        Array.from({ length: to - from }, (_, k) => from + k).flatMap((w) => [
          ...(w % 2 === 0 ? [quality(w)] : []),
          alert(w),
        ]),
      );
    // A day of routine DATA_QUALITY: the stored state's dataQualityHold is longer than the cooldown.
    await processor(store, [], undefined, defaults).process(routine(0, 1446), ctx);
    const registry = createMetricsRegistry({ service: 'test' });
    let wall = 0;
    const restarted = triggerProcessor({
      policy: defaults,
      store,
      decode: () => alert(0),
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      send: async () => {},
      logger: silentLogger,
      registry,
      now: () => wall,
    });
    const overdue = async () =>
      (await registry.getSingleMetric('driftline_retrain_data_quality_overdue_total')?.get())?.values.find(
        (v) => v.labels.model === 'fraud',
      )?.value;
    // Windows 1446 and 1447 hold data_quality, both overdue: the series exists, at 0 (before: at 2).
    await restarted.process(routine(1446, 1448), ctx);
    expect(store.rows.slice(-2).map((r) => r.reason)).toEqual(['data_quality', 'data_quality']);
    expect(await overdue()).toBe(0);
    wall += OVERDUE_SERIES_SETTLE_MS - 1;
    await restarted.process(routine(1448, 1449), ctx);
    expect(await overdue()).toBe(0);
    // Settled: the held counts go in with the next batch, whatever its models; then at once.
    wall += 1;
    await restarted.process(batch([quality(1449)]), ctx);
    expect(await overdue()).toBe(3);
    await restarted.process(batch([alert(1449)]), ctx);
    expect(await overdue()).toBe(4);
  });

  it('a malformed stored dataQuality is dropped with one warning; the model decides on (every batch threw before; found by a review)', async () => {
    const store = new MemoryStore();
    await processor(store, [], undefined, defaults).process(batch([quality(0), alert(0)]), ctx);
    const stored = JSON.parse(store.rows[1]!.state) as Record<string, unknown>;
    expect(stored.dataQuality).toHaveLength(1);
    store.rows[1] = { ...store.rows[1]!, state: JSON.stringify({ ...stored, dataQuality: {} }) };
    const { seen, logger } = warnings();
    const trigger = triggerProcessor({
      policy: defaults,
      store,
      decode: () => alert(0),
      eventTime: DEFAULT_EVENT_TIME_BOUNDS,
      send: async () => {},
      logger,
      registry: createMetricsRegistry({ service: 'test' }),
      now: () => 0,
    });
    await trigger.process(batch([alert(1), alert(2)]), ctx);
    // Window 0's DATA_QUALITY span is forgotten (the veto fails open for it): windows 0–2 fire.
    expect(store.rows.slice(2).map((r) => r.reason)).toEqual(['sustaining', 'fire']);
    expect(seen).toEqual([
      {
        obj: { model: 'fraud', problems: ['dataQuality is not an array'] },
        msg: expect.stringMatching(/malformed data-quality field: dropped/),
      },
    ]);
    expect(JSON.parse(store.rows.at(-1)!.state)).not.toHaveProperty('dataQuality');
  });
});
