// The invariants of the chaos run, against an offline computation of what the topics hold: the
// same pure rules the services use (last-write-wins, the reference join), applied to the whole log.

import { setTimeout as sleep } from 'node:timers/promises';
import type { TopicCodec } from '@driftline/codec';
import {
  categoricalValue,
  DEFAULT_THRESHOLDS,
  featureResults,
  type MethodResult,
  numericValue,
  PREDICTED_CLASS_FEATURE,
  PREDICTION_FEATURE,
} from '@driftline/drift';
import { loadFeatureViews, offlineRow, type ValidatedEvent, validateFeatureEvent } from '@driftline/features';
import { type LogEvent, offlineJoin } from '@driftline/join';
import {
  committedOffsets,
  DLQ_HEADERS,
  type InboundRecord,
  type KafkaClient,
  listTopics,
  topicOffsets,
} from '@driftline/kafka';
import { readTopic } from '@driftline/kafka/testing';
import { windowStart } from '@driftline/performance';
import {
  deadLetterTopic,
  type FeatureEvent,
  type LabelEvent,
  type PredictionEvent,
  type RetrainRequest,
} from '@driftline/schemas';
import { createSummary } from '@driftline/stats';
import { type ClickHouse, createClickHouse, warehouseOn } from '@driftline/warehouse';
import { lookAtMerge } from './merge-look.js';
import { GHOST_MODEL, HOSTILE_KEY_PREFIX, MODEL, VIEW } from './traffic.js';

export interface Names {
  readonly prefix: string;
  readonly features: string;
  readonly predictions: string;
  readonly labels: string;
  readonly retrain: string;
  readonly partials: string;
  readonly alerts: string;
  readonly materializerGroup: string;
  readonly joinerGroup: string;
  readonly driftGroup: string;
  readonly mergeGroup: string;
  readonly retrainGroup: string;
}

export interface CheckInput {
  readonly client: KafkaClient;
  readonly codecs: {
    readonly feature: TopicCodec<FeatureEvent>;
    readonly prediction: TopicCodec<PredictionEvent>;
    readonly label: TopicCodec<LabelEvent>;
  };
  readonly retrainCodec: TopicCodec<RetrainRequest>;
  readonly names: Names;
  readonly featureApiUrl: string;
  readonly viewsFile: string;
  readonly windowMs: number;
  readonly latenessMs: number;
  /** Stops the services (nothing writes ClickHouse after it). */
  readonly stopServices: () => Promise<void>;
  /** The ClickHouse host the services wrote through. */
  readonly clickhouseUrl: string;
  /** The label-joiner's performance window (its score histograms are per window). */
  readonly joinerWindowMs: number;
  /** Score tally groups the label-joiner holds in Redis, counted or in flight (not yet acknowledged). */
  readonly scoreTalliesWaiting: () => Promise<number>;
  /** The (model, version) whose reference the drift windows are measured against. */
  readonly referenceModel: { readonly model: string; readonly version: string };
  readonly log: (line: string) => void;
}

export interface CheckResult {
  readonly invariants: Record<string, boolean>;
  readonly counts: Record<string, number>;
  readonly failures: string[];
}

interface Positioned<T> {
  readonly partition: number;
  readonly offset: bigint;
  readonly value: T;
}

async function readAll(client: KafkaClient, topic: string): Promise<InboundRecord[]> {
  const offsets = await topicOffsets(client, topic);
  const count = offsets.reduce((n, o) => n + Number(o.high - o.low), 0);
  return readTopic(client, topic, count, 120_000);
}

const header = (r: InboundRecord, name: string) => r.headers[name]?.toString('utf8');

