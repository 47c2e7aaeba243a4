/**
 * The provisioned Grafana dashboards as code: `pnpm --filter @driftline/dashboards generate`
 * writes docker/grafana/dashboards/*.json from here, and a unit test fails when they differ.
 */
import * as sql from './sql.js';

export const CLICKHOUSE = { type: 'grafana-clickhouse-datasource', uid: 'clickhouse' } as const;
export const PROMETHEUS = { type: 'prometheus', uid: 'prometheus' } as const;

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Obj = { [key: string]: Json };

export interface ClickHouseTarget {
  readonly refId: string;
  readonly rawSql: string;
  /** 0: time series, 1: table (the plugin's Format enum). */
  readonly format: 0 | 1;
}

export interface Dashboard {
  readonly file: string;
  readonly json: Obj;
}

const chTarget = (t: ClickHouseTarget): Obj => ({
  datasource: { ...CLICKHOUSE },
  editorType: 'sql',
  format: t.format,
  queryType: t.format === 0 ? 'timeseries' : 'table',
  rawSql: t.rawSql,
  refId: t.refId,
});

const promTarget = (refId: string, expr: string, legendFormat: string): Obj => ({
  datasource: { ...PROMETHEUS },
  editorMode: 'code',
  expr,
  legendFormat,
  range: true,
  refId,
});

interface PanelOptions {
  readonly title: string;
  readonly description?: string;
  readonly grid: readonly [number, number, number, number];
  readonly type?: string;
  readonly unit?: string;
  readonly min?: number;
  readonly max?: number;
  readonly log?: boolean;
  readonly thresholds?: readonly { value: number | null; color: string }[];
  readonly thresholdLine?: boolean;
  readonly overrides?: Json[];
  readonly options?: Obj;
  readonly custom?: Obj;
  readonly repeat?: string;
  readonly displayName?: string;
}

let nextId = 1;

function panel(o: PanelOptions, datasource: Obj, targets: Obj[]): Obj {
  const [x, y, w, h] = o.grid;
  const type = o.type ?? 'timeseries';
  const custom: Obj =
    type === 'timeseries'
      ? {
          drawStyle: 'line',
          lineWidth: 2,
          pointSize: 4,
          showPoints: 'auto',
          spanNulls: false,
          ...(o.log ? { scaleDistribution: { type: 'log', log: 10 } } : {}),
          ...(o.thresholdLine ? { thresholdsStyle: { mode: 'dashed' } } : {}),
          ...(o.custom ?? {}),
        }
      : { ...(o.custom ?? {}) };
  const defaults: Obj = {
    custom,
    ...(o.unit === undefined ? {} : { unit: o.unit }),
    ...(o.min === undefined ? {} : { min: o.min }),
    ...(o.max === undefined ? {} : { max: o.max }),
    ...(o.displayName === undefined ? {} : { displayName: o.displayName }),
    thresholds: {
      mode: 'absolute',
      steps: (o.thresholds ?? [{ value: null, color: 'green' }]).map((s) => ({ color: s.color, value: s.value })),
    },
  };
  return {
    id: nextId++,
    type,
    title: o.title,
    ...(o.description === undefined ? {} : { description: o.description }),
    datasource,
    gridPos: { x, y, w, h },
    fieldConfig: { defaults, overrides: o.overrides ?? [] },
    options:
      o.options ??
      (type === 'timeseries'
        ? {
            legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
            tooltip: { mode: 'multi', sort: 'desc' },
          }
        : {}),
    ...(o.repeat === undefined ? {} : { repeat: o.repeat, repeatDirection: 'h', maxPerRow: 3 }),
    targets,
  };
}

const chPanel = (o: PanelOptions, targets: ClickHouseTarget[]) => panel(o, { ...CLICKHOUSE }, targets.map(chTarget));
const promPanel = (o: PanelOptions, targets: Obj[]) => panel(o, { ...PROMETHEUS }, targets);

