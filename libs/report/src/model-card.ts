import { createHash } from 'node:crypto';
// A model card per version: where it came from (lineage), what it learned on, how it did offline
// against the version it challenged, how it does live, and every stage it went through with the
// evidence. Pure: data in (read by @driftline/warehouse), HTML or text out.
import { MAX_DATE_MS } from '@driftline/core';
import { MAX_REPORT_FEATURES } from './bounds.js';
import { CSP, STYLE } from './html.js';
import { SAMPLED_EXPLANATION } from './sampled.js';
import { bdi, escapeHtml, isolate } from './svg.js';
import type { EpochMs } from './types.js';

/** The trainer's record of the version (model_versions); absent for a version driftline did not train. */
export interface ModelCardTraining {
  readonly requestId: string;
  /** The version serving when the retrain was requested: the one this version challenged. */
  readonly challenged: string;
  readonly status: string;
  readonly reason: string;
  readonly dataFrom: EpochMs;
  readonly dataTo: EpochMs;
  readonly rowsTrain: number;
  readonly rowsHoldout: number;
  readonly device: string;
  readonly deviceReason: string;
  /**
   * Held-out metrics: the candidate's (`roc_auc`) and the challenged version's on the same slice
   * (`current_roc_auc`); null for a value stored as NaN or ±Inf.
   */
  readonly metrics: Readonly<Record<string, number | null>>;
  readonly params: string;
  readonly artifactUri: string;
  readonly referenceId: string | null;
  readonly referenceUri: string | null;
  readonly registeredAt: EpochMs;
}

/** One stage transition (model_transitions). */
export interface ModelCardTransition {
  readonly at: EpochMs;
  readonly from: string;
  readonly to: string;
  readonly decidedBy: string;
  readonly reason: string;
  readonly detail: string;
  /** JSON text of the decision's evidence, or ''. */
  readonly evidence: string;
}

/** Live metrics of the version from performance_windows, over the card's range. */
export interface ModelCardLive {
  /** '' = overall; otherwise the segment feature. */
  readonly segmentFeature: string;
  readonly segment: string;
  readonly windows: number;
  readonly predictions: number;
  readonly labeled: number;
  /**
   * Metric → its value over the windows that have it, pooled by their labels: accuracy, log loss,
   * Brier and MAE as the label-weighted mean (the pooled value), RMSE as √(Σ rmse²·labels / Σ labels)
   * (the pooled value); ROC AUC and F1 as the label-weighted mean of the windows' values, which is
   * not the pooled value (shown as "mean of windows": {@link WINDOW_MEAN_METRICS}).
   */
  readonly metrics: Readonly<Record<string, number | null>>;
  /**
   * Of `windows`, those read as a sample (`performance_windows.sampled_labels` > 0: more labels than
   * the label-joiner's DRIFTLINE_JOINER_MAX_WINDOW_ROWS): how many, the labels their metrics came
   * from and the labels they held. Absent or no windows: every window computed from all its labels.
   */
  readonly sampled?: { readonly windows: number; readonly labels: number; readonly of: number };
}

/** "k sampled: N of M labels" for a live row with sampled windows, else undefined. */
function sampledText(l: ModelCardLive): string | undefined {
  const s = l.sampled;
  return s === undefined || s.windows <= 0 ? undefined : `${s.windows} sampled: ${s.labels} of ${s.of} labels`;
}

/** Drift of the challenged version over the training data's range: why the retrain happened. */
export interface ModelCardDrift {
  readonly feature: string;
  readonly method: string;
  readonly windows: number;
  readonly drifted: number;
  /** Null when no window has a finite statistic. */
  readonly maxStatistic: number | null;
}

/** The retrain decision that requested this version (retrain_decisions). */
export interface ModelCardDecision {
  readonly decidedAt: EpochMs;
  readonly reason: string;
  readonly detail: string;
  readonly signals: readonly string[];
  readonly alertKind: string;
}