export async function checkInvariants(input: CheckInput): Promise<CheckResult> {
  const { client, names, codecs, log } = input;
  const failures: string[] = [];
  const fail = (what: string, detail: string) => failures.push(`${what}: ${detail}`);

  // 1. What the topics hold: good events (decoded) and hostile records (by key).
  const hostile: Array<{ topic: string; partition: number; offset: bigint; kind: string }> = [];
  async function split<T>(topic: string, codec: TopicCodec<T>): Promise<Array<Positioned<T>>> {
    const good: Array<Positioned<T>> = [];
    for (const r of await readAll(client, topic)) {
      const key = r.key?.toString('utf8') ?? '';
      if (key.startsWith(HOSTILE_KEY_PREFIX)) {
        hostile.push({ topic, partition: r.partition, offset: BigInt(r.offset), kind: key.split(':')[2] ?? '?' });
      } else {
        good.push({ partition: r.partition, offset: BigInt(r.offset), value: await codec.decode(r.value) });
      }
    }
    return good;
  }
  const features = await split(names.features, codecs.feature);
  const predictions = await split(names.predictions, codecs.prediction);
  const labels = await split(names.labels, codecs.label);
  log(
    `topics: ${features.length} features, ${predictions.length} predictions, ${labels.length} labels, ${hostile.length} hostile`,
  );
  const distinctIds = new Set(predictions.map((p) => p.value.prediction_id));
  const producerDuplicates = predictions.length - distinctIds.size;

  // 2. Dead letters: exactly the hostile records, once per consuming group, each with a reason.
  const consumers: Record<string, string[]> = {
    [names.features]: [names.materializerGroup],
    [names.predictions]: [names.driftGroup, names.joinerGroup],
    [names.labels]: [names.joinerGroup],
  };
  const expected = new Set<string>();
  for (const h of hostile) {
    for (const group of consumers[h.topic] ?? []) expected.add(`${group}|${h.topic}|${h.partition}|${h.offset}`);
  }
  const existing = new Set(await listTopics(client));
  const letters: InboundRecord[] = [];
  for (const topic of [names.features, names.predictions, names.labels]) {
    const dlq = deadLetterTopic(topic);
    if (existing.has(dlq)) letters.push(...(await readAll(client, dlq)));
  }
  const actual = new Set<string>();
  let withoutReason = 0;
  let truncated = 0;
  for (const r of letters) {
    const key = [DLQ_HEADERS.group, DLQ_HEADERS.topic, DLQ_HEADERS.partition, DLQ_HEADERS.offset]
      .map((h) => header(r, h) ?? '?')
      .join('|');
    actual.add(key);
    if ((header(r, DLQ_HEADERS.reason) ?? '').length === 0) withoutReason++;
    if (header(r, DLQ_HEADERS.truncated) !== undefined) truncated++;
  }
  const missing = [...expected].filter((k) => !actual.has(k));
  const unexpected = [...actual].filter((k) => !expected.has(k));
  if (missing.length > 0) {
    const kinds = missing.map((k) => {
      const [, topic, p, o] = k.split('|');
      return hostile.find((h) => h.topic === topic && String(h.partition) === p && String(h.offset) === o)?.kind;
    });
    fail(
      'dlq_exact',
      `${missing.length} hostile records not dead-lettered (${[...new Set(kinds)].join(', ')}): ${missing.slice(0, 5).join(', ')}`,
    );
  }
  if (unexpected.length > 0)
    fail('dlq_exact', `${unexpected.length} unexpected dead letters: ${unexpected.slice(0, 5).join(', ')}`);
  if (withoutReason > 0) fail('dlq_reasons', `${withoutReason} dead letters without a reason`);
  const oversized = hostile.filter((h) => h.kind === 'oversized').length;
  if (truncated < oversized)
    fail('dlq_truncated', `${oversized} oversized records, ${truncated} truncated dead letters`);

  // 3. Online store == offline last-write-wins, read through the feature API process.
  const views = loadFeatureViews(input.viewsFile);
  const view = views.get(VIEW);
  if (view === undefined) throw new Error(`view ${VIEW} missing from ${input.viewsFile}`);
  const byEntity = new Map<string, ValidatedEvent[]>();
  for (const f of features) {
    const v = validateFeatureEvent(views, f.value);
    const list = byEntity.get(v.entity);
    if (list === undefined) byEntity.set(v.entity, [v]);
    else list.push(v);
  }
  const entities = [...byEntity.keys()].sort();
  let onlineMismatches = 0;
  const mismatchSamples: string[] = [];
  for (let i = 0; i < entities.length; i += 500) {
    const chunk = entities.slice(i, i + 500);
    const res = await fetch(`${input.featureApiUrl}/v1/features:batch`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ requests: [{ view: VIEW, entities: chunk }] }),
    });
    if (!res.ok) throw new Error(`feature API answered ${res.status}: ${await res.text()}`);
    const body = (await res.json()) as {
      results: Array<{
        rows: Array<{ entity: string; found: boolean; event_time?: number; features?: Record<string, unknown> }>;
      }>;
    };
    for (const row of body.results[0]?.rows ?? []) {
      const want = offlineRow(view, byEntity.get(row.entity) ?? []);
      const same =
        want !== undefined &&
        row.found &&
        row.event_time === want.eventTime &&
        Object.entries(want.features).every(([k, v]) => row.features?.[k] === v);
      if (!same) {
        onlineMismatches++;
        if (mismatchSamples.length < 3)
          mismatchSamples.push(`${row.entity}: got ${JSON.stringify(row)}, want ${JSON.stringify(want)}`);
      }
    }
  }
  if (onlineMismatches > 0)
    fail('online_store_equals_offline', `${onlineMismatches} rows differ: ${mismatchSamples.join('; ')}`);

  // 4. No commit pinned: every group at the end offsets; stage one may hold its open windows only.
  const pinned: string[] = [];
  const lastTimes = new Map<number, number>();
  for (const p of predictions)
    lastTimes.set(p.partition, Math.max(lastTimes.get(p.partition) ?? 0, p.value.event_time));
  const follow: Array<[string, string]> = [
    [names.materializerGroup, names.features],
    [names.joinerGroup, names.predictions],
    [names.joinerGroup, names.labels],
    [names.retrainGroup, names.alerts],
    [names.driftGroup, names.predictions],
  ];
  for (const [group, topic] of follow) {
    const committed = await committedOffsets(client, group, topic);
    for (const o of await topicOffsets(client, topic)) {
      const c = committed.get(o.partition) ?? -1n;
      if (group === names.driftGroup) {
        // Stage one holds its commit at the first record of the oldest open window: at most the
        // last two windows plus the lateness of the partition's event time may be behind it.
        const horizon = (lastTimes.get(o.partition) ?? 0) - 2 * input.windowMs - input.latenessMs;
        let firstOpen = o.high;
        for (const p of predictions) {
          if (p.partition === o.partition && p.value.event_time >= horizon && p.offset < firstOpen)
            firstOpen = p.offset;
        }
        if (c < firstOpen && c < o.high)
          pinned.push(`${group} ${topic}[${o.partition}] committed ${c}, window bound ${firstOpen}`);
      } else if (c !== o.high && o.high > 0n) {
        pinned.push(`${group} ${topic}[${o.partition}] committed ${c} of ${o.high}`);
      }
    }
  }
  // The merge holds its commit at the first record of a window a source has not reported yet, and
  // stage one's source idleness announces a window, from every source, every window length for as
  // long as the services run: committed == end only between two announcements (a run failed on
  // `committed 25 of 26` each partition, one source's marker read before the others came). Pinned:
  // held at a window every source reported, on every look for a few seconds (a look may come between
  // the last marker's write and the merge's batch).
  let mergePinned: string[] = [];
  for (const deadline = Date.now() + 15_000; ; ) {
    const { pinned: found, held } = await lookAtMerge(client, names.mergeGroup, names.partials);
    mergePinned = found;
    if (mergePinned.length === 0) {
      if (held.length > 0) log(`merge: held on purpose: ${held.join('; ')}`);
      break;
    }
    if (Date.now() >= deadline) break;
    await sleep(1_000);
  }
  pinned.push(...mergePinned);
  if (pinned.length > 0) fail('no_commit_pinned', pinned.join('; '));

  // 5. Retrain requests on the topic (their request ids).
  const requests = existing.has(names.retrain) ? await readAll(client, names.retrain) : [];
  const requestIds: string[] = [];
  for (const r of requests) requestIds.push((await input.retrainCodec.decode(r.value)).request_id);

  // The joiner's score tallies reach ClickHouse on its recompute loop, after the drain: wait for them.
  let talliesWaiting = await input.scoreTalliesWaiting();
  for (const deadline = Date.now() + 60_000; talliesWaiting > 0 && Date.now() < deadline; ) {
    await sleep(500);
    talliesWaiting = await input.scoreTalliesWaiting();
  }

  // The ClickHouse side: the services stop (cleanly), then the host is read like any server.
  // The drift windows checked in 7: every window closed on every partition.
  // A producer's re-send in its window is summarized once (the drift monitor's
  // DRIFTLINE_DRIFT_RECENT_IDS, far above this run's records): the first copy per (model, version,
  // window, prediction id) counts, as there.
  const firstCopies = new Set<string>();
  const driftPredictions = predictions.filter(({ value: e }) => {
    if (e.prediction_id === '') return true;
    const key = JSON.stringify([e.model, e.model_version, Math.floor(e.event_time / input.windowMs), e.prediction_id]);
    if (firstCopies.has(key)) return false;
    firstCopies.add(key);
    return true;
  });
  const perWindow = new Map<number, number>();
  for (const p of driftPredictions) {
    const w = Math.floor(p.value.event_time / input.windowMs) * input.windowMs;
    perWindow.set(w, (perWindow.get(w) ?? 0) + 1);
  }
  const closedBefore = Math.min(...[...lastTimes.values()]) - input.latenessMs - 1000;
  const complete = [...perWindow.keys()].filter((w) => w + input.windowMs <= closedBefore).sort((a, b) => a - b);

  // Stage one and the merge caught up with those windows before the services stop. The drain
  // (run.ts) follows the merge's lag, not stage one's (its commit stays at its open windows): a
  // stage one still catching up (rejoining after a broker restart near the traffic's end) had sent
  // no partials of the last complete window when the drain found everything quiet. Its frontier in
  // drift_progress (`position`: closed until) says which windows it has closed and sent.
  const ch = await createClickHouse({
    mode: 'server',
    url: input.clickhouseUrl,
    database: 'driftline',
    timeoutMs: 60_000,
  });
  const lastCompleteEnd = complete.length === 0 ? 0 : complete[complete.length - 1]! + input.windowMs;
  const settle = await untilDriftSettled(ch, client, names, [...lastTimes.keys()], lastCompleteEnd, log);

  await input.stopServices();

  // 6. labeled_predictions (FINAL) == the offline join: no loss, no duplicate, no stolen label.
  const log_: LogEvent[] = [
    ...predictions.map((p) => ({
      type: 'prediction' as const,
      id: p.value.prediction_id,
      eventTime: p.value.event_time,
    })),
    ...labels
      .filter((l) => l.value.model === MODEL)
      .map((l) => ({
        type: 'label' as const,
        id: l.value.prediction_id,
        eventTime: l.value.event_time,
        label: l.value.label,
      })),
  ];
  const join = offlineJoin(log_, 7 * 86_400_000);
  const rows = await ch.select<{ model: string; prediction_id: string; label: number; n: number }>(
    `SELECT model, prediction_id, any(label) AS label, count() AS n FROM ${ch.table('labeled_predictions')} FINAL
     WHERE model IN ({model:String}, {ghost:String}) GROUP BY model, prediction_id`,
    { model: MODEL, ghost: GHOST_MODEL },
  );
  let duplicated = 0;
  let wrong = 0;
  let extra = 0;
  const seen = new Set<string>();
  for (const r of rows) {
    duplicated += Number(r.n) - 1;
    const want = r.model === MODEL ? join.joined.get(r.prediction_id) : undefined;
    if (want === undefined) extra++;
    else if (want.label !== Number(r.label)) wrong++;
    else seen.add(r.prediction_id);
  }
  const lost = [...join.joined.keys()].filter((id) => !seen.has(id)).length;
  if (lost > 0) fail('labeled_equals_offline_join', `${lost} joined predictions missing from labeled_predictions`);
  if (duplicated > 0) fail('labeled_no_duplicate', `${duplicated} duplicate rows under FINAL`);
  if (extra > 0 || wrong > 0)
    fail(
      'labeled_equals_offline_join',
      `${extra} rows not in the offline join (stolen or unknown), ${wrong} with the wrong label`,
    );

  // 6b. CBPE score histograms: every distinct prediction counted once per window, through kills of
  // the joiner, of Redis and of ClickHouse (tallied in the join's Lua step, flushed with fixed ids).
  const wantScores = new Map<string, number>();
  const tallied = new Set<string>();
  for (const { value: e } of predictions) {
    if (e.model !== MODEL || e.role === 'shadow' || tallied.has(e.prediction_id)) continue;
    tallied.add(e.prediction_id);
    const key = `${e.model_version}|${windowStart(e.event_time, input.joinerWindowMs)}`;
    wantScores.set(key, (wantScores.get(key) ?? 0) + 1);
  }
  // Through the store: both score_histograms tables (0610's and _v2), each flush once.
  const gotScores = new Map<string, number>();
  for (const t of await warehouseOn(ch).estimates.scoreTotals(MODEL)) {
    const key = `${t.modelVersion}|${t.windowStart}`;
    gotScores.set(key, (gotScores.get(key) ?? 0) + t.count);
  }
  let scoresMissing = 0;
  let scoresExtra = 0;
  for (const key of new Set([...wantScores.keys(), ...gotScores.keys()])) {
    const d = (gotScores.get(key) ?? 0) - (wantScores.get(key) ?? 0);
    if (d < 0) scoresMissing -= d;
    else scoresExtra += d;
  }
  const scoresExact = scoresMissing === 0 && scoresExtra === 0 && talliesWaiting === 0 && tallied.size > 0;
  if (!scoresExact) {
    fail(
      'score_histograms_exact',
      `${scoresMissing} scores missing, ${scoresExtra} counted twice or unknown, ` +
        `${talliesWaiting} tally groups still in Redis, ${tallied.size} predictions`,
    );
  }

  // 7. drift_windows == the offline windows of the predictions (`complete`, above).
  const windows = await ch.select<{
    feature: string;
    method: string;
    start: number;
    events: number;
    late: number;
    n: number;
  }>(
    `SELECT feature, method, toUnixTimestamp64Milli(window_start) AS start, any(events) AS events,
            any(late_events) AS late, count() AS n
     FROM ${ch.table('drift_windows')} FINAL WHERE model = {model:String} GROUP BY feature, method, start`,
    { model: MODEL },
  );
  const driftProblems: string[] = [...settle.behind];
  for (const w of complete) {
    const got = windows.filter((r) => Number(r.start) === w);
    for (const feature of ['amount', 'country']) {
      const rowsOf = got.filter((r) => r.feature === feature);
      if (rowsOf.length === 0) driftProblems.push(`${new Date(w).toISOString()} ${feature}: no row`);
      for (const r of rowsOf) {
        if (Number(r.events) !== perWindow.get(w)) {
          driftProblems.push(
            `${new Date(w).toISOString()} ${feature}/${r.method}: ${r.events} events, offline ${perWindow.get(w)}`,
          );
        }
      }
    }
  }
  for (const r of windows) {
    if (Number(r.n) > 1) driftProblems.push(`${r.feature}/${r.method}@${r.start}: ${r.n} rows under FINAL`);
    if (Number(r.late) > 0) driftProblems.push(`${r.feature}/${r.method}@${r.start}: ${r.late} late events`);
  }
  if (driftProblems.length > 0) {
    fail('drift_windows_equal_offline', `${driftProblems.length} problems: ${driftProblems.slice(0, 5).join('; ')}`);
    // What a missing window needs to be told apart: how far each stage got, and what each window
    // holds (in the failures: the test prints them, its log is silent unless CHAOS_VERBOSE=1).
    const diagnostics = [
      `complete windows ${complete.map((w) => `${w} (${perWindow.get(w)} events)`).join(', ')}; closed before ${closedBefore}`,
    ];
    try {
      const progress = await ch.select<Record<string, unknown>>(
        `SELECT stage, group_id, topic, partition, position, offset, late_from, toString(updated_at) AS updated
         FROM ${ch.table('drift_progress')} FINAL ORDER BY stage, topic, partition`,
      );
      diagnostics.push(`drift_progress: ${progress.map((r) => JSON.stringify(r)).join(' ')}`);
      const written = await ch.select<Record<string, unknown>>(
        `SELECT toUnixTimestamp64Milli(window_start) AS start, toUnixTimestamp64Milli(window_end) AS end,
                count() AS rows, groupUniqArray(events) AS events, any(source_partitions) AS sources,
                any(idle_partitions) AS idle, toString(max(computed_at)) AS computed
         FROM ${ch.table('drift_windows')} FINAL WHERE model = {model:String} GROUP BY start, end ORDER BY start`,
        { model: MODEL },
      );
      diagnostics.push(`drift_windows: ${written.map((r) => JSON.stringify(r)).join(' ')}`);
    } catch (error) {
      diagnostics.push(`(diagnostics failed: ${String(error)})`);
    }
    fail('drift_windows_equal_offline (diagnostics)', diagnostics.join(' | '));
  }
  const statistics = await checkDriftStatistics(ch, input, driftPredictions, complete);
  if (statistics.problems.length > 0) {
    fail(
      'drift_statistics_equal_fault_free',
      `${statistics.problems.length} problems: ${statistics.problems.slice(0, 5).join('; ')}`,
    );
  }
  const quarantined = await ch.select<{ n: number }>(`SELECT count() AS n FROM ${ch.table('drift_quarantine')}`);
  const quarantinedWindows = Number(quarantined[0]?.n ?? 0);
  if (quarantinedWindows > 0) fail('no_window_quarantined', `${quarantinedWindows} drift windows quarantined`);

  // 8. One retrain request per fired decision.
  const decisions = await ch.select<{ request_id: string }>(
    `SELECT request_id FROM ${ch.table('retrain_decisions')} FINAL WHERE model = {model:String} AND fired = 1`,
    { model: MODEL },
  );
  const decided = new Set(decisions.map((d) => d.request_id));
  const distinctRequests = new Set(requestIds);
  const retrainOk =
    decided.size === decisions.length &&
    decided.size === distinctRequests.size &&
    [...decided].every((id) => distinctRequests.has(id));
  if (!retrainOk) {
    fail(
      'one_retrain_request_per_decision',
      `${decisions.length} fired decisions (${decided.size} ids), ${requestIds.length} requests (${distinctRequests.size} distinct)`,
    );
  }
  await ch.close();

  return {
    invariants: {
      online_store_equals_offline: onlineMismatches === 0,
      labeled_equals_offline_join: lost === 0 && extra === 0 && wrong === 0,
      labeled_no_duplicate: duplicated === 0,
      score_histograms_exact: scoresExact,
      drift_windows_equal_offline: driftProblems.length === 0 && complete.length > 0,
      drift_statistics_equal_fault_free: statistics.problems.length === 0 && statistics.compared > 0,
      no_window_quarantined: quarantinedWindows === 0,
      dlq_exact: missing.length === 0 && unexpected.length === 0,
      dlq_reasons: withoutReason === 0,
      dlq_truncated: truncated >= oversized,
      one_retrain_request_per_decision: retrainOk,
      no_commit_pinned: pinned.length === 0,
    },
    counts: {
      lost,
      duplicated,
      dlq_expected: expected.size,
      dlq_actual: actual.size,
      dlq_duplicates: letters.length - actual.size,
      dlq_truncated: truncated,
      producer_duplicates: producerDuplicates,
      online_rows_checked: entities.length,
      labeled_rows: rows.length,
      scores_checked: tallied.size,
      scores_missing: scoresMissing,
      scores_extra: scoresExtra,
      drift_windows_checked: complete.length,
      drift_settle_seconds: settle.waitedSeconds,
      drift_statistics_compared: statistics.compared,
      drift_statistics_max_abs_diff: statistics.maxAbsDiff,
      retrain_decisions: decisions.length,
      retrain_requests: requestIds.length,
    },
    failures,
  };
}