/** A dashed red line for a series named by a query column (the stored threshold). */
const thresholdOverride = (name: string): Json => ({
  matcher: { id: 'byName', options: name },
  properties: [
    { id: 'color', value: { mode: 'fixed', fixedColor: 'red' } },
    { id: 'custom.lineStyle', value: { fill: 'dash', dash: [10, 10] } },
    { id: 'custom.showPoints', value: 'never' },
    { id: 'displayName', value: name },
  ],
});

const byLabel = (label: string) => `\${__field.labels.${label}}`;

/** How the drift panels of one series per feature name their series (sql.ts perVersionWhereOverlapping). */
const PER_VERSION_WHEN_OVERLAPPING =
  'One line per feature; in a window where two versions were measured (a canary, a shadow), each against its own reference, the version measured first in the range stays on the line and the others are feature · version.';

/** How the per-window drift panels fold windows into the panel's points (sql.ts INTERVAL). */
const PER_INTERVAL =
  "One point per panel interval (the time range over the panel's width): the worst window of the interval, its largest statistic or smallest p-value.";

const databaseVariable: Obj = {
  name: 'database',
  type: 'constant',
  hide: 2,
  query: 'driftline',
  label: 'ClickHouse database',
  description: 'Set to DRIFTLINE_CLICKHOUSE_DATABASE when it is not driftline',
};

/** The fewest events of a window (per version) the share of drifted features counts (sql.ts shareDriftedSql). */
const minEventsVariable: Obj = {
  name: 'min_events',
  type: 'constant',
  hide: 2,
  query: String(sql.MIN_EVENTS_DEFAULT),
  label: 'Fewest events of a window for the share of drifted features',
  description: `Set to the drift monitor's DRIFTLINE_DRIFT_ALERT_MIN_EVENTS when it is not ${sql.MIN_EVENTS_DEFAULT}`,
};

function queryVariable(name: string, label: string, query: string, multi: boolean): Obj {
  return {
    name,
    label,
    type: 'query',
    datasource: { ...CLICKHOUSE },
    query,
    definition: query,
    refresh: 2,
    sort: 1,
    multi,
    includeAll: multi,
    ...(multi ? { current: { selected: true, text: ['All'], value: ['$__all'] } } : {}),
  };
}

/**
 * The features the "Distribution of" panel repeats over: several may be chosen, never All (each is
 * a scan of the range's predictions), among at most sql.DISTRIBUTION_PANELS options; the first is
 * shown by default.
 */
function distributionFeatureVariable(): Obj {
  return {
    ...queryVariable('distribution_feature', 'Distribution of', sql.variableSql.distributionFeature, true),
    includeAll: false,
    current: {},
  };
}

function annotations(): Obj {
  return {
    list: [
      {
        builtIn: 1,
        datasource: { type: 'grafana', uid: '-- Grafana --' },
        enable: true,
        hide: true,
        iconColor: 'rgba(0, 211, 255, 1)',
        name: 'Annotations & Alerts',
        type: 'dashboard',
      },
      {
        datasource: { ...CLICKHOUSE },
        enable: true,
        iconColor: 'red',
        name: 'Retrain decisions',
        target: chTarget({ refId: 'Anno', rawSql: sql.retrainAnnotationSql, format: 1 }),
      },
      {
        datasource: { ...CLICKHOUSE },
        enable: true,
        iconColor: 'green',
        name: 'Model versions',
        target: chTarget({ refId: 'Anno', rawSql: sql.modelVersionAnnotationSql, format: 1 }),
      },
    ],
  };
}

