import { spawnSync } from 'node:child_process';
import {
  existsSync,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ConfigError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { parseCommandArgs } from '../src/args.js';
import { modelCommand } from '../src/commands/model.js';
import { modelCardCommand } from '../src/commands/model-card.js';
import { referenceCommand } from '../src/commands/reference.js';
import { reportCommand } from '../src/commands/report.js';
import { outputFile } from '../src/output-file.js';
import { parseTime } from '../src/time-options.js';

describe('--out and names: mistakes are usage errors naming the option, checked before any work', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cli-out-'));
  writeFileSync(join(dir, 'afile'), 'x');

  it.each([
    ['', /^--out: is empty; name a file$/],
    ['.', /^--out: .* is a directory; name a file$/],
    // It said "directory …/afile does not exist" of a file (found by a review).
    ['afile/x.html', /^--out: .*\/afile is not a directory; name a file in a directory$/],
    ['afile/sub/x.html', /^--out: .*\/afile is not a directory; name a file in a directory$/],
    ['missing/x.html', /^--out: directory .*missing does not exist$/],
  ])('--out %j', (value, message) => {
    expect(() => outputFile('--out', value === '' ? '' : join(dir, value))).toThrow(message);
  });

  it('the write probe never removes or replaces a symbolic link (dangling, or to a file)', () => {
    const links = mkdtempSync(join(tmpdir(), 'cli-out-links-'));
    // Dangling, to a file that may be created: accepted; the link stays, nothing is created.
    const dangling = join(links, 'page.html');
    symlinkSync('target.html', dangling);
    expect(outputFile('--html', dangling)).toBe(dangling);
    expect(lstatSync(dangling).isSymbolicLink()).toBe(true);
    expect(readlinkSync(dangling)).toBe('target.html');
    expect(existsSync(join(links, 'target.html'))).toBe(false);
    // Dangling into a directory that does not exist: refused naming the link; the link stays.
    const nowhere = join(links, 'nowhere.html');
    symlinkSync(join(links, 'no-dir', 'x.html'), nowhere);
    expect(() => outputFile('--html', nowhere)).toThrow(
      /^--html: cannot write .*no-dir\/x\.html \(the target of the symbolic link .*nowhere\.html\) \(ENOENT\)$/,
    );
    expect(lstatSync(nowhere).isSymbolicLink()).toBe(true);
    // To an existing file: the file is kept as it is.
    writeFileSync(join(links, 'old.html'), 'kept');
    const toFile = join(links, 'old-link.html');
    symlinkSync('old.html', toFile);
    expect(outputFile('--html', toFile)).toBe(toFile);
    expect(lstatSync(toFile).isSymbolicLink()).toBe(true);
    expect(readFileSync(join(links, 'old.html'), 'utf8')).toBe('kept');
    expect(readdirSync(links).sort()).toEqual(['nowhere.html', 'old-link.html', 'old.html', 'page.html']);
  });

  it('model-card and report refuse a bad --out before opening the warehouse, and write nothing', async () => {
    const env = { ...process.env };
    // No warehouse is reachable here: reaching it would fail differently (and take seconds).
    process.env.DRIFTLINE_CLICKHOUSE_URL = 'http://127.0.0.1:9';
    try {
      await expect(modelCardCommand(['--model', 'm', '--version', 'v1', '--out', dir])).rejects.toThrow(
        /^--out: .* is a directory/,
      );
      await expect(reportCommand(['--model', 'm', '--out', join(dir, 'nope', 'r.html')])).rejects.toThrow(
        /^--out: directory .* does not exist/,
      );
      expect(readdirSync(dir)).toEqual(['afile']);
    } finally {
      process.env = env;
    }
  });

  it.each([
    ['--model', 'a/b'],
    ['--version', 'v1\n<script>'],
    ['--version', '..'],
    ['--model', '.hidden'],
  ])('model stage refuses %s %j: a name the model-server could never load', async (option, name) => {
    const args = { '--model': 'fraud', '--version': 'v2', [option]: name };
    const error = await modelCommand([
      'stage',
      '--model',
      args['--model'],
      '--version',
      args['--version'],
      '--to',
      'shadow',
    ]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(option);
  });

  it.each([
    ['--model', 'a/b'],
    ['--version', 'v1\n<script>'],
    ['--version', '..'],
    ['--model', '.hidden'],
  ])('reference refuses %s %j as model stage does, before reading the file', async (option, name) => {
    const args = { '--model': 'fraud', '--version': 'v2', [option]: name };
    const error = await referenceCommand([
      '--model',
      args['--model'],
      '--version',
      args['--version'],
      '--file',
      join(dir, 'absent.csv'),
    ]).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).field).toBe(option);
  });
});

describe('options given twice', () => {
  it('are a usage error, not the last one silently; an option declared multiple may repeat', async () => {
    await expect(modelCardCommand(['--model', 'a', '--model', 'b', '--version', 'v1'])).rejects.toMatchObject({
      code: 'ERR_PARSE_ARGS_REPEATED_OPTION',
      message: 'option --model is given more than once; give it once',
    });
    const parsed = parseCommandArgs(['--exclude', 'a', '--exclude', 'b'], {
      exclude: { type: 'string', multiple: true },
    });
    expect(parsed.values.exclude).toEqual(['a', 'b']);
  });
});