export interface ModelCardData {
  readonly model: string;
  readonly version: string;
  readonly generatedAt: EpochMs;
  readonly training: ModelCardTraining | undefined;
  /**
   * The version's input features (its reference profile, else its trained meta), sorted; the card
   * shows the first MAX_REPORT_FEATURES.
   */
  readonly features: readonly string[];
  /** How many input features the version has, when `features` holds only the first of them (the reader's cap). */
  readonly featureCount?: number;
  readonly decision: ModelCardDecision | undefined;
  readonly reference: { readonly id: string; readonly createdAt: EpochMs; readonly features: number } | undefined;
  readonly transitions: readonly ModelCardTransition[];
  /** Overall first, then per segment feature its most labelled segments (the reader's cap per feature). */
  readonly live: readonly ModelCardLive[];
  /** How many live rows (overall and segments) there are, when `live` holds only some of them (the reader's cap). */
  readonly liveCount?: number;
  /** Most drifted first; the card shows the first MAX_REPORT_FEATURES rows. */
  readonly trainingDrift: readonly ModelCardDrift[];
  /** How many (feature, method) rows there are, when `trainingDrift` holds only the first (the reader's cap). */
  readonly trainingDriftCount?: number;
  /**
   * The stage now, as the report reads production: `production`, `replaced by vN` (it served; vN
   * serves now), its last stage in the model-controller's view, or what the trainer's record says.
   */
  readonly stage: string;
  readonly notes: readonly string[];
}

/**
 * The first MAX_REPORT_FEATURES of `items` and how many more there are (`total`: the count before
 * a reader's cap): 100,000 features made a 60.8 MB card and a 2.3 MB line of text.
 */
function capped<T>(items: readonly T[], total: number | undefined): { shown: readonly T[]; more: number } {
  const shown = items.slice(0, MAX_REPORT_FEATURES);
  return { shown, more: Math.max(total ?? 0, items.length) - shown.length };
}

const iso = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('.000Z', 'Z');
/**
 * A metric or an evidence value: whole numbers as they are; below 1, `digits` significant digits
 * (a fixed number of decimals showed an evidence alpha of 1e-7 and an MAE of 4e-5 as 0); from 1
 * on, `digits` decimals; trailing zeros dropped. NaN, ±Inf and missing values are "—".
 */
function fmt(x: number | null | undefined, digits = 4): string {
  if (x === null || x === undefined || !Number.isFinite(x)) return '—';
  if (Number.isInteger(x)) return String(x);
  return Number(Math.abs(x) < 1 ? x.toPrecision(digits) : x.toFixed(digits)).toString();
}

const LIVE_METRICS = ['roc_auc', 'accuracy', 'f1', 'log_loss', 'brier', 'mae', 'rmse'] as const;

/** Live metrics the card can only average over windows (their pooled value needs the predictions). */
const WINDOW_MEAN_METRICS: ReadonlySet<string> = new Set(['roc_auc', 'f1']);
const liveMetricLabel = (m: string) => (WINDOW_MEAN_METRICS.has(m) ? `${m} (mean of windows)` : m);

/** Offline metric pairs: the candidate's value and the challenged version's on the same held-out slice. */
export function offlineComparison(
  metrics: Readonly<Record<string, number | null>>,
): Array<{ metric: string; candidate: number | null; challenged: number | null }> {
  return Object.keys(metrics)
    .filter((k) => !k.startsWith('current_'))
    .sort()
    .map((metric) => ({ metric, candidate: metrics[metric]!, challenged: metrics[`current_${metric}`] ?? null }));
}

/**
 * Evidence keys whose value is an event time (epoch ms): shown as a time, not a 13-digit number.
 * `serving_from`: from when a canary or new production could serve (libs/policy's SERVING_FROM).
 */
const EVIDENCE_TIMES: ReadonlySet<string> = new Set(['serving_from']);