function dashboard(
  uid: string,
  title: string,
  description: string,
  tags: string[],
  templating: Obj[],
  panels: Obj[],
  withAnnotations: boolean,
): Obj {
  return {
    uid,
    title,
    description,
    tags: ['driftline', ...tags],
    editable: true,
    graphTooltip: 1,
    refresh: '30s',
    schemaVersion: 39,
    version: 1,
    time: { from: 'now-24h', to: 'now' },
    timepicker: {},
    timezone: 'utc',
    annotations: withAnnotations ? annotations() : { list: [] },
    templating: { list: templating },
    panels,
  };
}

function row(title: string, y: number): Obj {
  return { id: nextId++, type: 'row', title, collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 }, panels: [] };
}

function driftDashboard(): Obj {
  nextId = 1;
  const psiSteps = [
    { value: null, color: 'green' },
    { value: 0.1, color: 'orange' },
    { value: 0.2, color: 'red' },
  ];
  const panels = [
    row('Drift over time', 0),
    chPanel(
      {
        title: 'PSI per feature',
        description: `Population stability index of each input feature per window; at or above the threshold = drift. ${PER_VERSION_WHEN_OVERLAPPING} ${PER_INTERVAL}`,
        grid: [0, 1, 12, 9],
        min: 0,
        thresholds: psiSteps,
        thresholdLine: true,
        displayName: byLabel('series'),
        overrides: [thresholdOverride('psi_threshold')],
      },
      [
        { refId: 'A', rawSql: sql.driftStatisticSql('psi', 'statistic', 'psi'), format: 0 },
        { refId: 'B', rawSql: sql.driftThresholdSql('psi', 'psi_threshold'), format: 0 },
      ],
    ),
    chPanel(
      {
        title: 'KS p-value per feature',
        description: `Two-sample Kolmogorov–Smirnov p-value (upper bound from merged summaries); below alpha = drift. ${PER_VERSION_WHEN_OVERLAPPING} ${PER_INTERVAL}`,
        grid: [12, 1, 12, 9],
        log: true,
        displayName: byLabel('series'),
        overrides: [thresholdOverride('ks_alpha')],
      },
      [
        { refId: 'A', rawSql: sql.driftStatisticSql('ks', 'p_value', 'p_value'), format: 0 },
        { refId: 'B', rawSql: sql.driftThresholdSql('ks', 'ks_alpha'), format: 0 },
      ],
    ),
    chPanel(
      {
        title: 'KS statistic D per feature',
        description: `${PER_VERSION_WHEN_OVERLAPPING} ${PER_INTERVAL}`,
        grid: [0, 10, 12, 8],
        min: 0,
        max: 1,
        displayName: byLabel('series'),
      },
      [{ refId: 'A', rawSql: sql.driftStatisticSql('ks', 'statistic', 'ks_d'), format: 0 }],
    ),
    chPanel(
      {
        title: 'Share of drifted features',
        description: `Per version and window: the share of its input features whose PSI is at or above the threshold, and how many. A version measured beside another (canary, shadow) is its own series. Windows of a version with fewer than ${sql.MIN_EVENTS_DEFAULT} events are left out, as the drift monitor raises no drift alert for them (DRIFTLINE_DRIFT_ALERT_MIN_EVENTS): on a few events PSI is noise (8.3 for one event). The bound is the hidden dashboard constant min_events: set it to the drift monitor's value when that is not ${sql.MIN_EVENTS_DEFAULT}. One point per panel interval and window length: the largest share of its windows.`,
        grid: [12, 10, 12, 8],
        unit: 'percentunit',
        min: 0,
        max: 1,
        displayName: `\${__field.name} ${byLabel('version')}`,
        overrides: [
          {
            // By pattern: the version label is part of the field's display name.
            matcher: { id: 'byRegexp', options: '^drifted_features' },
            properties: [
              { id: 'unit', value: 'none' },
              { id: 'custom.axisPlacement', value: 'right' },
            ],
          },
        ],
      },
      [{ refId: 'A', rawSql: sql.shareDriftedSql, format: 0 }],
    ),
    chPanel(
      {
        title: 'Prediction drift',
        description: `Drift of the model output itself (__prediction__ / __predicted_class__). ${PER_VERSION_WHEN_OVERLAPPING} ${PER_INTERVAL}`,
        grid: [0, 18, 12, 8],
        min: 0,
        displayName: byLabel('measure'),
      },
      [{ refId: 'A', rawSql: sql.predictionDriftSql, format: 0 }],
    ),
    chPanel(
      {
        title: 'Events per window (and late events)',
        description:
          'Events on time and late events per window, summed over the selected versions (a canary with production): each version counted once, not once per feature. When the panel interval is longer than a window: the mean per window of the windows in the interval.',
        grid: [12, 18, 12, 8],
        min: 0,
        custom: { drawStyle: 'bars', fillOpacity: 60 },
      },
      [{ refId: 'A', rawSql: sql.eventsPerWindowSql, format: 0 }],
    ),
    chPanel(
      {
        title: 'Latest window: every feature and method',
        type: 'table',
        grid: [0, 26, 24, 9],
        options: { showHeader: true, sortBy: [{ displayName: 'drifted', desc: true }] },
        overrides: [
          {
            matcher: { id: 'byName', options: 'drifted' },
            properties: [
              {
                id: 'mappings',
                value: [
                  {
                    type: 'value',
                    options: { '0': { text: 'ok', color: 'green' }, '1': { text: 'DRIFT', color: 'red' } },
                  },
                ],
              },
              { id: 'custom.cellOptions', value: { type: 'color-background' } },
            ],
          },
        ],
      },
      [{ refId: 'A', rawSql: sql.latestDriftTableSql, format: 1 }],
    ),
    row('Feature distributions: reference vs current', 35),
    chPanel(
      {
        title: 'Distribution of $distribution_feature',
        description: `Shares per reference bin: the reference profile of the version of the latest window in the range (of the selected versions) vs that version's predictions in the range (joined or expired). One panel per feature of the "Distribution of" selection, whose options are the first ${sql.DISTRIBUTION_PANELS} features of the Feature selection by name (narrow Feature to reach others).`,
        type: 'barchart',
        grid: [0, 36, 8, 9],
        repeat: 'distribution_feature',
        unit: 'percentunit',
        min: 0,
        options: {
          xField: 'bucket',
          orientation: 'vertical',
          showValue: 'never',
          legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
          groupWidth: 0.8,
          barWidth: 0.9,
        },
        overrides: [
          {
            matcher: { id: 'byName', options: 'bin' },
            properties: [{ id: 'custom.hideFrom', value: { viz: true, legend: true, tooltip: true } }],
          },
        ],
      },
      [{ refId: 'A', rawSql: sql.distributionSql(sql.variableValue('distribution_feature')), format: 1 }],
    ),
    chPanel(
      {
        title: 'Distribution of the prediction',
        type: 'barchart',
        grid: [0, 45, 12, 9],
        unit: 'percentunit',
        min: 0,
        options: {
          xField: 'bucket',
          orientation: 'vertical',
          showValue: 'never',
          legend: { displayMode: 'list', placement: 'bottom', showLegend: true },
        },
        overrides: [
          {
            matcher: { id: 'byName', options: 'bin' },
            properties: [{ id: 'custom.hideFrom', value: { viz: true, legend: true, tooltip: true } }],
          },
        ],
      },
      [{ refId: 'A', rawSql: sql.distributionSql("'__prediction__'"), format: 1 }],
    ),
    chPanel({ title: 'Retrain decisions', type: 'table', grid: [12, 45, 12, 9], options: { showHeader: true } }, [
      { refId: 'A', rawSql: sql.retrainTableSql, format: 1 },
    ]),
    row('Training-serving skew (skew-monitor, sampled predictions vs the online store)', 54),
    chPanel(
      {
        title: 'Skew: share mismatched per feature',
        description:
          'Of the sampled predictions whose online row was current at the prediction time, the share whose served value differs from the stored one (numbers beyond the tolerance, others unequal, missing on one side). A unit change or a producer computing a feature itself shows here.',
        grid: [0, 55, 12, 9],
        unit: 'percentunit',
        min: 0,
        max: 1,
        displayName: byLabel('feature'),
      },
      [{ refId: 'A', rawSql: sql.skewShareSql, format: 0 }],
    ),
    chPanel(
      {
        title: 'Skew: staleness p99 per feature',
        description:
          'Prediction time minus the event time of the online row it was compared with (upper bound of the histogram bucket, at most 2.5× the true value).',
        grid: [12, 55, 12, 9],
        unit: 'ms',
        log: true,
        displayName: byLabel('feature'),
      },
      [{ refId: 'A', rawSql: sql.skewStalenessSql, format: 0 }],
    ),
    chPanel(
      {
        title: 'Skew in the range, per feature',
        description:
          'newer_row: the row was rewritten after the prediction (not comparable as of then); missing_in_store: no row, or no value in it; expired: no row read while the prediction was already older than the view’s TTL (the monitor lagged past it: not compared, not missing; 0 before migration 0690).',
        type: 'table',
        grid: [0, 64, 24, 8],
        options: { showHeader: true },
      },
      [{ refId: 'A', rawSql: sql.skewTableSql, format: 1 }],
    ),
    row('Data quality (expectations declared beside the feature views)', 72),
    chPanel(
      {
        title: 'Data quality: share per expectation',
        description:
          'Per window and feature: share of events with a null value (null_rate), of present values of another type (type), outside the allowed range (range), outside the allowed categories (categories). Bounds are in the table beside; failing windows raise DATA_QUALITY alerts.',
        grid: [0, 73, 12, 9],
        unit: 'percentunit',
        min: 0,
        max: 1,
        displayName: byLabel('series'),
      },
      [{ refId: 'A', rawSql: sql.qualityShareSql, format: 0 }],
    ),
    chPanel(
      {
        title: 'Data quality: failed expectations',
        description:
          "Checks that failed in at least one window of the range, each of which raised a DATA_QUALITY alert: the expectations declared beside the feature views, and the drift monitor's built-in missing_share check of every input feature (no declaration needed: the missing share rose by more than DRIFTLINE_DRIFT_MISSING_RATE_INCREASE over the reference's, with p < DRIFTLINE_DRIFT_MISSING_ALERT_ALPHA; bound = reference share + increase). Cardinality is a HyperLogLog estimate (±3.25% standard error).",
        type: 'table',
        grid: [12, 73, 12, 9],
        options: { showHeader: true },
      },
      [{ refId: 'A', rawSql: sql.qualityFailedSql, format: 1 }],
    ),
    chPanel(
      {
        title: 'Feature view freshness: time since the newest event',
        description:
          'Measured by the feature-materializer at the end of each window: now minus the newest event time of the view, the largest over its source partitions. Views declare the bound as freshness.max_lag.',
        grid: [0, 82, 24, 8],
        unit: 'ms',
        displayName: byLabel('view'),
      },
      [{ refId: 'A', rawSql: sql.freshnessLagSql, format: 0 }],
    ),
  ];
  return dashboard(
    'driftline-drift',
    'driftline · drift',
    'Feature and prediction drift per window from drift_windows, distributions from reference_profiles; retrain decisions and model versions as annotations.',
    ['drift'],
    [
      databaseVariable,
      minEventsVariable,
      queryVariable('model', 'model', sql.variableSql.model, false),
      queryVariable('version', 'version', sql.variableSql.version, true),
      queryVariable('feature', 'feature', sql.variableSql.feature, true),
      distributionFeatureVariable(),
    ],
    panels,
    true,
  );
}

