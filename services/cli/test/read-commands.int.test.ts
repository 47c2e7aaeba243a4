// `driftline report` and `model-card` as a user runs them (the source entry, its own process) on a
// ClickHouse shared through `driftline clickhouse serve`: defects found by a review.
import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import {
  closeSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { MAX_MODEL_CARDS, MAX_TIMELINE_EVENTS, modelCardFileName } from '@driftline/report';
import { type ClickHouse, chTime, createClickHouse, migrate, migrations } from '@driftline/warehouse';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const work = mkdtempSync(join(tmpdir(), 'driftline-read-commands-'));
const dataPath = join(work, 'chdb');
const database = `read_${randomUUID().replaceAll('-', '').slice(0, 12)}`;
// Names that need percent-encoding in a URL.
const MODEL = 'fraud detector';
const VERSION = 'v1 beta';
const T0 = Date.UTC(2026, 10, 1);
const H = 3_600_000;

let host: ChildProcess | undefined;
let url = '';
let ch: ClickHouse;

/** The environment of a command: this process's, without its ClickHouse settings. */
function env(extra: Record<string, string>): NodeJS.ProcessEnv {
  const base = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('DRIFTLINE_CLICKHOUSE_')));
  return { ...base, ...extra };
}

async function driftline(
  args: readonly string[],
  extra: Record<string, string>,
  timeout = 0,
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(
      process.execPath,
      ['--import', 'tsx', '--conditions=source', 'services/cli/src/main.ts', ...args],
      { cwd: root, env: env(extra), maxBuffer: 64 * 1024 * 1024, timeout },
    );
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

// The tests run side by side (each command is its own process, mostly waiting on its start and on
// the server): each writes in a directory or under a model name of its own.
const served = () => ({ DRIFTLINE_CLICKHOUSE_URL: url, DRIFTLINE_CLICKHOUSE_DATABASE: database });
const range = ['--from', String(T0), '--to', String(T0 + 4 * H)];

beforeAll(async () => {
  host = spawn(
    process.execPath,
    ['--import', 'tsx', '--conditions=source', 'services/cli/src/main.ts', 'clickhouse', 'serve'],
    {
      cwd: root,
      env: env({ DRIFTLINE_CLICKHOUSE_PATH: dataPath, DRIFTLINE_CLICKHOUSE_HOST_PORT: '0' }),
      stdio: ['ignore', 'pipe', 'ignore'],
    },
  );
  url = await new Promise<string>((resolve, reject) => {
    let out = '';
    host!.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('\n')) resolve((JSON.parse(out.split('\n')[0]!) as { url: string }).url);
    });
    host!.once('exit', (code) => reject(new Error(`driftline clickhouse serve exited ${code}`)));
  });
  ch = await createClickHouse({ mode: 'server', url, database, timeoutMs: 30_000 });
  await migrate(ch, migrations);
  await ch.insert('model_versions', [
    {
      model: MODEL,
      version: VERSION,
      request_id: 'req-1',
      base_version: 'v0',
      status: 'PROMOTED',
      promotion_reason: 'better',
      data_from: chTime(T0 - 2 * H),
      data_to: chTime(T0),
      rows_train: 100,
      rows_holdout: 20,
      metrics: { roc_auc: 0.8 },
      params: '{}',
      artifact_uri: 'file:///m.json',
      device: 'cpu',
      device_reason: 'no GPU',
      published: 1,
      registered_at: chTime(T0 + H),
      updated_at: chTime(T0 + H),
    },
  ]);
  await ch.insert('drift_windows', [
    {
      model: MODEL,
      version: VERSION,
      reference_id: 'r',
      feature: 'amount',
      window_start: chTime(T0 + H),
      window_end: chTime(T0 + 2 * H),
      method: 'psi',
      statistic: 0.3,
      p_value: null,
      threshold: 0.2,
      drifted: 1,
      computed_at: chTime(T0 + 2 * H),
    },
  ]);
}, 180_000);

afterAll(async () => {
  await ch?.close();
  if (host !== undefined && host.exitCode === null && host.signalCode === null) {
    const exited = new Promise((resolve) => host!.once('exit', resolve));
    host.kill('SIGTERM');
    await exited;
  }
  rmSync(work, { recursive: true, force: true });
});

