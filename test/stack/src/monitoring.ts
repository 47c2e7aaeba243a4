import fs from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import { withCacheLock } from './cache.js';
import { type ConfigOverrides, loadConfig } from './config.js';
import { acquireLock } from './lock.js';
import { assignPorts } from './ports.js';
import { checkOwnership, type SpawnedProcess, spawnDetached, stopProcesses } from './proc.js';
import { run, runChecked, sleep, tailFile, which } from './util.js';

/**
 * Prometheus and Alertmanager from Debian's packages (`prometheus` 2.42, `prometheus-alertmanager`
 * 0.25, which also carries promtool), run as processes on loopback ports. Optional: `stack up --with
 * monitoring` starts a shared instance under `<stateDir>/monitoring`; tests start private instances
 * with their own rules, intervals and webhook (`monitoringUp({ dir })`).
 */

/** Binaries extracted from the .deb packages (or found in DRIFTLINE_STACK_PROMETHEUS_DIR). */
export interface MonitoringDist {
  prometheus: string;
  promtool: string;
  alertmanager: string;
  /** e.g. `prometheus 2.42.0+ds-5+deb12u1, prometheus-alertmanager 0.25.0-1+b4` */
  versions: string;
}

const PACKAGES = ['prometheus', 'prometheus-alertmanager'] as const;

function isRoot(): boolean {
  return typeof process.getuid === 'function' && process.getuid() === 0;
}

async function aptUpdate(logFile: string, log: (line: string) => void): Promise<boolean> {
  const apt = which('apt-get');
  if (apt === undefined) return false;
  let prefix: string[] = [];
  if (!isRoot()) {
    const sudo = which('sudo');
    if (sudo === undefined || (await run(sudo, ['-n', 'true'], { timeoutMs: 10_000 })).code !== 0) return false;
    prefix = [sudo, '-n'];
  }
  log(`apt-get update (the package lists do not have ${PACKAGES.join(', ')}; log: ${logFile})`);
  const [command, ...args] = [...prefix, apt, 'update'];
  if (command === undefined) return false;
  return (await run(command, args, { logFile, timeoutMs: 5 * 60_000 })).code === 0;
}

function binariesIn(dir: string): Omit<MonitoringDist, 'versions'> | undefined {
  const pick = (...names: string[]) => names.map((n) => path.join(dir, n)).find((f) => which(f) !== undefined);
  const prometheus = pick('prometheus');
  const promtool = pick('promtool');
  // Debian names it prometheus-alertmanager; upstream archives name it alertmanager.
  const alertmanager = pick('prometheus-alertmanager', 'alertmanager');
  if (prometheus === undefined || promtool === undefined || alertmanager === undefined) return undefined;
  return { prometheus, promtool, alertmanager };
}

/**
 * Prometheus, promtool and Alertmanager: from DRIFTLINE_STACK_PROMETHEUS_DIR when set, else from
 * Debian's packages, fetched once with `apt-get download` (needs no root; `apt-get update` is run
 * first only when the lists lack the packages and we may) and unpacked with `dpkg-deb -x` into
 * `<cacheDir>/monitoring`. A marker is written only after a complete extraction.
 */