/** Relative tolerance of a statistic or p-value against the fault-free computation (see README). */
const STATISTIC_TOLERANCE = 1e-9;

/**
 * The statistics of every complete window (PSI, KS, chi-square, … per feature, all methods the
 * merge writes) against a fault-free computation of the same events: one pass of the pure libs
 * (`createSummary`, `featureResults`) over all predictions of the window, no partitions, no
 * partials, no merge, no restarts. Summaries merge exactly, so the pipeline — partials from two
 * instances across kills and rebalances, merged after outages — must match to float rounding.
 */
async function checkDriftStatistics(
  ch: ClickHouse,
  input: CheckInput,
  predictions: ReadonlyArray<Positioned<PredictionEvent>>,
  complete: readonly number[],
): Promise<{ compared: number; maxAbsDiff: number; problems: string[] }> {
  const problems: string[] = [];
  const { model, version } = input.referenceModel;
  const ref = await warehouseOn(ch).references.latest(model, version);
  if (ref === undefined) return { compared: 0, maxAbsDiff: 0, problems: [`no reference of ${model}/${version}`] };
  const rows = await ch.select<{
    feature: string;
    method: string;
    start: number;
    statistic: number | null;
    p_value: number | null;
    drifted: number;
  }>(
    `SELECT feature, method, toUnixTimestamp64Milli(window_start) AS start, statistic, p_value, drifted
     FROM ${ch.table('drift_windows')} FINAL WHERE model = {model:String} AND version = {version:String}`,
    { model, version },
  );
  const byKey = new Map(rows.map((r) => [`${Number(r.start)}|${r.feature}|${r.method}`, r]));
  const wanted = new Set(complete);
  const summaries = new Map<number, ReturnType<typeof createSummary>[]>();
  for (const { value: e } of predictions) {
    const w = Math.floor(e.event_time / input.windowMs) * input.windowMs;
    if (!wanted.has(w) || e.model !== model || e.model_version !== version) continue;
    let list = summaries.get(w);
    if (list === undefined) {
      list = ref.profiles.map((p) => createSummary(p));
      summaries.set(w, list);
    }
    ref.features.forEach((f, i) => {
      const raw =
        f === PREDICTION_FEATURE
          ? e.prediction
          : f === PREDICTED_CLASS_FEATURE
            ? (e.predicted_class ?? null)
            : e.features[f];
      const summary = list[i]!;
      if (summary.kind === 'numeric') summary.add(numericValue(raw));
      else summary.add(categoricalValue(raw));
    });
  }
  let compared = 0;
  let maxAbsDiff = 0;
  const close = (got: number | null, want: number | null): boolean => {
    if (want === null || !Number.isFinite(want)) return got === null;
    if (got === null) return false;
    const diff = Math.abs(got - want);
    maxAbsDiff = Math.max(maxAbsDiff, diff);
    return diff <= STATISTIC_TOLERANCE * Math.max(1, Math.abs(want));
  };
  for (const [w, list] of summaries) {
    const expected: MethodResult[] = ref.features.flatMap((f, i) =>
      featureResults(f, ref.profiles[i]!, list[i]!, DEFAULT_THRESHOLDS),
    );
    for (const r of expected) {
      const at = `${new Date(w).toISOString()} ${r.feature}/${r.method}`;
      const row = byKey.get(`${w}|${r.feature}|${r.method}`);
      if (row === undefined) {
        problems.push(`${at}: no row`);
        continue;
      }
      compared++;
      if (!close(row.statistic, r.statistic))
        problems.push(`${at}: statistic ${row.statistic}, fault-free ${r.statistic}`);
      if (!close(row.p_value, r.pValue)) problems.push(`${at}: p-value ${row.p_value}, fault-free ${r.pValue}`);
      if (Number(row.drifted) !== (r.drifted ? 1 : 0))
        problems.push(`${at}: drifted ${row.drifted}, fault-free ${r.drifted}`);
    }
  }
  return { compared, maxAbsDiff, problems };
}