describe.concurrent('driftline report (found by a review)', () => {
  it('links every model card so that the browser finds it, whatever the names', async () => {
    const dir = mkdtempSync(join(work, 'cards-'));
    const out = join(dir, 'report.html');
    const { code, stderr } = await driftline(['report', '--model', MODEL, ...range, '--out', out], served());
    expect([code, stderr]).toEqual([0, expect.stringContaining('"model_cards":1')]);
    const hrefs = [...readFileSync(out, 'utf8').matchAll(/<a href="([^"]+)">/g)].map((m) => m[1]!);
    expect(hrefs).toHaveLength(1);
    // As a browser resolves a relative link of a file:// page: a URL, then its path percent-decoded.
    const target = fileURLToPath(new URL(hrefs[0]!, pathToFileURL(out)));
    expect(readdirSync(dir)).toContain(target.slice(dir.length + 1));
    expect(readFileSync(target, 'utf8')).toContain('— model card');
  });

  it('with --out /dev/stdout writes the page alone on stdout and no model card (they went into /dev)', async () => {
    const before = readdirSync('/dev').filter((f) => f.startsWith('model-card-'));
    const { code, stdout, stderr } = await driftline(
      ['report', '--model', MODEL, ...range, '--out', '/dev/stdout'],
      served(),
    );
    expect(code).toBe(0);
    expect(stdout.startsWith('<!doctype html>')).toBe(true);
    expect(stdout.endsWith('</html>\n')).toBe(true);
    expect(stderr).toContain('note: /dev/stdout is not a regular file: no model cards written');
    expect(stderr).toContain('"model_cards":0');
    expect(readdirSync('/dev').filter((f) => f.startsWith('model-card-'))).toEqual(before);
  });

  it('with --out /dev/stdout on a full device: the error line alone, no summary saying the page was written, exit 1', async () => {
    const full = openSync('/dev/full', 'w');
    try {
      const direct = spawn(
        process.execPath,
        [
          '--import',
          'tsx',
          '--conditions=source',
          'services/cli/src/main.ts',
          'report',
          '--model',
          MODEL,
          ...range,
          '--out',
          '/dev/stdout',
        ],
        { cwd: root, env: env(served()), stdio: ['ignore', full, 'pipe'] },
      );
      let errors = '';
      direct.stderr?.setEncoding('utf8').on('data', (d: string) => {
        errors += d;
      });
      const code = await new Promise<number | null>((done) => direct.on('close', (c) => done(c)));
      expect({ code, errors }).toEqual({
        code: 1,
        errors: expect.stringMatching(/^driftline: cannot write the output: ENOSPC[^\n]*\n$/),
      });
    } finally {
      closeSync(full);
    }
  });

  it('says so, in the page and on stderr, when the model has no data in the range', async () => {
    const out = join(work, 'unknown.html');
    const { code, stderr } = await driftline(['report', '--model', 'fraud detektor', ...range, '--out', out], served());
    expect(code).toBe(0);
    const note =
      'no data for model fraud detektor in [2026-11-01T00:00:00.000Z, 2026-11-01T04:00:00.000Z) (models with drift windows then: fraud detector)';
    expect(stderr).toContain(`note: ${note}\n`);
    expect(readFileSync(out, 'utf8')).toContain(`<p>${note}</p>`);
  });
});