export async function ensureMonitoringDist(
  options: ConfigOverrides & { log?: (line: string) => void; env?: NodeJS.ProcessEnv } = {},
): Promise<MonitoringDist> {
  const env = options.env ?? process.env;
  const log = options.log ?? (() => {});
  const explicit = env.DRIFTLINE_STACK_PROMETHEUS_DIR?.trim();
  if (explicit) {
    const found = binariesIn(explicit);
    if (found === undefined) {
      throw new Error(
        `DRIFTLINE_STACK_PROMETHEUS_DIR=${explicit} must hold prometheus, promtool and alertmanager (or prometheus-alertmanager)`,
      );
    }
    return { ...found, versions: `from ${explicit}` };
  }
  const cfg = loadConfig(env, options);
  const root = path.join(cfg.cacheDir, 'monitoring');
  const marker = path.join(root, '.complete');
  const bin = path.join(root, 'root', 'usr', 'bin');
  const cached = () => {
    const found = fs.existsSync(marker) ? binariesIn(bin) : undefined;
    return found && { ...found, versions: fs.readFileSync(marker, 'utf8').trim() };
  };
  const hit = cached();
  if (hit) return hit;
  return withCacheLock(cfg.cacheDir, 'monitoring', { log }, async () => {
    const again = cached(); // another run may have finished it while we waited
    if (again) return again;
    for (const tool of ['apt-get', 'dpkg-deb']) {
      if (which(tool) === undefined) {
        throw new Error(
          `${tool} not found: Prometheus and Alertmanager come from Debian's packages (${PACKAGES.join(', ')}); ` +
            'on another system point DRIFTLINE_STACK_PROMETHEUS_DIR at a folder with prometheus, promtool and alertmanager',
        );
      }
    }
    fs.rmSync(root, { recursive: true, force: true });
    const debs = path.join(root, 'debs');
    fs.mkdirSync(debs, { recursive: true });
    const logFile = path.join(root, 'download.log');
    log(`downloading Debian's ${PACKAGES.join(', ')} (once, into ${root})`);
    const download = () => run('apt-get', ['download', ...PACKAGES], { cwd: debs, logFile, timeoutMs: 10 * 60_000 });
    let result = await download();
    if (
      result.code !== 0 &&
      /Unable to locate|No packages found|has no installation candidate|Failed to fetch|404/i.test(result.output)
    ) {
      if (await aptUpdate(logFile, log)) result = await download();
    }
    if (result.code !== 0) {
      throw new Error(
        `apt-get download ${PACKAGES.join(' ')} failed (log: ${logFile}):\n${result.output.trim().split('\n').slice(-10).join('\n')}`,
      );
    }
    const files = fs.readdirSync(debs).filter((f) => f.endsWith('.deb'));
    const versions: string[] = [];
    for (const pkg of PACKAGES) {
      const deb = files.find((f) => f.startsWith(`${pkg}_`));
      if (deb === undefined) throw new Error(`apt-get download left no ${pkg}_*.deb in ${debs}`);
      // Only the Go binaries are used: static, they run from any folder without the packages' dependencies.
      await runChecked('dpkg-deb', ['-x', path.join(debs, deb), path.join(root, 'root')], {
        logFile,
        what: `dpkg-deb -x ${deb}`,
      });
      versions.push(`${pkg} ${decodeURIComponent(deb.split('_')[1] ?? '?')}`);
    }
    const found = binariesIn(bin);
    if (found === undefined) throw new Error(`the packages did not contain the expected binaries in ${bin}`);
    relocateAlertmanagerAssets(found.alertmanager);
    fs.writeFileSync(marker, `${versions.join(', ')}\n`);
    for (const f of files) fs.rmSync(path.join(debs, f)); // the extracted tree is the cache
    log(`monitoring: ${versions.join(', ')}`);
    const done = cached();
    if (done === undefined) throw new Error(`could not read back ${marker}`);
    return done;
  });
}

/**
 * Debian's Alertmanager reads its default notification template from the absolute path
 * /usr/share/prometheus/alertmanager (its packaging patch; no flag overrides it) and exits
 * without it. We install nothing system-wide, so the copy in the cache gets that path rewritten in
 * place to a relative one of the same length, ALERTMANAGER_ASSETS, which each instance's working
 * folder links to the extracted assets. Go strings carry their length, so an equal-length rewrite
 * is safe; a binary without the path (another build) is left as it is.
 */
export const ALERTMANAGER_ASSETS_ABSOLUTE = '/usr/share/prometheus/alertmanager';
export const ALERTMANAGER_ASSETS = `${'./'.repeat(8)}alertmanager-share`;

export function relocateAlertmanagerAssets(binary: string): number {
  const from = Buffer.from(ALERTMANAGER_ASSETS_ABSOLUTE);
  const to = Buffer.from(ALERTMANAGER_ASSETS);
  if (from.length !== to.length) throw new Error('unreachable: the asset paths must have the same length');
  const bytes = fs.readFileSync(binary);
  let count = 0;
  for (let at = bytes.indexOf(from); at >= 0; at = bytes.indexOf(from, at + from.length)) {
    to.copy(bytes, at);
    count++;
  }
  if (count > 0) fs.writeFileSync(binary, bytes);
  return count;
}