describe('report --from/--to: integer epoch milliseconds from 2000 to 2100', () => {
  const now = Date.UTC(2025, 0, 31);

  it('takes epoch ms, ISO times, years and durations', () => {
    expect(parseTime('from', '1738281600000', now)).toBe(Date.UTC(2025, 0, 31));
    expect(parseTime('from', '946684800000', now)).toBe(Date.UTC(2000, 0, 1));
    expect(parseTime('to', '2025-01-30', now)).toBe(Date.UTC(2025, 0, 30));
    expect(parseTime('to', '2025', now)).toBe(Date.UTC(2025, 0, 1));
    expect(parseTime('from', '7d', now)).toBe(now - 7 * 86_400_000);
    expect(parseTime('from', '2025-01-30T12:00Z', now)).toBe(Date.UTC(2025, 0, 30, 12));
    expect(parseTime('from', '2025-01-30T12:00:00.5+01:00', now)).toBe(Date.UTC(2025, 0, 30, 11, 0, 0, 500));
    expect(parseTime('from', '2025-01-30t12:00:00z', now)).toBe(Date.UTC(2025, 0, 30, 12)); // RFC 3339 allows t and z
    expect(parseTime('from', '2024-02-29', now)).toBe(Date.UTC(2024, 1, 29));
  });

  it('reads a time without an offset as UTC, whatever the machine zone (found by a review: local time)', () => {
    // In a process of its own: TZ takes effect at start-up (a test worker may not apply a change).
    const values = [
      '2025-01-31T12:00',
      '2025-01-31 12:00:00',
      '2025-01-31t12:00:00.250',
      '2025-01-31',
      '2025-01-31 12:00+01:00',
    ];
    const script = `import(${JSON.stringify(fileURLToPath(new URL('../src/time-options.ts', import.meta.url)))}).then((m) =>
      console.log(JSON.stringify([new Date(Date.UTC(2025, 0, 31, 12)).getHours(), ...${JSON.stringify(values)}.map((v) => m.parseTime('from', v, 0))])))`;
    const run = spawnSync(process.execPath, ['--import', 'tsx', '--conditions=source', '-e', script], {
      env: { ...process.env, TZ: 'America/New_York' },
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(JSON.parse(run.stdout)).toEqual([
      7, // the zone is in effect
      Date.UTC(2025, 0, 31, 12),
      Date.UTC(2025, 0, 31, 12),
      Date.UTC(2025, 0, 31, 12, 0, 0, 250),
      Date.UTC(2025, 0, 31),
      Date.UTC(2025, 0, 31, 11),
    ]);
  }, 30_000);

  it.each(['7', '1', '12', '0000', '1999', 'Jan 5', 'tomorrow', '2025-1-5', '2025-02-30', '2025-02-29', '2025-13-01'])(
    'refuses %s, which V8 reads as a date (found by a review: `--from 7` was 2001-07-01)',
    (value) => {
      expect(() => parseTime('from', value, now)).toThrow(ConfigError);
      expect(() => parseTime('from', value, now)).toThrow(/^--from: must be (an ISO time|from 2000-01-01)/);
    },
  );

  it.each([
    ['1738281600', ', which looks like seconds'],
    ['1738281600000000', ', which looks like microseconds'],
    ['1738281600000000000', ', which looks like nanoseconds'],
    ['17382816000000000000000', ''],
    ['99999', ''],
    ['4102444800001', ''],
  ])('refuses %s naming the flag%s', (value, hint) => {
    for (const name of ['from', 'to']) {
      const error = (() => {
        try {
          return parseTime(name, value, now);
        } catch (e) {
          return e;
        }
      })();
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as ConfigError).message).toBe(
        `--${name}: epoch milliseconds must be from 946684800000 (2000-01-01) to 4102444800000 (2100-01-01) (got ${value}${hint})`,
      );
    }
  });

  it('report refuses a bad --from before opening the warehouse', async () => {
    const env = { ...process.env };
    process.env.DRIFTLINE_CLICKHOUSE_URL = 'http://127.0.0.1:9';
    try {
      await expect(reportCommand(['--model', 'm', '--from', '1738281600'])).rejects.toThrow(
        /^--from: .*looks like seconds\)$/,
      );
    } finally {
      process.env = env;
    }
  });
});

describe('model stage without --by', () => {
  // Only root can run a command as a user id with no passwd entry (a container's arbitrary uid).
  it.skipIf(process.getuid?.() !== 0)(
    'as a user id with no name: one usage line asking for --by, not an internal error',
    () => {
      const env = { ...process.env };
      delete env.USER;
      delete env.LOGNAME;
      const run = spawnSync(
        process.execPath,
        [
          '--import',
          'tsx',
          '--conditions=source',
          'src/main.ts',
          'model',
          'stage',
          '--model',
          'm',
          '--version',
          'v',
          '--to',
          'canary',
          '--share',
          '0.5',
        ],
        { cwd: fileURLToPath(new URL('..', import.meta.url)), uid: 54_321, gid: 54_321, env, encoding: 'utf8' },
      );
      expect({ status: run.status, stderr: run.stderr.trim() }).toEqual({
        status: 2,
        stderr: expect.stringMatching(/^driftline: --by: is needed here: this user id has no name/),
      });
    },
    30_000,
  );
});
