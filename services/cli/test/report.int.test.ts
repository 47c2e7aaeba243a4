import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { migrateForDashboards, REPO_ROOT, type Scenario, seedScenario } from '@driftline/dashboards';
import { renderReport } from '@driftline/report';
import { removeTree } from '@driftline/test-support';
import { chTime, createClickHouse, migrate, migrations, warehouseOn } from '@driftline/warehouse';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { driftCommand } from '../src/commands/drift.js';
import { reportCommand } from '../src/commands/report.js';

const CHROMIUM = '/usr/bin/chromium';
const ARTIFACTS = resolve(REPO_ROOT, 'test-artifacts');

/** The Debian package, installed on a fresh machine (CI runs as root) when it is missing. */
function ensureChromium(): void {
  if (existsSync(CHROMIUM)) return;
  if (process.getuid?.() !== 0) throw new Error(`${CHROMIUM} is missing; install the Debian package chromium`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'inherit', env, timeout: 300_000 });
  execFileSync('apt-get', ['install', '-y', '-qq', 'chromium'], { stdio: 'inherit', env, timeout: 600_000 });
}

const work = mkdtempSync(join(tmpdir(), 'driftline-report-'));
const database = `report_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
let scenario: Scenario;
/** The last windows wait for labels (coverage 0.2): the estimate is the current value there. */
const PENDING_LABEL_WINDOWS = 2;
/** What the warehouse holds for the estimate and business charts, read before the report runs. */
let held: {
  current: { version: string; ws: number; kind: string; value: number; coverage: number }[];
  net: number;
  businessRows: number;
};
let browser: BrowserContext | undefined;
const out = join(work, 'report.html');

beforeAll(async () => {
  ensureChromium();
  process.env.DRIFTLINE_CLICKHOUSE_PATH = join(work, 'chdb');
  process.env.DRIFTLINE_CLICKHOUSE_DATABASE = database;
  delete process.env.DRIFTLINE_CLICKHOUSE_URL;
  const ch = await createClickHouse({ mode: 'embedded', path: join(work, 'chdb'), database });
  const { missing } = await migrateForDashboards(ch);
  expect(missing).toEqual([]);
  scenario = await seedScenario(ch, undefined, undefined, { pendingLabelWindows: PENDING_LABEL_WINDOWS });
  // The rule as the Grafana panel states it (sql.ts estimatedVsRealizedAucSql, the alerts' rule with
  // the label-joiner's defaults), in SQL on the stored rows.
  const realized = `label_coverage >= 0.5
       AND if(sampled_labels > 0, sampled_labels >= 100, labeled >= invalid_labels + 100)
       AND roc_auc IS NOT NULL AND isFinite(roc_auc)`;
  const current = await ch.select<Record<string, string | number>>(
    `SELECT model_version AS version, toUnixTimestamp64Milli(window_start) AS ws, label_coverage AS coverage,
       if(${realized}, 'realized', 'estimated') AS kind,
       if(${realized}, roc_auc, estimated_roc_auc) AS value
     FROM ${ch.table('performance_windows')} FINAL
     WHERE model = {model:String} AND segment_feature = '' ORDER BY ws, version`,
    { model: scenario.model },
  );
  const [business] = await ch.select<{ net: number; n: number | string }>(
    `SELECT sum(business_net) AS net, count() AS n FROM ${ch.table('performance_windows')} FINAL
     WHERE model = {model:String} AND segment_feature = '' AND business_net IS NOT NULL`,
    { model: scenario.model },
  );
  held = {
    current: current.map((r) => ({
      version: String(r.version),
      ws: Number(r.ws),
      kind: String(r.kind),
      value: Number(r.value),
      coverage: Number(r.coverage),
    })),
    net: Number(business!.net),
    businessRows: Number(business!.n),
  };
  // A fresh profile per run (Playwright passes it as --user-data-dir).
  browser = await chromium.launchPersistentContext(join(work, 'chromium-profile'), {
    executablePath: CHROMIUM,
    viewport: { width: 1500, height: 1000 },
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}, 600_000);

afterAll(async () => {
  await browser?.close();
  await removeTree(work);
});

describe('driftline report', () => {
  it('writes one self-contained page whose charts render in headless Chromium', async () => {
    const code = await reportCommand([
      '--model',
      scenario.model,
      '--from',
      new Date(scenario.from).toISOString(),
      '--to',
      String(scenario.to),
      '--out',
      out,
    ]);
    expect(code).toBe(0);
    const html = readFileSync(out, 'utf8');
    // Self-contained: no script, no external reference of any kind.
    expect(html).not.toMatch(/<script|<link|\bsrc=|url\(|@import/i);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);

    const page = await browser!.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith('file:')) problems.push(`request: ${r.url()}`);
    });
    await page.goto(`file://${out}`);
    const charts = await page.$$eval('figure.chart', (figures) =>
      figures.map((f) => {
        const svg = f.querySelector('svg');
        const box = svg?.getBoundingClientRect();
        return {
          id: f.getAttribute('data-chart') ?? '',
          empty: f.classList.contains('empty'),
          paths: f.querySelectorAll('path.series').length,
          points: f.querySelectorAll('circle.point').length,
          bars: [...f.querySelectorAll('rect.bar')].filter((r) => Number(r.getAttribute('height')) > 0).length,
          thresholds: f.querySelectorAll('line.threshold').length,
          markers: f.querySelectorAll('line.marker').length,
          dashed: f.querySelectorAll('path.series[stroke-dasharray]').length,
          highlights: [...f.querySelectorAll('circle.highlight')].map((c) => ({
            kind: c.getAttribute('data-kind') ?? '',
            title: c.textContent ?? '',
          })),
          width: box?.width ?? 0,
          height: box?.height ?? 0,
        };
      }),
    );
    const chart = (id: string) => {
      const c = charts.find((x) => x.id === id);
      if (c === undefined) throw new Error(`no chart ${id}: ${charts.map((x) => x.id).join(', ')}`);
      expect(c.empty, id).toBe(false);
      expect(c.width, id).toBeGreaterThan(200);
      expect(c.height, id).toBeGreaterThan(100);
      return c;
    };
    const windows = scenario.windows.length;
    // Drift over time: one line per (input feature, version) — v1 then v2 after the promotion — a
    // point per window, the threshold, and the retrain markers (decision, rejected, promoted).
    expect(chart('drift-psi')).toMatchObject({ paths: 4, points: 2 * windows, thresholds: 1, markers: 3 });
    expect(chart('drift-ks')).toMatchObject({ paths: 2, points: windows, thresholds: 1 });
    expect(chart('drift-prediction')).toMatchObject({ paths: 2, points: windows });
    // Distributions of the promoted version's reference: reference and current bars per bin.
    const amount = chart('dist-amount');
    expect(amount.bars).toBeGreaterThan(10);
    expect(chart('dist-country').bars).toBeGreaterThanOrEqual(5);
    expect(chart('dist-__prediction__').bars).toBeGreaterThan(5);
    // Performance per version (accuracy, f1, roc_auc × v1, v2) and label coverage per version.
    expect(chart('performance')).toMatchObject({ paths: 6, points: 3 * windows });
    expect(chart('label-coverage')).toMatchObject({ paths: 2, points: windows });
    // Retrain history: the fired decision, the rejected and the promoted version.
    expect(chart('retrain-history').points).toBe(3);
    expect(await page.locator('table.retrain tbody tr').count()).toBe(3);
    // Every version of the timeline links to its model card, written beside the report.
    const cards = await page
      .locator('table.retrain tbody a')
      .evaluateAll((as) => as.map((a) => a.getAttribute('href') ?? ''));
    expect(cards.length).toBe(3);
    // Resolved as the browser resolves a link (a URL: its path percent-decoded), not as a file name.
    for (const href of cards) {
      expect(readFileSync(fileURLToPath(new URL(href, pathToFileURL(out))), 'utf8')).toContain('— model card');
    }
    expect(await page.locator('.notes').count()).toBe(0);
    // Estimated vs realized ROC AUC: per version an estimated (dashed) and a realized (solid) line, a
    // point per window on each, and one ring per window on the current value — realized where labels
    // cover ≥ 0.5, the estimate in the windows still waiting for labels.
    const auc = chart('estimated-roc-auc');
    expect(auc).toMatchObject({ paths: 4, dashed: 2, points: 2 * windows, markers: 3 });
    expect(held.current).toHaveLength(windows);
    expect(held.current.filter((c) => c.kind === 'estimated')).toHaveLength(PENDING_LABEL_WINDOWS);
    const iso = (ms: number) => new Date(ms).toISOString().replace('T', ' ').replace('.000Z', 'Z');
    expect(auc.highlights.map((h) => h.title).sort()).toEqual(
      held.current
        .map(
          (c) =>
            `current ROC AUC \u2068${c.version}\u2069 ${iso(c.ws)}: ${c.value.toFixed(4)} (${c.kind}, label coverage ${c.coverage.toFixed(2)})`,
        )
        .sort(),
    );
    expect(auc.highlights.map((h) => h.kind)).toEqual(held.current.map((c) => c.kind));
    expect(chart('estimated-accuracy')).toMatchObject({ paths: 4, dashed: 2, points: 2 * windows });
    expect(await page.locator('table.estimates tbody .tag.estimated').count()).toBe(PENDING_LABEL_WINDOWS);
    // Business outcome: caught, missed, false-alarm cost and net × v1, v2, a point per window each.
    expect(chart('business-outcome')).toMatchObject({ paths: 8, points: 4 * windows, thresholds: 1 });
    expect(held.businessRows).toBe(windows);
    expect(await page.locator('table.business tbody tr').count()).toBe(windows);
    const netTotal = await page.locator('table.business tfoot th').last().textContent();
    expect(netTotal).toBe(held.net.toFixed(2));

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'report.png'), fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  });

  it('takes the label-joiner’s rule from its variables: with 100,000 labels required every window shows its estimate', async () => {
    const file = join(work, 'report-min-samples.html');
    const args = [
      '--model',
      scenario.model,
      '--from',
      String(scenario.from),
      '--to',
      String(scenario.to),
      '--out',
      file,
    ];
    const tags = (html: string, kind: string) =>
      (html.split('<table class="estimates">')[1] ?? '').split(`class="tag ${kind}"`).length - 1;
    process.env.DRIFTLINE_JOINER_ALERT_MIN_SAMPLES = '100000';
    try {
      expect(await reportCommand(args)).toBe(0);
    } finally {
      delete process.env.DRIFTLINE_JOINER_ALERT_MIN_SAMPLES;
    }
    const strict = readFileSync(file, 'utf8');
    expect(tags(strict, 'realized')).toBe(0);
    expect(tags(strict, 'estimated')).toBe(held.current.length);
    // A value the joiner refuses is refused here too, naming the variable.
    process.env.DRIFTLINE_JOINER_REALIZED_COVERAGE = '1.5';
    try {
      await expect(reportCommand(args)).rejects.toThrow(/DRIFTLINE_JOINER_REALIZED_COVERAGE/);
    } finally {
      delete process.env.DRIFTLINE_JOINER_REALIZED_COVERAGE;
    }
    // Unset, the defaults: realized wherever the seeded labels cover the window.
    expect(await reportCommand(args)).toBe(0);
    const plain = readFileSync(file, 'utf8');
    expect(tags(plain, 'estimated')).toBe(PENDING_LABEL_WINDOWS);
    expect(tags(plain, 'realized')).toBe(held.current.length - PENDING_LABEL_WINDOWS);
  });

  it('leaves the estimate and business sections out, with a note, on a database migrated before 0610', async () => {
    const old = `${database}_old`;
    const ch = await createClickHouse({ mode: 'embedded', path: join(work, 'chdb'), database: old });
    try {
      await migrate(
        ch,
        migrations.filter((m) => m.id !== '0610_performance_estimates'),
      );
      const ws = scenario.windows[0]!;
      await ch.insert('performance_windows', [
        {
          model: scenario.model,
          model_version: 'v1',
          window_start: chTime(ws),
          window_end: chTime(ws + 3_600_000),
          segment_feature: '',
          segment: '__all__',
          task: 'binary',
          predictions: 10,
          labeled: 10,
          expired: 0,
          pending: 0,
          label_coverage: 1,
          invalid_labels: 0,
          accuracy: 0.9,
          roc_auc: 0.95,
          threshold: 0.5,
          version: 1,
          computed_at: chTime(ws + 3_600_000),
        },
      ]);
      const data = await warehouseOn(ch).report({ model: scenario.model, from: scenario.from, to: scenario.to });
      expect(data.performance).toHaveLength(1);
      expect(data.performance[0]!.metrics.roc_auc).toBe(0.95);
      expect(data.performance[0]!.estimated).toBeUndefined();
      expect(data.notes?.filter((n) => n.includes('migration 0610'))).toHaveLength(1);
      const html = renderReport(data);
      expect(html).toContain('data-chart="performance"');
      expect(html).not.toContain('id="estimates"');
      expect(html).not.toContain('id="business"');
    } finally {
      await ch.close();
    }
  });

  it('names the missing option', async () => {
    await expect(reportCommand(['--out', out])).rejects.toThrow(/--model/);
    await expect(reportCommand(['--model', 'm', '--from', 'yesterday-ish'])).rejects.toThrow(/--from/);
  });
});