/** What `monitoringUp` writes and starts. Durations are Prometheus duration strings (`1s`, `5m`). */
export interface MonitoringSettings {
  prometheusPort: number;
  alertmanagerPort: number;
  /** Folder of file-based service discovery: every `*.json` there lists targets scraped as job `driftline`. */
  targetsDir: string;
  /** Rule files (absolute paths or globs) Prometheus loads. */
  ruleFiles: string[];
  scrapeInterval: string;
  evaluationInterval: string;
  /** Alertmanager's webhook receiver; none = alerts are kept in Alertmanager (its API and UI) only. */
  webhookUrl?: string | undefined;
  groupWait: string;
  groupInterval: string;
  repeatInterval: string;
}

/**
 * prometheus.yml as JSON (a subset of YAML that Prometheus reads): one job `driftline` fed by
 * file-based discovery, so anyone can add a running service by dropping a file, and one Alertmanager.
 */
export function renderPrometheusConfig(s: MonitoringSettings): string {
  return `${JSON.stringify(
    {
      global: {
        scrape_interval: s.scrapeInterval,
        scrape_timeout: minDuration(s.scrapeInterval, '10s'),
        evaluation_interval: s.evaluationInterval,
      },
      rule_files: s.ruleFiles,
      alerting: { alertmanagers: [{ static_configs: [{ targets: [`127.0.0.1:${s.alertmanagerPort}`] }] }] },
      scrape_configs: [
        {
          job_name: 'driftline',
          // file_sd also watches the folder (inotify); the refresh is the fallback.
          file_sd_configs: [{ files: [path.join(s.targetsDir, '*.json')], refresh_interval: '5s' }],
        },
      ],
    },
    null,
    2,
  )}\n`;
}

/** alertmanager.yml as JSON: everything to one receiver, grouped by alert name. */
export function renderAlertmanagerConfig(s: MonitoringSettings): string {
  const receiver =
    s.webhookUrl === undefined
      ? { name: 'driftline' }
      : { name: 'driftline', webhook_configs: [{ url: s.webhookUrl, send_resolved: true }] };
  return `${JSON.stringify(
    {
      route: {
        receiver: 'driftline',
        group_by: ['alertname'],
        group_wait: s.groupWait,
        group_interval: s.groupInterval,
        repeat_interval: s.repeatInterval,
      },
      receivers: [receiver],
    },
    null,
    2,
  )}\n`;
}

const DURATION = /^(\d+)(ms|s|m|h)$/;
const UNIT_MS: Record<string, number> = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 };

/** Milliseconds of a simple Prometheus duration (`500ms`, `15s`, `5m`, `1h`). */
export function durationMs(value: string): number {
  const m = DURATION.exec(value);
  if (m === null) throw new Error(`not a duration like 15s or 5m: ${JSON.stringify(value)}`);
  return Number(m[1]) * (UNIT_MS[m[2] ?? 's'] ?? 1_000);
}

function minDuration(a: string, b: string): string {
  return durationMs(a) <= durationMs(b) ? a : b;
}

/** A file_sd target list: `[{ targets: ['127.0.0.1:9464'], labels: {...} }]`. */
export function renderTargets(targets: readonly string[], labels: Record<string, string> = {}): string {
  for (const t of targets) {
    if (!/^[A-Za-z0-9.[\]:-]+:\d{1,5}$/.test(t))
      throw new Error(`a scrape target is host:port (got ${JSON.stringify(t)})`);
  }
  return `${JSON.stringify([{ targets, labels }], null, 2)}\n`;
}

/**
 * Writes (atomically: Prometheus watches the folder) `<targetsDir>/<name>.json` listing `targets`;
 * an empty list removes the file. Prometheus picks it up within seconds.
 */