function performanceDashboard(): Obj {
  nextId = 1;
  const version = byLabel('model_version');
  const panels = [
    chPanel(
      {
        title: 'Accuracy, F1, ROC AUC per version',
        grid: [0, 0, 12, 9],
        min: 0,
        max: 1,
        displayName: `\${__field.name} ${version}`,
      },
      [{ refId: 'A', rawSql: sql.performanceSql(['accuracy', 'f1', 'roc_auc']), format: 0 }],
    ),
    chPanel(
      {
        title: 'Precision and recall per version',
        grid: [12, 0, 12, 9],
        min: 0,
        max: 1,
        displayName: `\${__field.name} ${version}`,
      },
      [{ refId: 'A', rawSql: sql.performanceSql(['precision', 'recall']), format: 0 }],
    ),
    chPanel(
      {
        title: 'Log loss and Brier score per version',
        grid: [0, 9, 12, 8],
        min: 0,
        displayName: `\${__field.name} ${version}`,
      },
      [{ refId: 'A', rawSql: sql.performanceSql(['log_loss', 'brier']), format: 0 }],
    ),
    chPanel(
      {
        title: 'Regression error (MAE, RMSE) per version',
        grid: [12, 9, 12, 8],
        min: 0,
        displayName: `\${__field.name} ${version}`,
      },
      [{ refId: 'A', rawSql: sql.performanceSql(['mae', 'rmse']), format: 0 }],
    ),
    chPanel(
      {
        title: 'Label coverage per version',
        description: 'Share of the window’s predictions that got a label before their deadline.',
        grid: [0, 17, 12, 8],
        unit: 'percentunit',
        min: 0,
        max: 1,
        thresholds: [
          { value: null, color: 'red' },
          { value: 0.5, color: 'orange' },
          { value: 0.8, color: 'green' },
        ],
        thresholdLine: true,
        displayName: version,
      },
      [{ refId: 'A', rawSql: sql.labelCoverageSql, format: 0 }],
    ),
    chPanel(
      {
        title: 'Labeled, expired and pending predictions',
        grid: [12, 17, 12, 8],
        min: 0,
        custom: { drawStyle: 'bars', fillOpacity: 70, stacking: { mode: 'normal', group: 'A' } },
      },
      [{ refId: 'A', rawSql: sql.labelCountsSql, format: 0 }],
    ),
    chPanel(
      {
        title: 'Versions in the range',
        description:
          'Per version over its windows in the range, each window weighted by its labels (as the model card): accuracy and RMSE pooled (RMSE as the root of the weighted mean square); F1 and ROC AUC cannot be pooled from windows and are the label-weighted mean of the windows’ values. sampled_windows: windows whose metrics come from a sample of their labels (see “Windows computed on a sample”).',
        type: 'table',
        grid: [0, 25, 24, 7],
        options: { showHeader: true },
      },
      [{ refId: 'A', rawSql: sql.versionSummarySql, format: 1 }],
    ),
    chPanel(
      {
        title: 'Estimated vs realized ROC AUC',
        description: `CBPE estimate from scores alone (calibrated on the reference), the realized value from joined labels, and the current value: realized once label coverage reaches ${sql.REALIZED_COVERAGE} and the metric was computed from at least ${sql.REALIZED_MIN_SAMPLES} valid labels (the sampled ones for a window read as a sample), the estimate before — the label-joiner’s alerts switch from the estimate to the realized metric at the same point (its DRIFTLINE_JOINER_REALIZED_COVERAGE and DRIFTLINE_JOINER_ALERT_MIN_SAMPLES defaults).`,
        grid: [0, 32, 12, 9],
        min: 0,
        max: 1,
        displayName: `\${__field.name} ${version}`,
      },
      [{ refId: 'A', rawSql: sql.estimatedVsRealizedAucSql, format: 0 }],
    ),
    chPanel(
      {
        title: 'Business outcome',
        description:
          'Per window at the decision threshold: value caught (true positives), value missed (false negatives), cost of false alarms, net = caught − false-alarm cost. From the labels’ value.',
        grid: [12, 32, 12, 9],
        displayName: `\${__field.name} ${version}`,
      },
      [{ refId: 'A', rawSql: sql.businessOutcomeSql, format: 0 }],
    ),
    chPanel(
      {
        title: 'Windows computed on a sample',
        description:
          'Windows with more labels than the label-joiner’s DRIFTLINE_JOINER_MAX_WINDOW_ROWS: their metrics and business outcome come from a deterministic uniform sample, sampled of labeled labels (performance_windows.sampled_labels); counts and label coverage are exact. No rows: every window in the range was computed from all its labels.',
        type: 'table',
        grid: [0, 41, 24, 6],
        options: { showHeader: true },
      },
      [{ refId: 'A', rawSql: sql.sampledWindowsSql, format: 1 }],
    ),
  ];
  return dashboard(
    'driftline-performance',
    'driftline · model performance',
    'Live model performance and label coverage per version from performance_windows (overall segment).',
    ['performance'],
    [
      databaseVariable,
      queryVariable('model', 'model', sql.variableSql.perfModel, false),
      queryVariable('version', 'version', sql.variableSql.perfVersion, true),
    ],
    panels,
    true,
  );
}