/** Evidence JSON as short `key: value` lines (nested objects stay JSON); malformed text shown as is. */
function evidenceLines(text: string): string[] {
  if (text === '') return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return [text];
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) return [text];
  return Object.entries(parsed as Record<string, unknown>).map(
    ([k, v]) =>
      `${k}: ${
        typeof v === 'number'
          ? EVIDENCE_TIMES.has(k) && Number.isSafeInteger(v) && v >= 0 && v <= MAX_DATE_MS
            ? iso(v)
            : fmt(v, 6)
          : typeof v === 'string'
            ? v
            : JSON.stringify(v)
      }`,
  );
}

/**
 * A line of the text card as a terminal shows it: control characters (a newline in an operator's
 * reason, an escape sequence) written as \uXXXX, so no field can pose as another line.
 */
function printable(line: string): string {
  let out = '';
  for (const ch of line) {
    const c = ch.codePointAt(0) ?? 0;
    out += c < 0x20 || c === 0x7f ? `\\u${c.toString(16).padStart(4, '0')}` : ch;
  }
  return out;
}

/** The card as plain text (the command's stdout). */
export function renderModelCardText(card: ModelCardData): string {
  const out: string[] = [`model card: ${card.model} ${card.version} (stage: ${card.stage})`];
  const t = card.training;
  if (t === undefined) out.push('training: no trainer record (registered outside driftline)');
  else {
    out.push(
      `training: ${t.rowsTrain} rows (+${t.rowsHoldout} held out) of [${iso(t.dataFrom)}, ${iso(t.dataTo)}) on ${t.device} (${t.deviceReason})`,
      `challenged: ${t.challenged} · offline gate: ${t.status} (${t.reason})`,
    );
    for (const m of offlineComparison(t.metrics)) {
      out.push(`  ${m.metric}: ${fmt(m.candidate)} vs ${fmt(m.challenged)} (${t.challenged})`);
    }
  }
  const features = capped(card.features, card.featureCount);
  const featureCount = features.shown.length + features.more;
  out.push(
    `features (${featureCount}): ${features.shown.join(', ') || '—'}${features.more > 0 ? `, … ${features.more} more not shown` : ''}`,
  );
  const overall = card.live.find((l) => l.segmentFeature === '');
  const overallSampled = overall === undefined ? undefined : sampledText(overall);
  out.push(
    overall === undefined
      ? 'live: no labelled windows yet'
      : `live: ${overall.labeled} labelled of ${overall.predictions} predictions in ${overall.windows} windows${overallSampled === undefined ? '' : ` (${overallSampled})`} · ${LIVE_METRICS.filter(
          (m) => overall.metrics[m] !== undefined && overall.metrics[m] !== null,
        )
          .map((m) => `${m} ${fmt(overall.metrics[m])}${WINDOW_MEAN_METRICS.has(m) ? ' (mean of windows)' : ''}`)
          .join(', ')}`,
  );
  if (overallSampled !== undefined) out.push(`  ${SAMPLED_EXPLANATION}`);
  out.push(`stages (${card.transitions.length}):`);
  for (const s of card.transitions) {
    out.push(
      `  ${iso(s.at)} ${s.from} → ${s.to} by ${s.decidedBy}: ${s.reason}${s.detail === '' ? '' : ` — ${s.detail}`}`,
    );
  }
  if (t !== undefined) {
    out.push(
      `lineage: retrain request ${t.requestId}${card.decision === undefined ? '' : ` (decided ${iso(card.decision.decidedAt)}: ${card.decision.reason})`}, reference ${t.referenceId ?? '—'}, artifact ${t.artifactUri}`,
    );
  }
  for (const n of card.notes) out.push(`note: ${n}`);
  return `${out.map(printable).join('\n')}\n`;
}