export function writeScrapeTargets(
  targetsDir: string,
  name: string,
  targets: readonly string[],
  labels: Record<string, string> = {},
): string {
  if (!/^[A-Za-z0-9._-]+$/.test(name)) throw new Error(`a target file name is letters, digits, . _ - (got ${name})`);
  fs.mkdirSync(targetsDir, { recursive: true });
  const file = path.join(targetsDir, `${name}.json`);
  if (targets.length === 0) {
    fs.rmSync(file, { force: true });
    return file;
  }
  // The temp name does not end in .json, so discovery never reads half a file.
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, renderTargets(targets, labels));
  fs.renameSync(tmp, file);
  return file;
}

/** The runner's default DRIFTLINE_HTTP_PORT: `driftline run` with no port set is scraped out of the box. */
export const DEFAULT_SERVICE_TARGET = '127.0.0.1:9464';

export interface MonitoringUpOptions extends ConfigOverrides {
  /** This instance's folder (config, data, logs, state); default `<stateDir>/monitoring` (the shared one). */
  dir?: string;
  log?: (line: string) => void;
  /** Rule files or globs; default docker/prometheus/rules/*.yml. */
  ruleFiles?: string[];
  /** Default `5s`. */
  scrapeInterval?: string;
  /** Default `5s`. */
  evaluationInterval?: string;
  webhookUrl?: string;
  /** Alertmanager route timings; defaults `5s`, `30s`, `4h`. */
  groupWait?: string;
  groupInterval?: string;
  repeatInterval?: string;
  /** Targets written to `targets/default.json` on a fresh start; default [DEFAULT_SERVICE_TARGET]. */
  targets?: string[];
  prometheusPort?: number;
  alertmanagerPort?: number;
  /** Readiness timeout per process (default 60 s). */
  timeoutMs?: number;
}

export interface MonitoringEndpoints {
  prometheusUrl: string;
  alertmanagerUrl: string;
  /** Drop `*.json` target lists here (see `writeScrapeTargets`). */
  targetsDir: string;
}

const processSchema = z.object({
  name: z.enum(['prometheus', 'alertmanager']),
  pid: z.number().int().positive(),
  startTime: z.string().min(1),
  markers: z.array(z.string().min(1)).min(1),
  port: z.number().int(),
  logFile: z.string(),
});
const monitoringStateSchema = z.object({
  version: z.literal(1),
  endpoints: z.object({ prometheusUrl: z.string(), alertmanagerUrl: z.string(), targetsDir: z.string() }),
  processes: z.array(processSchema),
});
type MonitoringState = z.infer<typeof monitoringStateSchema>;

/** The shared instance's folder for these overrides. */
export function monitoringDir(options: ConfigOverrides & { dir?: string } = {}): string {
  return path.resolve(options.dir ?? path.join(loadConfig(process.env, options).stateDir, 'monitoring'));
}

function readMonitoringState(dir: string): MonitoringState | undefined {
  const file = path.join(dir, 'state.json');
  if (!fs.existsSync(file)) return undefined;
  const parsed = monitoringStateSchema.safeParse(JSON.parse(fs.readFileSync(file, 'utf8')));
  if (!parsed.success) throw new Error(`${file} is not a monitoring state file: ${parsed.error.issues[0]?.message}`);
  return parsed.data;
}

function writeMonitoringState(dir: string, state: MonitoringState): void {
  const file = path.join(dir, 'state.json');
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, `${JSON.stringify(monitoringStateSchema.parse(state), null, 2)}\n`);
  fs.renameSync(tmp, file);
}

async function httpReady(url: string): Promise<void> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
}