/** PromQL of the pipeline health dashboard; metric names are checked against the sources. */
export const promql = {
  lag: 'sum by (topic) (driftline_consumer_lag{topic=~"$topic"})',
  lagTotal: 'sum(driftline_consumer_lag{topic=~"$topic"})',
  recordsIn: 'sum by (topic) (rate(driftline_records_in_total{topic=~"$topic"}[$__rate_interval]))',
  recordsOut: 'sum by (topic) (rate(driftline_records_out_total{topic=~"$topic"}[$__rate_interval]))',
  failed: 'sum by (topic) (rate(driftline_records_failed_total{topic=~"$topic"}[$__rate_interval]))',
  dlq: 'sum by (topic, code) (increase(driftline_records_dlq_total{topic=~"$topic"}[$__rate_interval]))',
  dlqTotal: 'sum(increase(driftline_records_dlq_total{topic=~"$topic"}[1h]))',
  batchP: (q: number) =>
    `histogram_quantile(${q}, sum by (le, topic) (rate(driftline_batch_duration_seconds_bucket{topic=~"$topic"}[$__rate_interval])))`,
  recordP: (q: number) =>
    `histogram_quantile(${q}, sum by (le, topic) (rate(driftline_record_latency_seconds_bucket{topic=~"$topic"}[$__rate_interval])))`,
  backingOff: 'sum by (topic) (driftline_consumer_backing_off{topic=~"$topic"})',
  backingOffTotal: 'sum(driftline_consumer_backing_off{topic=~"$topic"})',
  topics: 'label_values(driftline_records_in_total, topic)',
  up: 'up{job="driftline"}',
} as const;