/** A table of HTML cells, head and body (escaped by the caller: `text` for text, `bdi` for names from events). */
const table = (head: readonly string[], rows: readonly (readonly string[])[], numeric: ReadonlySet<number>) =>
  `<table><thead><tr>${head.map((h) => `<th>${h}</th>`).join('')}</tr></thead><tbody>${rows
    .map((r) => `<tr>${r.map((c, i) => `<td${numeric.has(i) ? ' class="num"' : ''}>${c}</td>`).join('')}</tr>`)
    .join('')}</tbody></table>`;

const moreNote = (more: number, what: string) =>
  more > 0 ? `<p class="no-data">${more} more ${escapeHtml(what)} not shown</p>` : '';
const section = (title: string, body: string) => `<section><h2>${escapeHtml(title)}</h2>${body}</section>`;
const none = (what: string) => `<p class="no-data">${escapeHtml(what)}</p>`;
const text = escapeHtml;

/** A live row's windows, and how many of them were sampled (of how many labels) when some were. */
function sampledCell(l: ModelCardLive): string {
  const s = sampledText(l);
  return s === undefined ? String(l.windows) : `${l.windows} <span class="tag sampled">${text(s)}</span>`;
}

/** The card as one self-contained HTML page (no network, the report's CSP), in the report's style. */
export function renderModelCard(card: ModelCardData): string {
  const t = card.training;
  const features = capped(card.features, card.featureCount);
  const featureCount = features.shown.length + features.more;
  const trainingDrift = capped(card.trainingDrift, card.trainingDriftCount);
  const facts: Array<[string, string]> = [
    ['stage', bdi(card.stage)],
    ['training rows', t === undefined ? '—' : `${t.rowsTrain} (+${t.rowsHoldout} held out)`],
    ['device', t === undefined ? '—' : bdi(t.device)],
    ['challenged', t === undefined ? '—' : bdi(t.challenged)],
    ['features', String(featureCount)],
  ];
  const cards = `<div class="cards">${facts.map(([k, v]) => `<div class="card">${text(k)}<b>${v}</b></div>`).join('')}</div>`;
  const training =
    t === undefined
      ? none('no trainer record: this version was registered outside driftline')
      : `<p>Trained on ${t.rowsTrain} labelled predictions of [${text(iso(t.dataFrom))}, ${text(iso(t.dataTo))}), ${t.rowsHoldout} held out, on ${bdi(t.device)} (${bdi(t.deviceReason)}). Offline gate: <span class="tag ${text(t.status)}">${bdi(t.status)}</span> ${bdi(t.reason)}</p>${table(
          ['metric (held out)', bdi(card.version), `${bdi(t.challenged)} (challenged)`],
          offlineComparison(t.metrics).map((m) => [bdi(m.metric), fmt(m.candidate), fmt(m.challenged)]),
          new Set([1, 2]),
        )}<p>Parameters: <code>${bdi(t.params)}</code></p>`;
  const live =
    card.live.length === 0
      ? none('no labelled windows for this version yet')
      : table(
          ['segment', 'windows', 'predictions', 'labelled', ...LIVE_METRICS.map((m) => text(liveMetricLabel(m)))],
          card.live.map((l) => [
            l.segmentFeature === '' ? 'overall' : `${bdi(l.segmentFeature)} = ${bdi(l.segment)}`,
            sampledCell(l),
            String(l.predictions),
            String(l.labeled),
            ...LIVE_METRICS.map((m) => fmt(l.metrics[m])),
          ]),
          new Set([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]),
        ) +
        moreNote((card.liveCount ?? 0) - card.live.length, 'segments (the least labelled of their segment feature)') +
        (card.live.some((l) => sampledText(l) !== undefined) ? none(SAMPLED_EXPLANATION) : '');
  const drift =
    trainingDrift.shown.length === 0
      ? none('no drift windows of the challenged version over the training range')
      : table(
          ['feature', 'method', 'windows', 'drifted', 'max statistic'],
          trainingDrift.shown.map((d) => [
            bdi(d.feature),
            text(d.method),
            String(d.windows),
            String(d.drifted),
            fmt(d.maxStatistic),
          ]),
          new Set([2, 3, 4]),
        ) + moreNote(trainingDrift.more, 'features · methods (the least drifted)');
  const stages =
    card.transitions.length === 0
      ? none('no stage transitions recorded')
      : table(
          ['time', 'from', 'to', 'decided by', 'reason', 'evidence'],
          card.transitions.map((s) => [
            text(iso(s.at)),
            bdi(s.from),
            bdi(s.to),
            bdi(s.decidedBy),
            s.detail === '' ? bdi(s.reason) : `${bdi(s.reason)}: ${bdi(s.detail)}`,
            evidenceLines(s.evidence).map(bdi).join(' · '),
          ]),
          new Set(),
        );
  const lineageRows: Array<[string, string]> = [];
  if (t !== undefined) {
    lineageRows.push(['retrain request', bdi(t.requestId)]);
    if (card.decision !== undefined) {
      const c = card.decision;
      lineageRows.push([
        'decision',
        `${text(iso(c.decidedAt))} ${bdi(c.reason)} on ${bdi(c.alertKind)} (${c.signals.map(bdi).join(', ')}) ${bdi(c.detail)}`,
      ]);
    }
    lineageRows.push(
      ['artifact', bdi(t.artifactUri)],
      ['reference uri', t.referenceUri === null ? '—' : bdi(t.referenceUri)],
    );
  }
  if (card.reference !== undefined) {
    lineageRows.push([
      'reference profile',
      `${bdi(card.reference.id)} (${card.reference.features} features, stored ${text(iso(card.reference.createdAt))})`,
    ]);
  }
  const lineage =
    lineageRows.length === 0
      ? none('no lineage recorded')
      : table(
          ['', ''],
          lineageRows.map(([k, v]) => [text(k), v]),
          new Set(),
        );
  const notes =
    card.notes.length === 0
      ? ''
      : `<div class="notes">${card.notes.map((n) => `<div>${text(n)}</div>`).join('')}</div>`;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="${CSP}">
<title>${text(`${isolate(card.model)} ${isolate(card.version)} — model card`)}</title>
<style>${STYLE}</style></head>
<body><header><h1>${bdi(card.model)} ${bdi(card.version)} — model card</h1><p>generated ${text(iso(card.generatedAt))}</p></header>
<main>${notes}${cards}
${section('Training data and offline evaluation', training)}
${section(`Features (${featureCount})`, features.shown.length === 0 ? none('unknown') : `<p>${features.shown.map((f) => `<span class="tag">${bdi(f)}</span>`).join(' ')}</p>${moreNote(features.more, 'features')}`)}
${section('Live performance (labelled predictions)', live)}
${section('Drift at training time (challenged version)', drift)}
${section('Stage history', stages)}
${section('Lineage', lineage)}
</main></body></html>
`;
}

/** Longest card file name made of the names themselves (file systems take 255 bytes). */
const MAX_READABLE_FILE_NAME = 200;

/**
 * The file name of a version's card, as the report links it (beside the report): the names,
 * percent-encoded, or, when that is too long for a file system (names take up to 256 characters
 * each, percent-encoding triples non-ASCII bytes), a hash of them. A longer name made writing the
 * card fail with ENAMETOOLONG, and with it the whole report. A `-` inside a name is encoded too
 * (`%2D`), so the `-` between model and version is the only one: `a` + `b-c` and `a-b` + `c` were
 * both model-card-a-b-c.html, one card written over the other (found by a review).
 */
export function modelCardFileName(model: string, version: string): string {
  const name = (s: string) => encodeURIComponent(s).replaceAll('-', '%2D');
  const readable = `model-card-${name(model)}-${name(version)}.html`;
  if (readable.length <= MAX_READABLE_FILE_NAME) return readable;
  return `model-card-${createHash('sha256')
    .update(JSON.stringify([model, version]))
    .digest('hex')
    .slice(0, 32)}.html`;
}