describe('driftline drift --html', () => {
  it('writes one self-contained page of the two tables whose charts render in headless Chromium', async () => {
    const ref = join(work, 'ref.csv');
    const cur = join(work, 'cur.csv');
    const rows = (shift: number) =>
      Array.from({ length: 2000 }, (_, i) => `${(i % 50) + shift},${['a', 'b', 'c', 'd'][(i + shift) % 4]},${i}`);
    writeFileSync(ref, `amount,country,id\n${rows(0).join('\n')}\n`);
    writeFileSync(cur, `amount,country,id\n${rows(20).join('\n')}\n`);
    const html = join(work, 'drift.html');
    const write = process.stdout.write;
    process.stdout.write = () => true; // the table on stdout is not under test here
    try {
      expect(await driftCommand(['--reference', ref, '--current', cur, '--ignore', 'id', '--html', html])).toBe(0);
    } finally {
      process.stdout.write = write;
    }
    const text = readFileSync(html, 'utf8');
    expect(text).not.toMatch(/<script|<link|\bsrc=|url\(|@import/i);
    expect(text).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    const page = await browser!.newPage();
    const problems: string[] = [];
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') problems.push(`${m.type()}: ${m.text()}`);
    });
    page.on('pageerror', (e) => problems.push(`pageerror: ${e.message}`));
    page.on('request', (r) => {
      if (!r.url().startsWith('file:')) problems.push(`request: ${r.url()}`);
    });
    await page.goto(`file://${html}`);
    const charts = await page.$$eval('figure.chart', (figures) =>
      figures.map((f) => ({
        id: f.getAttribute('data-chart') ?? '',
        bars: [...f.querySelectorAll('rect.bar')].filter((r) => Number(r.getAttribute('height')) > 0).length,
        width: f.querySelector('svg')?.getBoundingClientRect().width ?? 0,
      })),
    );
    expect(charts.map((c) => c.id).sort()).toEqual(['dist-amount', 'dist-country']);
    for (const c of charts) {
      expect(c.bars, c.id).toBeGreaterThanOrEqual(4);
      expect(c.width, c.id).toBeGreaterThan(200);
    }
    expect(await page.locator('table.columns tbody tr').count()).toBe(2);
    expect(await page.locator('table.columns .tag.drift').count()).toBeGreaterThanOrEqual(1);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: join(ARTIFACTS, 'drift-report.png'), fullPage: true });
    await page.close();
    expect(problems).toEqual([]);
  });
});