describe.concurrent('driftline report: model cards beside the page (found by a review)', () => {
  it('never writes a card through a symbolic link planted at its name', async () => {
    // The names are predictable: a link at one made the report overwrite whatever it pointed to.
    const dir = mkdtempSync(join(work, 'linked-'));
    const precious = join(work, `precious-${randomUUID()}.txt`);
    writeFileSync(precious, 'keep me');
    const card = join(dir, modelCardFileName(MODEL, VERSION));
    symlinkSync(precious, card);
    const out = join(dir, 'report.html');
    const { code, stderr } = await driftline(['report', '--model', MODEL, ...range, '--out', out], served());
    expect(readFileSync(precious, 'utf8')).toBe('keep me');
    expect(lstatSync(card).isSymbolicLink()).toBe(true);
    expect([code, stderr]).toEqual([
      2,
      expect.stringContaining(`cannot write the model card ${card} (it is a symbolic link`),
    ]);
    // The page stands, and does not link the card it could not write.
    const page = readFileSync(out, 'utf8');
    expect(page).toContain('</html>');
    expect(page).not.toContain('<a href=');
  });

  it('writes the cards first and links only those written: a card refused is no dead link, the others still written', async () => {
    // The page linked every card read, was written, then the cards: the first refused ended the
    // command, and the page linked it and every card after it, none of them there.
    const model = 'two cards';
    const version = (name: string, status: string, t: number) => ({
      model,
      version: name,
      request_id: `req-${name}`,
      base_version: 'v0',
      status,
      promotion_reason: 'evidence',
      data_from: chTime(T0 - 2 * H),
      data_to: chTime(T0),
      metrics: { roc_auc: 0.8 },
      registered_at: chTime(t),
      updated_at: chTime(t),
    });
    await ch.insert('model_versions', [version('a', 'PROMOTED', T0 + H), version('b', 'REJECTED', T0 + 2 * H)]);
    const dir = mkdtempSync(join(work, 'refused-'));
    const refused = join(dir, modelCardFileName(model, 'a'));
    symlinkSync(join(work, 'nowhere.html'), refused);
    const out = join(dir, 'report.html');
    const { code, stderr } = await driftline(['report', '--model', model, ...range, '--out', out], served());
    expect(code).toBe(2);
    expect(stderr.split('\n').filter((l) => l.startsWith('driftline: '))).toEqual([
      expect.stringMatching(
        new RegExp(`^driftline: --out: cannot write the model card ${refused} \\(it is a symbolic link`),
      ),
    ]);
    expect(stderr).toContain('"model_cards":1');
    const hrefs = [...readFileSync(out, 'utf8').matchAll(/<a href="([^"]+)">/g)].map((m) =>
      fileURLToPath(new URL(m[1]!, pathToFileURL(out))),
    );
    expect(hrefs).toEqual([join(dir, modelCardFileName(model, 'b'))]);
    expect(hrefs.every((h) => existsSync(h))).toBe(true);
    expect(existsSync(join(work, 'nowhere.html'))).toBe(false);
  });

  it('refuses a FIFO planted at a card name at once, instead of waiting for a reader for ever', async () => {
    const dir = mkdtempSync(join(work, 'fifo-'));
    const fifo = join(dir, modelCardFileName(MODEL, VERSION));
    // Node has no mkfifo; by its path, which knip does not count as an unlisted binary.
    execFileSync('/usr/bin/mkfifo', [fifo]);
    const out = join(dir, 'report.html');
    const { code, stderr } = await driftline(['report', '--model', MODEL, ...range, '--out', out], served(), 60_000);
    expect([code, stderr]).toEqual([
      2,
      expect.stringContaining(`driftline: --out: cannot write the model card ${fifo} (it is not a regular file;`),
    ]);
    expect(lstatSync(fifo).isFIFO()).toBe(true);
    expect(readFileSync(out, 'utf8')).not.toContain('<a href=');
  }, 90_000);

  it(`writes at most ${MAX_MODEL_CARDS} cards beside the page, and says so on the page and on stderr`, async () => {
    // One card per version of the range, ~7 queries each, before the page: 10,000 versions took six minutes.
    const model = 'many versions';
    const versions = MAX_TIMELINE_EVENTS + 30;
    await ch.insert(
      'model_transitions',
      Array.from({ length: versions }, (_, i) => ({
        model,
        version: `v${String(i).padStart(4, '0')}`,
        from_stage: 'candidate',
        to_stage: 'shadow',
        at: chTime(T0 + H + i * 1000),
        decided_by: 'policy:promotion',
        reason: 'evidence',
        detail: '',
        evidence: '',
        canary_share: null,
        previous_version: null,
        recorded_at: chTime(T0 + H + i * 1000),
      })),
    );
    const dir = mkdtempSync(join(work, 'many-'));
    const out = join(dir, 'report.html');
    const { code, stderr } = await driftline(['report', '--model', model, ...range, '--out', out], served());
    expect(code).toBe(0);
    const cards = readdirSync(dir).filter((f) => f.startsWith('model-card-'));
    expect(cards).toHaveLength(MAX_MODEL_CARDS);
    // The latest versions' cards.
    expect(cards).toContain(modelCardFileName(model, `v${String(versions - 1).padStart(4, '0')}`));
    expect(cards).not.toContain(modelCardFileName(model, 'v0000'));
    // The page names the versions of the latest MAX_TIMELINE_EVENTS events.
    const note = `model cards for ${MAX_MODEL_CARDS} of the ${MAX_TIMELINE_EVENTS} versions the page names`;
    expect(stderr).toContain(
      `note: the timeline lists the latest ${MAX_TIMELINE_EVENTS} of ${versions} events (decisions, versions, stages)\n`,
    );
    expect(stderr).toContain(`note: ${note}`);
    expect(stderr).toContain(`note: reading model cards 1-10 of ${MAX_MODEL_CARDS}`);
    expect(stderr).toContain(`"model_cards":${MAX_MODEL_CARDS}`);
    const html = readFileSync(out, 'utf8');
    expect(html).toContain(note);
    expect([...html.matchAll(/<a href="/g)]).toHaveLength(MAX_MODEL_CARDS);
  }, 120_000);
});

describe.concurrent('report and model-card only read (found by a review)', () => {
  it.each([
    ['report', ['report', '--model', MODEL, '--out', join(work, 'typo.html')]],
    ['model-card', ['model-card', '--model', MODEL, '--version', VERSION]],
  ])(
    '%s: a mistyped DRIFTLINE_CLICKHOUSE_DATABASE is one configuration error line, and no database is created',
    async (_name, args) => {
      const typo = `${database}_typo`;
      const { code, stdout, stderr } = await driftline(args, { ...served(), DRIFTLINE_CLICKHOUSE_DATABASE: typo });
      expect({ code, stdout }).toEqual({ code: 78, stdout: '' });
      expect(stderr).toMatch(
        new RegExp(
          `^driftline: configuration error: DRIFTLINE_CLICKHOUSE_DATABASE: database "${typo}" does not exist on the ClickHouse server http://[^ ]+ \\(a typo, or nothing has written there yet\\)\\n$`,
        ),
      );
      const [row] = await ch.select<{ n: number }>(
        'SELECT count() AS n FROM system.databases WHERE name = {db:String}',
        {
          db: typo,
        },
      );
      expect(Number(row?.n)).toBe(0);
      expect(existsSync(join(work, 'typo.html'))).toBe(false);
    },
  );

  it('an embedded engine directory another process holds is one configuration error line naming it', async () => {
    const { code, stderr } = await driftline(['report', '--model', MODEL, '--out', join(work, 'locked.html')], {
      DRIFTLINE_CLICKHOUSE_PATH: dataPath,
      DRIFTLINE_CLICKHOUSE_DATABASE: database,
    });
    expect(code).toBe(78);
    // Not the engine's own "Code: 76 … Cannot lock file" line, not "internal error … report it".
    expect(stderr).toBe(
      `driftline: configuration error: DRIFTLINE_CLICKHOUSE_PATH: ${dataPath} is in use by another process (pid ${host!.pid}): the embedded engine opens a directory in one process only; point DRIFTLINE_CLICKHOUSE_URL at \`driftline clickhouse serve\` instead\n`,
    );
  });

  it('a status file a crashed engine left behind does not count as in use, even when its pid is alive again', async () => {
    const stale = join(work, 'stale');
    // An engine directory (a reader refuses one without metadata/: "no warehouse at …").
    mkdirSync(join(stale, 'metadata'), { recursive: true });
    // The pid of a live process that holds no lock on this directory (a pid reused after a crash).
    writeFileSync(join(stale, 'status'), `PID: ${host!.pid}\nStarted at: 2026-01-01 00:00:00\nRevision: 1\n`);
    const { code, stderr } = await driftline(['model-card', '--model', MODEL, '--version', VERSION], {
      DRIFTLINE_CLICKHOUSE_PATH: stale,
      DRIFTLINE_CLICKHOUSE_DATABASE: database,
    });
    expect(code).toBe(78);
    expect(stderr).toMatch(
      /^driftline: configuration error: DRIFTLINE_CLICKHOUSE_DATABASE: database "read_\w+" does not exist on the embedded engine at /,
    );
  });
});