async function waitUp(name: string, url: string, spawned: SpawnedProcess, logFile: string, timeoutMs: number) {
  let exited: string | undefined;
  void spawned.exited.then((m) => {
    exited = m;
  });
  const deadline = Date.now() + timeoutMs;
  let last = '';
  for (;;) {
    if (exited !== undefined)
      throw new Error(`${name} ${exited} before becoming ready\nlog: ${logFile}\n${tailFile(logFile, 20)}`);
    try {
      await httpReady(url);
      return;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    if (Date.now() > deadline) {
      throw new Error(
        `${name} was not ready within ${timeoutMs} ms (${last})\nlog: ${logFile}\n${tailFile(logFile, 20)}`,
      );
    }
    await sleep(200);
  }
}

/**
 * Starts Prometheus and Alertmanager for `dir` (or reuses them when they already run there and
 * answer), detached in their own process groups, on free loopback ports. Stop them with
 * `monitoringDown` with the same `dir` (`stack down` stops the shared one).
 */
export async function monitoringUp(
  options: MonitoringUpOptions = {},
): Promise<{ endpoints: MonitoringEndpoints; startedNow: boolean; dist: MonitoringDist }> {
  const log = options.log ?? (() => {});
  const dir = monitoringDir(options);
  const cfg = loadConfig(process.env, options);
  const dist = await ensureMonitoringDist({ ...options, log });
  fs.mkdirSync(dir, { recursive: true });
  const release = await acquireLock(path.join(dir, '.lock'), { timeoutMs: 60_000, log });
  try {
    const existing = readMonitoringState(dir);
    if (existing !== undefined) {
      const owned = existing.processes.every((p) => checkOwnership(p) === 'owned');
      if (owned && existing.processes.length === 2) {
        try {
          await httpReady(`${existing.endpoints.prometheusUrl}/-/ready`);
          await httpReady(`${existing.endpoints.alertmanagerUrl}/-/ready`);
          log(`monitoring: reusing Prometheus ${existing.endpoints.prometheusUrl}`);
          return { endpoints: existing.endpoints, startedNow: false, dist };
        } catch {
          // not answering: replaced below
        }
      }
      await stopProcesses(existing.processes, { log, graceMs: 5_000 });
      fs.rmSync(path.join(dir, 'state.json'), { force: true });
    }
    const ports = await assignPorts([
      { name: 'prometheus', fixed: options.prometheusPort },
      { name: 'alertmanager', fixed: options.alertmanagerPort },
    ]);
    const settings: MonitoringSettings = {
      prometheusPort: ports.get('prometheus') ?? 0,
      alertmanagerPort: ports.get('alertmanager') ?? 0,
      targetsDir: path.join(dir, 'targets'),
      ruleFiles: options.ruleFiles ?? [path.join(cfg.repoRoot, 'docker', 'prometheus', 'rules', '*.yml')],
      scrapeInterval: options.scrapeInterval ?? '5s',
      evaluationInterval: options.evaluationInterval ?? '5s',
      webhookUrl: options.webhookUrl,
      groupWait: options.groupWait ?? '5s',
      groupInterval: options.groupInterval ?? '30s',
      repeatInterval: options.repeatInterval ?? '4h',
    };
    for (const sub of ['prometheus-data', 'alertmanager-data', 'logs']) {
      fs.rmSync(path.join(dir, sub), { recursive: true, force: true });
      fs.mkdirSync(path.join(dir, sub), { recursive: true });
    }
    fs.mkdirSync(settings.targetsDir, { recursive: true });
    writeScrapeTargets(settings.targetsDir, 'default', options.targets ?? [DEFAULT_SERVICE_TARGET]);
    const assets = path.join(dir, path.basename(ALERTMANAGER_ASSETS));
    fs.rmSync(assets, { force: true });
    fs.symlinkSync(
      path.join(path.dirname(path.dirname(dist.alertmanager)), 'share', 'prometheus', 'alertmanager'),
      assets,
    );
    const promConfig = path.join(dir, 'prometheus.yml');
    const amConfig = path.join(dir, 'alertmanager.yml');
    fs.writeFileSync(promConfig, renderPrometheusConfig(settings));
    fs.writeFileSync(amConfig, renderAlertmanagerConfig(settings));
    // Check what we wrote before starting: a broken rule file fails here with promtool's message.
    await runChecked(dist.promtool, ['check', 'config', promConfig], {
      what: 'promtool check config',
      timeoutMs: 60_000,
    });

    const endpoints: MonitoringEndpoints = {
      prometheusUrl: `http://127.0.0.1:${settings.prometheusPort}`,
      alertmanagerUrl: `http://127.0.0.1:${settings.alertmanagerPort}`,
      targetsDir: settings.targetsDir,
    };
    const state: MonitoringState = { version: 1, endpoints, processes: [] };
    const timeoutMs = options.timeoutMs ?? 60_000;
    const start = async (name: 'prometheus' | 'alertmanager', command: string, args: string[], port: number) => {
      const logFile = path.join(dir, 'logs', `${name}.log`);
      const spawned = await spawnDetached({ command, args, cwd: dir, logFile });
      // The config path is unique to this instance: with the start time it proves a pid is ours.
      const marker = args.find((a) => a.startsWith('--config.file=')) ?? command;
      state.processes.push({ name, pid: spawned.pid, startTime: spawned.startTime, markers: [marker], port, logFile });
      writeMonitoringState(dir, state);
      log(`${name}: started pid ${spawned.pid} on 127.0.0.1:${port}`);
      return { spawned, logFile };
    };
    try {
      const am = await start(
        'alertmanager',
        dist.alertmanager,
        [
          `--config.file=${amConfig}`,
          `--storage.path=${path.join(dir, 'alertmanager-data')}`,
          `--web.listen-address=127.0.0.1:${settings.alertmanagerPort}`,
          // No cluster: its default listens on 0.0.0.0:9094, which neither a test nor a laptop wants.
          '--cluster.listen-address=',
        ],
        settings.alertmanagerPort,
      );
      const prom = await start(
        'prometheus',
        dist.prometheus,
        [
          `--config.file=${promConfig}`,
          `--storage.tsdb.path=${path.join(dir, 'prometheus-data')}`,
          `--web.listen-address=127.0.0.1:${settings.prometheusPort}`,
          '--storage.tsdb.retention.time=2d', // DriftlineFeatureValuesIgnored looks back 25 h
          // POST /-/reload after editing prometheus.yml or the rules.
          '--web.enable-lifecycle',
        ],
        settings.prometheusPort,
      );
      await Promise.all([
        waitUp('alertmanager', `${endpoints.alertmanagerUrl}/-/ready`, am.spawned, am.logFile, timeoutMs),
        waitUp('prometheus', `${endpoints.prometheusUrl}/-/ready`, prom.spawned, prom.logFile, timeoutMs),
      ]);
    } catch (err) {
      await stopProcesses(state.processes, { log, graceMs: 5_000 });
      fs.rmSync(path.join(dir, 'state.json'), { force: true });
      throw err;
    }
    return { endpoints, startedNow: true, dist };
  } finally {
    release();
  }
}

/** The running instance of `dir` (default: the shared one), or undefined. */
export function monitoringStatus(
  options: ConfigOverrides & { dir?: string } = {},
): { endpoints: MonitoringEndpoints; processes: Array<{ name: string; pid: number; alive: boolean }> } | undefined {
  const state = readMonitoringState(monitoringDir(options));
  if (state === undefined) return undefined;
  return {
    endpoints: state.endpoints,
    processes: state.processes.map((p) => ({ name: p.name, pid: p.pid, alive: checkOwnership(p) === 'owned' })),
  };
}

/** Stops exactly the Prometheus and Alertmanager that `monitoringUp` recorded in `dir`; keeps config and logs. */
export async function monitoringDown(
  options: ConfigOverrides & { dir?: string; log?: (line: string) => void; graceMs?: number } = {},
): Promise<{ stopped: number }> {
  const dir = monitoringDir(options);
  if (!fs.existsSync(path.join(dir, 'state.json'))) return { stopped: 0 };
  const log = options.log ?? (() => {});
  const release = await acquireLock(path.join(dir, '.lock'), { timeoutMs: 60_000, log });
  try {
    const state = readMonitoringState(dir);
    if (state === undefined) return { stopped: 0 };
    const stopped = await stopProcesses(state.processes, { log, graceMs: options.graceMs ?? 10_000 });
    fs.rmSync(path.join(dir, 'state.json'), { force: true });
    for (const sub of ['prometheus-data', 'alertmanager-data']) {
      fs.rmSync(path.join(dir, sub), { recursive: true, force: true });
    }
    return { stopped };
  } finally {
    release();
  }
}