function pipelineDashboard(): Obj {
  nextId = 1;
  const stat = (
    title: string,
    expr: string,
    grid: readonly [number, number, number, number],
    steps: { value: number | null; color: string }[],
    unit?: string,
  ) =>
    promPanel(
      {
        title,
        type: 'stat',
        grid,
        thresholds: steps,
        ...(unit === undefined ? {} : { unit }),
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'background',
          graphMode: 'area',
        },
      },
      [promTarget('A', expr, title)],
    );
  const panels = [
    stat(
      'Consumer lag (records)',
      promql.lagTotal,
      [0, 0, 6, 4],
      [
        { value: null, color: 'green' },
        { value: 1000, color: 'orange' },
        { value: 10000, color: 'red' },
      ],
    ),
    stat(
      'Dead-lettered (1h)',
      promql.dlqTotal,
      [6, 0, 6, 4],
      [
        { value: null, color: 'green' },
        { value: 1, color: 'red' },
      ],
    ),
    stat(
      'Partitions backing off',
      promql.backingOffTotal,
      [12, 0, 6, 4],
      [
        { value: null, color: 'green' },
        { value: 1, color: 'red' },
      ],
    ),
    promPanel(
      {
        title: 'Services up',
        type: 'stat',
        grid: [18, 0, 6, 4],
        thresholds: [
          { value: null, color: 'red' },
          { value: 1, color: 'green' },
        ],
        options: {
          reduceOptions: { calcs: ['lastNotNull'], fields: '', values: false },
          colorMode: 'background',
          textMode: 'value_and_name',
        },
      },
      [promTarget('A', promql.up, '{{instance}}')],
    ),
    promPanel({ title: 'Consumer lag per topic', grid: [0, 4, 12, 8], min: 0, unit: 'short' }, [
      promTarget('A', promql.lag, '{{topic}}'),
    ]),
    promPanel({ title: 'Throughput: records in / out per second', grid: [12, 4, 12, 8], min: 0, unit: 'rps' }, [
      promTarget('A', promql.recordsIn, 'in {{topic}}'),
      promTarget('B', promql.recordsOut, 'out {{topic}}'),
    ]),
    promPanel(
      {
        title: 'Dead-lettered records (per interval)',
        grid: [0, 12, 12, 8],
        min: 0,
        custom: { drawStyle: 'bars', fillOpacity: 70 },
      },
      [promTarget('A', promql.dlq, '{{topic}} {{code}}')],
    ),
    promPanel({ title: 'Failed batch attempts (retried) per second', grid: [12, 12, 12, 8], min: 0, unit: 'rps' }, [
      promTarget('A', promql.failed, '{{topic}}'),
    ]),
    promPanel({ title: 'Batch duration (decode, sink, commit)', grid: [0, 20, 12, 8], min: 0, unit: 's' }, [
      promTarget('A', promql.batchP(0.5), 'p50 {{topic}}'),
      promTarget('B', promql.batchP(0.95), 'p95 {{topic}}'),
      promTarget('C', promql.batchP(0.99), 'p99 {{topic}}'),
    ]),
    promPanel({ title: 'Record latency (Kafka arrival to committed)', grid: [12, 20, 12, 8], min: 0, unit: 's' }, [
      promTarget('A', promql.recordP(0.5), 'p50 {{topic}}'),
      promTarget('B', promql.recordP(0.95), 'p95 {{topic}}'),
      promTarget('C', promql.recordP(0.99), 'p99 {{topic}}'),
    ]),
    promPanel(
      {
        title: 'Partitions backing off (sink unavailable)',
        grid: [0, 28, 24, 6],
        min: 0,
        custom: { drawStyle: 'line', lineInterpolation: 'stepAfter', fillOpacity: 30 },
      },
      [promTarget('A', promql.backingOff, '{{topic}}')],
    ),
  ];
  return dashboard(
    'driftline-pipeline',
    'driftline · pipeline health',
    'Consumer lag, throughput, dead letters, latency and backpressure of every driftline consumer (Prometheus).',
    ['pipeline'],
    [
      {
        name: 'topic',
        label: 'topic',
        type: 'query',
        datasource: { ...PROMETHEUS },
        query: { query: promql.topics, refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 },
        definition: promql.topics,
        refresh: 2,
        sort: 1,
        multi: true,
        includeAll: true,
        allValue: '.*',
        current: { selected: true, text: ['All'], value: ['$__all'] },
      },
    ],
    panels,
    false,
  );
}

export function dashboards(): Dashboard[] {
  return [
    { file: 'driftline-drift.json', json: driftDashboard() },
    { file: 'driftline-performance.json', json: performanceDashboard() },
    { file: 'driftline-pipeline.json', json: pipelineDashboard() },
  ];
}

export function serialize(d: Dashboard): string {
  return `${JSON.stringify(d.json, null, 2)}\n`;
}