/** How long stage one and the merge get to catch up after the drain (run.ts waits 180 s for it). */
const SETTLE_TIMEOUT_MS = 120_000;

/**
 * Waits until stage one's frontier (drift_progress, per partition of the predictions) reaches
 * `closedUntil` on every partition and then the merge has completed every window all sources
 * reported (lookAtMerge: nothing pinned): the windows before `closedUntil` are then written. Returns what was still behind at the deadline (empty:
 * settled); a wait of more than a second is logged with what it waited for.
 */
async function untilDriftSettled(
  ch: ClickHouse,
  client: KafkaClient,
  names: Names,
  partitions: readonly number[],
  closedUntil: number,
  log: (line: string) => void,
): Promise<{ behind: string[]; waitedSeconds: number }> {
  const began = Date.now();
  const deadline = began + SETTLE_TIMEOUT_MS;
  let behind: string[] = [];
  let firstBehind: string[] | undefined;
  for (;;) {
    const frontier = await ch.select<{ partition: number; position: number }>(
      `SELECT partition, max(position) AS position FROM ${ch.table('drift_progress')} FINAL
       WHERE stage = 'stage1' AND group_id = {group:String} AND topic = {topic:String} GROUP BY partition`,
      { group: names.driftGroup, topic: names.predictions },
    );
    const closed = new Map(frontier.map((r) => [Number(r.partition), Number(r.position)]));
    behind = partitions
      .filter((p) => (closed.get(p) ?? 0) < closedUntil)
      .map(
        (p) => `stage one ${names.predictions}[${p}] closed until ${closed.get(p) ?? 'nothing'}, wanted ${closedUntil}`,
      );
    // Then the merge: nothing pinned (a window every source reported and the merge did not complete).
    if (behind.length === 0) behind = (await lookAtMerge(client, names.mergeGroup, names.partials)).pinned;
    if (behind.length === 0 || Date.now() >= deadline) break;
    firstBehind ??= behind;
    await sleep(500);
  }
  if (firstBehind !== undefined) {
    const waited = ((Date.now() - began) / 1000).toFixed(1);
    log(
      `drift: waited ${waited} s after the drain for ${firstBehind.join('; ')}${behind.length === 0 ? '' : ` — still behind: ${behind.join('; ')}`}`,
    );
  }
  return {
    behind: behind.map((b) => `not settled ${SETTLE_TIMEOUT_MS / 1000} s after the drain: ${b}`),
    waitedSeconds: firstBehind === undefined ? 0 : Math.round((Date.now() - began) / 100) / 10,
  };
}
