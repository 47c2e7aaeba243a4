import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  ALERTMANAGER_ASSETS,
  ALERTMANAGER_ASSETS_ABSOLUTE,
  durationMs,
  type MonitoringSettings,
  monitoringDown,
  monitoringStatus,
  relocateAlertmanagerAssets,
  renderAlertmanagerConfig,
  renderPrometheusConfig,
  renderTargets,
  writeScrapeTargets,
} from '../src/monitoring.js';
import { stackDown } from '../src/stack.js';

const settings: MonitoringSettings = {
  prometheusPort: 19090,
  alertmanagerPort: 19093,
  targetsDir: '/srv/mon/targets',
  ruleFiles: ['/repo/docker/prometheus/rules/*.yml'],
  scrapeInterval: '1s',
  evaluationInterval: '2s',
  webhookUrl: 'http://127.0.0.1:5001/hook',
  groupWait: '1s',
  groupInterval: '3s',
  repeatInterval: '1h',
};

const dirs: string[] = [];
function tempDir(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'stack-monitoring-'));
  dirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const d of dirs.splice(0)) fs.rmSync(d, { recursive: true, force: true });
});

describe('monitoring configuration', () => {
  it('prometheus.yml: one driftline job from file discovery, the rules, our Alertmanager', () => {
    const config = JSON.parse(renderPrometheusConfig(settings));
    expect(config.global).toEqual({ scrape_interval: '1s', scrape_timeout: '1s', evaluation_interval: '2s' });
    expect(config.rule_files).toEqual(settings.ruleFiles);
    expect(config.alerting.alertmanagers[0].static_configs[0].targets).toEqual(['127.0.0.1:19093']);
    expect(config.scrape_configs).toEqual([
      {
        job_name: 'driftline',
        file_sd_configs: [{ files: ['/srv/mon/targets/*.json'], refresh_interval: '5s' }],
      },
    ]);
    // A scrape timeout may not exceed the interval; 10 s at most for slow intervals.
    expect(JSON.parse(renderPrometheusConfig({ ...settings, scrapeInterval: '1m' })).global.scrape_timeout).toBe('10s');
  });

  it('alertmanager.yml: everything to the webhook, grouped by alert name; no webhook, no receiver config', () => {
    const config = JSON.parse(renderAlertmanagerConfig(settings));
    expect(config.route).toEqual({
      receiver: 'driftline',
      group_by: ['alertname'],
      group_wait: '1s',
      group_interval: '3s',
      repeat_interval: '1h',
    });
    expect(config.receivers).toEqual([
      { name: 'driftline', webhook_configs: [{ url: 'http://127.0.0.1:5001/hook', send_resolved: true }] },
    ]);
    const { webhookUrl: _, ...noHook } = settings;
    expect(JSON.parse(renderAlertmanagerConfig(noHook)).receivers).toEqual([{ name: 'driftline' }]);
  });

  it('durations', () => {
    expect(durationMs('500ms')).toBe(500);
    expect(durationMs('15s')).toBe(15_000);
    expect(durationMs('5m')).toBe(300_000);
    expect(durationMs('4h')).toBe(14_400_000);
    expect(() => durationMs('5 minutes')).toThrow(/15s or 5m/);
  });
});

describe('scrape targets', () => {
  it('renders a file_sd list and refuses what is not host:port', () => {
    expect(JSON.parse(renderTargets(['127.0.0.1:9464', 'drift-monitor:9464'], { env: 'dev' }))).toEqual([
      { targets: ['127.0.0.1:9464', 'drift-monitor:9464'], labels: { env: 'dev' } },
    ]);
    expect(() => renderTargets(['http://127.0.0.1:9464/metrics'])).toThrow(/host:port/);
    expect(() => renderTargets(['127.0.0.1'])).toThrow(/host:port/);
  });

  it('writes <name>.json atomically (no temp file left) and removes it for an empty list', () => {
    const dir = path.join(tempDir(), 'targets');
    const file = writeScrapeTargets(dir, 'feature-api', ['127.0.0.1:9465']);
    expect(file).toBe(path.join(dir, 'feature-api.json'));
    expect(fs.readdirSync(dir)).toEqual(['feature-api.json']);
    expect(JSON.parse(fs.readFileSync(file, 'utf8'))[0].targets).toEqual(['127.0.0.1:9465']);
    writeScrapeTargets(dir, 'feature-api', []);
    expect(fs.readdirSync(dir)).toEqual([]);
    expect(() => writeScrapeTargets(dir, '../escape', ['127.0.0.1:1'])).toThrow(/file name/);
  });
});

describe("Debian's Alertmanager assets path", () => {
  it('is rewritten in place to a relative path of the same length, every occurrence', () => {
    expect(ALERTMANAGER_ASSETS).toHaveLength(ALERTMANAGER_ASSETS_ABSOLUTE.length);
    expect(path.isAbsolute(ALERTMANAGER_ASSETS)).toBe(false);
    const binary = path.join(tempDir(), 'alertmanager');
    const head = Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 1, 2]);
    fs.writeFileSync(
      binary,
      Buffer.concat([head, Buffer.from(`${ALERTMANAGER_ASSETS_ABSOLUTE}\0x${ALERTMANAGER_ASSETS_ABSOLUTE}/ui/\0tail`)]),
    );
    const size = fs.statSync(binary).size;
    expect(relocateAlertmanagerAssets(binary)).toBe(2);
    const patched = fs.readFileSync(binary);
    expect(patched.length).toBe(size);
    expect(patched.subarray(0, head.length)).toEqual(head);
    expect(patched.toString('latin1')).toContain(`${ALERTMANAGER_ASSETS}\0x${ALERTMANAGER_ASSETS}/ui/\0tail`);
    expect(patched.includes(Buffer.from(ALERTMANAGER_ASSETS_ABSOLUTE))).toBe(false);
    expect(relocateAlertmanagerAssets(binary)).toBe(0); // idempotent
  });
});

describe('monitoringDown / monitoringStatus', () => {
  it('nothing recorded: nothing stopped, no status', async () => {
    const stateDir = tempDir();
    expect(monitoringStatus({ stateDir })).toBeUndefined();
    expect(await monitoringDown({ stateDir })).toEqual({ stopped: 0 });
  });

  it('never signals a recorded pid that is not ours (recycled pid), and forgets the state', async () => {
    const stateDir = tempDir();
    const dir = path.join(stateDir, 'monitoring');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'state.json'),
      JSON.stringify({
        version: 1,
        endpoints: { prometheusUrl: 'http://127.0.0.1:1', alertmanagerUrl: 'http://127.0.0.1:2', targetsDir: dir },
        // This test process: alive, but another start time and no marker of ours.
        processes: [
          {
            name: 'prometheus',
            pid: process.pid,
            startTime: '1',
            markers: ['--config.file=/nowhere'],
            port: 1,
            logFile: '/dev/null',
          },
        ],
      }),
    );
    expect(monitoringStatus({ stateDir })?.processes).toEqual([{ name: 'prometheus', pid: process.pid, alive: false }]);
    // `stack down` takes the monitoring state down with the stack's.
    expect(await stackDown({ stateDir })).toEqual({ stopped: 0 });
    expect(monitoringStatus({ stateDir })).toBeUndefined();
    expect(process.kill(process.pid, 0)).toBe(true);
  });
});
