import { execFile } from 'node:child_process';
import { linkSync, mkdtempSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { bundledCli } from './bundled-cli.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const cliMain = bundledCli('drift-command');

async function driftline(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  return driftlineOnNode([], ...args);
}

/** {@link driftline} with options for node itself (`--stack-size=…`) before the CLI's. */
async function driftlineOnNode(
  node: readonly string[],
  ...args: string[]
): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [...node, cliMain(), ...args], {
      cwd: root,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

/** The C0 control characters of `text` but newline (what a terminal would act on). */
const controlsBesidesNewline = (text: string) => [...text].filter((c) => c < ' ' && c !== '\n');

// The tests of a describe run side by side (each starts the CLI as its own process, and writes files
// of its own names); the describes one after another, so that at most a handful of processes run
// at once.
describe('driftline drift', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-cli-'));
  const ref = join(dir, 'ref.csv');
  const cur = join(dir, 'cur.csv');
  writeFileSync(ref, `x,c\n${Array.from({ length: 200 }, (_, i) => `${i % 20},${'abc'[i % 3]}`).join('\n')}\n`);
  writeFileSync(cur, `x,c\n${Array.from({ length: 200 }, (_, i) => `${(i % 20) + 10},${'abc'[i % 3]}`).join('\n')}\n`);

  it.concurrent('prints one JSON object per column with --json', async () => {
    const { stdout, code } = await driftline('drift', '--reference', ref, '--current', cur, '--json', '--bins', '5');
    expect(code).toBe(0);
    const rows = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { column: string; drifted: boolean });
    expect(rows.map((r) => [r.column, r.drifted])).toEqual([
      ['x', true],
      ['c', false],
    ]);
  });

  it.concurrent('--categorical compares cells as written: 1.1 vs 1.10 and two 20-digit ids differ (full drift)', async () => {
    const a = join(dir, 'versions-ref.csv');
    const b = join(dir, 'versions-cur.csv');
    writeFileSync(a, `app_version,acct\n${'1.1,12345678901234567890\n'.repeat(50)}`);
    writeFileSync(b, `app_version,acct\n${'1.10,12345678901234567891\n'.repeat(50)}`);
    const { stdout, code } = await driftline(
      ...['drift', '--reference', a, '--current', b, '--json', '--categorical', 'app_version,acct'],
    );
    expect(code).toBe(0);
    const rows = stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { column: string; drifted: boolean; score: number });
    expect(rows.map((r) => [r.column, r.drifted])).toEqual([
      ['app_version', true],
      ['acct', true],
    ]);
  });

  it.concurrent('names the bad option and exits 2 (usage)', async () => {
    const { stderr, code } = await driftline('drift', '--reference', ref, '--current', cur, '--binning', 'equal');
    expect(code).toBe(2);
    expect(stderr).toBe(
      'driftline: --binning: must be quantile or evidently (got "equal") — see driftline drift --help\n',
    );
  });

  it.concurrent('prints a header holding terminal commands as escapes, in its cell and in an error line', async () => {
    // An ESC sequence (clear screen, retitle the window) and a newline in a CSV header.
    const evil = '\u001b[2J\u001b]0;pwned\u0007col\nx';
    const quoted = `"${evil}"`;
    const a = join(dir, 'evil-ref.csv');
    const b = join(dir, 'evil-cur.csv');
    writeFileSync(a, `${quoted},c\n${Array.from({ length: 50 }, (_, i) => `${i},${'ab'[i % 2]}`).join('\n')}\n`);
    writeFileSync(b, `${quoted},c\n${Array.from({ length: 50 }, (_, i) => `${i + 5},${'ab'[i % 2]}`).join('\n')}\n`);
    const table = await driftline('drift', '--reference', a, '--current', b);
    expect(table.code).toBe(0);
    expect(controlsBesidesNewline(table.stdout)).toEqual([]);
    expect(table.stdout).toContain('\\u001b[2J\\u001b]0;pwned\\u0007col\\u000ax');
    // The table keeps one line per column: header, two rows, blank, summary, the small-sample legend.
    expect(table.stdout.trim().split('\n')).toHaveLength(6);
    const other = join(dir, 'evil-other.csv');
    writeFileSync(other, `x,c\n${Array.from({ length: 50 }, (_, i) => `${i},${'ab'[i % 2]}`).join('\n')}\n`);
    const error = await driftline('drift', '--reference', a, '--current', other);
    expect(error.code).not.toBe(0);
    expect(controlsBesidesNewline(error.stderr)).toEqual([]);
    // Not offered as a shell word: copied from the line, the escaped name would be another name.
    expect(error.stderr).toContain("--ignore and the column's name (it holds control characters)");
    expect(error.stderr.split('\n')).toHaveLength(2); // one line and its newline
  });
});

describe('driftline drift on small samples and missing shares (found by a review)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-rules-'));
  const ref = join(dir, 'ref.csv');
  const cur = join(dir, 'cur.csv');
  // 200 reference rows over 0..19; 5 current rows spread over the same range: PSI 3.8 (five of ten
  // bins empty), KS p = 0.999. It drifted by PSI alone.
  writeFileSync(ref, `x\n${Array.from({ length: 200 }, (_, i) => i % 20).join('\n')}\n`);
  writeFileSync(cur, 'x\n0\n5\n10\n15\n19\n');

  it.concurrent('a column with fewer than --min-rows present values: PSI does not decide; a mark, small_sample and a note', async () => {
    const note =
      'note: 1 column has fewer than 100 present values on a side (--min-rows): "x" (reference 200, current 5) — PSI is left out of the verdict there (the tests with a p-value decide)\n';
    const json = await driftline('drift', '--reference', ref, '--current', cur, '--json');
    expect([json.code, json.stderr]).toEqual([0, note]);
    expect(JSON.parse(json.stdout)).toMatchObject({ psi: expect.any(Number), small_sample: true, drifted: false });
    const table = await driftline('drift', '--reference', ref, '--current', cur);
    expect(table.stdout).toMatch(/^x +numeric +3\.79\d\d .* 0%→0% +no \* *$/m);
    expect(table.stdout).toMatch(
      /\n0 of 1 columns drifted\n\* fewer than 100 present values on a side \(--min-rows\): PSI did not decide\n$/,
    );
    // --min-rows 0: PSI decides on any sample, as before.
    const old = await driftline('drift', '--reference', ref, '--current', cur, '--json', '--min-rows', '0');
    expect([old.code, old.stderr]).toEqual([0, '']);
    expect(JSON.parse(old.stdout)).toMatchObject({ small_sample: false, drifted_by: ['psi'] });
    // Evidently's verdict is kept; the note says so.
    const evidently = await driftline('drift', '--reference', ref, '--current', cur, '--stattest', 'evidently');
    expect(evidently.stderr).toMatch(/^note: 1 column has .* — Evidently's verdict is kept\n$/);
    expect(evidently.stdout).toContain(
      "* fewer than 100 present values on a side (--min-rows); Evidently's verdict as it is",
    );
  });

  it.concurrent.each([
    ['--min-rows', 'x', '--min-rows: must be a number (got "x")'],
    ['--min-rows', '2.5', '--min-rows: must be an integer from 0 to 1000000000 (got "2.5")'],
    ['--min-rows=-1', undefined, '--min-rows: must be an integer from 0 to 1000000000 (got "-1")'],
    ['--missing-threshold', '2', '--missing-threshold: must be from 0 to 1 (got 2)'],
    ['--missing-threshold', '', '--missing-threshold: must be a number (got "")'],
    // Number() reads 0x10 as 16, 0b1 as 1 (a review): only decimals.
    ['--bins', '0x10', '--bins: must be a number (got "0x10")'],
    ['--alpha', '0b0', '--alpha: must be a number (got "0b0")'],
  ])('%s %j is one line, exit 2', async (option, value, message) => {
    const given = value === undefined ? [option] : [option, value];
    const { stdout, stderr, code } = await driftline('drift', '--reference', ref, '--current', cur, ...given);
    expect([code, stdout, stderr]).toEqual([2, '', `driftline: ${message} — see driftline drift --help\n`]);
  });

  it.concurrent('a current column 90% missing is drifted by missing, and the table shows the missing shares', async () => {
    const full = join(dir, 'full.csv');
    const holes = join(dir, 'holes.csv');
    writeFileSync(
      full,
      `x,c\n${Array.from({ length: 2000 }, (_, i) => `${(i * 7919) % 1000},${'ab'[i % 2]}`).join('\n')}\n`,
    );
    writeFileSync(
      holes,
      `x,c\n${Array.from({ length: 1000 }, (_, i) => (i % 10 === 0 ? `${(i * 7919) % 1000},${'ab'[(i / 10) % 2]}` : ',')).join('\n')}\n`,
    );
    const { stdout, code } = await driftline('drift', '--reference', full, '--current', holes);
    expect(code).toBe(0);
    expect(stdout).toMatch(/^x +numeric .* 0%→90% +yes \(missing\) *$/m);
    expect(stdout).toMatch(/^c +categorical .* 0%→90% +yes \(missing\) *$/m);
    // --missing-threshold 1: only a current column with every cell missing.
    const off = await driftline('drift', '--reference', full, '--current', holes, '--missing-threshold', '1', '--json');
    expect(
      off.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).drifted_by),
    ).not.toContainEqual(['missing']);
  });
});

describe('driftline drift: a suggested option works when followed (found by a review)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-suggest-'));
  const csv = (name: string, header: string[], rows: string[][]) => {
    const path = join(dir, name);
    const field = (f: string) => (/[",\n]/.test(f) || f.trim() !== f ? `"${f.replaceAll('"', '""')}"` : f);
    writeFileSync(path, `${[header, ...rows].map((r) => r.map(field).join(',')).join('\n')}\n`);
    return path;
  };
  const numbers = Array.from({ length: 30 }, (_, i) => String(i));
  /** The command again, through a shell, with the option the error line suggested appended. */
  async function follow(args: string[], stderr: string): Promise<{ code: number; suggestion: string }> {
    const suggestion = /(--(?:ignore|categorical) (?:'(?:'\\''|[^'])*'|[\w.@%+:/-]+))/.exec(stderr)?.[1];
    expect(suggestion, stderr).toBeDefined();
    const quote = (a: string) => `'${a.replaceAll("'", `'\\''`)}'`;
    const line = [process.execPath, cliMain(), ...args].map(quote).join(' ');
    try {
      await run('sh', ['-c', `${line} ${suggestion}`], { cwd: root });
      return { code: 0, suggestion: suggestion! };
    } catch (error) {
      return {
        code: (error as { code: number }).code,
        suggestion: `${suggestion} (${(error as { stderr: string }).stderr})`,
      };
    }
  }

  it.concurrent.each([
    ['a,b', "--ignore 'a\\,b'"],
    ['total ', "--ignore 'total\\ '"],
    ["it's, ok", "--ignore 'it'\\''s\\, ok'"],
  ])('a column %j missing from the current table: %s', async (name, shown) => {
    const ref = csv(
      `ref-${name.length}.csv`,
      ['x', name],
      numbers.map((n) => [n, n]),
    );
    const cur = csv(
      `cur-${name.length}.csv`,
      ['x'],
      numbers.map((n) => [n]),
    );
    const args = ['drift', '--reference', ref, '--current', cur];
    const { code, stderr } = await driftline(...args);
    expect(code).toBe(3);
    expect(stderr).toContain(`leave it out with ${shown}`);
    expect(await follow(args, stderr)).toMatchObject({ code: 0 });
  });

  it.concurrent('numbers against text: the suggested --categorical works', async () => {
    const name = 'price, net ';
    const ref = csv(
      'ref-text.csv',
      [name],
      numbers.map((n) => [n]),
    );
    const cur = csv(
      'cur-text.csv',
      [name],
      numbers.map((n) => [`n${n}`]),
    );
    const args = ['drift', '--reference', ref, '--current', cur];
    const { code, stderr } = await driftline(...args);
    expect(code).toBe(3);
    expect(stderr).toContain("--categorical 'price\\, net\\ '");
    expect(await follow(args, stderr)).toMatchObject({ code: 0 });
  });

  it.concurrent('a reference column with every cell missing: the suggested --ignore works', async () => {
    const name = 'a,b';
    const ref = csv(
      'ref-empty.csv',
      ['x', name],
      numbers.map((n) => [n, '']),
    );
    const cur = csv(
      'cur-empty.csv',
      ['x', name],
      numbers.map((n) => [n, n]),
    );
    const args = ['drift', '--reference', ref, '--current', cur];
    const { code, stderr } = await driftline(...args);
    expect(code).toBe(3);
    expect(await follow(args, stderr)).toMatchObject({ code: 0 });
  });

  it.concurrent('an escaped comma selects a column; a name given to two options that contradict is a usage error (2)', async () => {
    const ref = csv(
      'ref-sel.csv',
      ['x', 'a,b'],
      numbers.map((n) => [n, n]),
    );
    const ok = await driftline('drift', '--reference', ref, '--current', ref, '--columns', 'a\\,b', '--json');
    expect(ok.code).toBe(0);
    expect(JSON.parse(ok.stdout)).toMatchObject({ column: 'a,b' });
    for (const [options, message] of [
      [['--categorical', 'x', '--numeric', 'x'], 'driftline: --numeric: column "x" is also given to --categorical'],
      [['--columns', 'x', '--ignore', 'x'], 'driftline: --ignore: column "x" is also given to --columns'],
      [['--ignore', 'x,a\\,b'], 'driftline: --ignore: leaves no column to compare'],
    ] as const) {
      const { code, stdout, stderr } = await driftline('drift', '--reference', ref, '--current', ref, ...options);
      expect([code, stdout]).toEqual([2, '']);
      expect(stderr).toMatch(new RegExp(`^${message.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')}.*\n$`));
    }
  });
});

describe('driftline drift --html: checked as --out is, before any read', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-html-'));
  const ref = join(dir, 'ref.csv');
  const cur = join(dir, 'cur.csv');
  const csv = 'x\n1\n2\n3\n';
  writeFileSync(ref, csv);
  writeFileSync(cur, csv);
  const drift = (html: string) => driftline('drift', '--reference', ref, '--current', cur, '--html', html);

  it.concurrent.each([
    ['/proc/x/y.html', /^driftline: --html: directory \/proc\/x does not exist/],
    ['missing/r.html', /^driftline: --html: directory .*missing does not exist/],
    ['.', /^driftline: --html: .* is a directory; name a file/],
    ['', /^driftline: --html: is empty; name a file/],
  ])('--html %j is a usage error (2), nothing created', async (value, message) => {
    const { stdout, stderr, code } = await drift(value === '' || value.startsWith('/') ? value : join(dir, value));
    expect([code, stdout]).toEqual([2, '']);
    expect(stderr).toMatch(message);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(readdirSync(dir).sort()).toEqual(['cur.csv', 'ref.csv']);
  });

  it.concurrent('refuses --html naming an input (also through a link), which is left as it was', async () => {
    for (const [html, option] of [
      [ref, '--reference'],
      [join(dir, '.', 'cur.csv'), '--current'],
    ] as const) {
      const { stderr, code } = await drift(html);
      expect(code).toBe(2);
      expect(stderr).toMatch(new RegExp(`^driftline: --html: .* is the ${option} file; name another file`));
    }
    const link = join(mkdtempSync(join(tmpdir(), 'driftline-html-link-')), 'link.csv');
    linkSync(ref, link);
    try {
      const { stderr, code } = await drift(link);
      expect([code, stderr]).toEqual([2, expect.stringContaining('is the --reference file')]);
    } finally {
      unlinkSync(link);
    }
    expect([readFileSync(ref, 'utf8'), readFileSync(cur, 'utf8')]).toEqual([csv, csv]);
  });

  it.concurrent('a full disk (ENOSPC) names --html and exits 1 saying what to free, as the README table says (it was 2, usage)', async () => {
    const { stderr, code } = await drift('/dev/full');
    expect(code).toBe(1);
    // After the small-sample note of this 3-row table.
    expect(stderr).toMatch(
      /^(note: [^\n]*\n)?driftline: --html: cannot write \/dev\/full \(ENOSPC\) — no space left on that file system: free space/,
    );
  });

  it.concurrent('prints the results before writing the page: a page that cannot be written loses only the page', async () => {
    const { stdout, code } = await drift('/dev/full');
    expect(code).toBe(1);
    expect(stdout).toMatch(/^column +kind +psi[\s\S]*\n0 of 1 columns drifted\n\* fewer than 100 present values .*\n$/);
  });

  it.concurrent('a file the system refuses to create is found before any table is read', async () => {
    // /proc exists, a file cannot be made in it (as root too); the reference does not exist.
    const { stderr, code } = await driftline(
      'drift',
      '--reference',
      join(dir, 'absent.csv'),
      '--current',
      cur,
      '--html',
      '/proc/driftline.html',
    );
    expect(code).toBe(2);
    expect(stderr).toMatch(/^driftline: --html: cannot write \/proc\/driftline\.html \(E[A-Z]+\)/);
  });

  // The two wide tables one at a time, after the tests above (which list the directory): each takes
  // seconds of CPU, and its limit.
  it('prints the whole table of 50,000 columns on a fifth of the stack into a pipe (found by a review at 200,000: a stack overflow, then a cut table)', async () => {
    // Math.max(...widths) overflowed node's default stack (984 KB) past ~125,000 columns; and
    // exiting at once cut piped output at the pipe's 64 KiB (execFile reads stdout through a pipe).
    // On a 200 KB stack that spread overflows past ~25,000 values: 50,000 columns are as far past
    // it as 200,000 were past the default (4 s of CPU, not 16 s).
    const stack = ['--stack-size=200'];
    const n = 50_000;
    const names = Array.from({ length: n }, (_, i) => `c${i}`).join(',');
    const row = (m: number) => Array.from({ length: n }, (_, i) => String(i % m)).join(',');
    const wideRef = join(dir, 'wide-ref.csv');
    const wideCur = join(dir, 'wide-cur.csv');
    writeFileSync(wideRef, `${names}\n${row(7)}\n${row(5)}\n`);
    writeFileSync(wideCur, `${names}\n${row(3)}\n${row(5)}\n`);
    const { stdout, stderr, code } = await driftlineOnNode(
      stack,
      'drift',
      '--reference',
      wideRef,
      '--current',
      wideCur,
    );
    // Two rows a side: every column is a small sample, named five at a time in one line.
    expect(stderr).toMatch(/^note: 50000 columns have fewer than 100 present values .* and 49995 more — [^\n]*\n$/);
    expect(code).toBe(0);
    const lines = stdout.trimEnd().split('\n');
    expect(lines).toHaveLength(n + 4);
    expect(lines.at(-2)).toMatch(new RegExp(`^\\d+ of ${n} columns drifted$`));
    unlinkSync(wideRef);
    unlinkSync(wideCur);
  }, 60_000);

  it('writes the --html page of 100,000 columns (found by a review: RangeError: Invalid string length)', async () => {
    // A chart per column outgrew V8's longest string, after a quadratic lookup of every current column.
    const n = 100_000;
    const names = Array.from({ length: n }, (_, i) => `c${i}`).join(',');
    const row = (m: number) => Array.from({ length: n }, (_, i) => String(i % m)).join(',');
    const wideRef = join(dir, 'wide-ref.csv');
    const wideCur = join(dir, 'wide-cur.csv');
    const html = join(dir, 'wide.html');
    writeFileSync(wideRef, `${names}\n${row(7)}\n${row(5)}\n`);
    writeFileSync(wideCur, `${names}\n${row(3)}\n${row(5)}\n`);
    try {
      const { stderr, code } = await driftline(
        'drift',
        '--reference',
        wideRef,
        '--current',
        wideCur,
        '--json',
        '--html',
        html,
      );
      expect([code, stderr]).toEqual([0, expect.stringMatching(/^note: 100000 columns have fewer than 100 [^\n]*\n$/)]);
      const page = readFileSync(html, 'utf8');
      expect(page.match(/<figure class="chart"/g)).toHaveLength(500);
      expect(page).toContain('the 500 of 100000 columns that drifted most are charted; 99500 left out');
      expect(page).toContain('the 10000 of 100000 columns that drifted most are listed; 90000 left out');
    } finally {
      for (const f of [wideRef, wideCur, html]) rmSync(f, { force: true });
    }
  }, 90_000);

  it.concurrent('writes the report into an existing directory', async () => {
    const html = join(dir, 'r.html');
    const { code } = await drift(html);
    expect(code).toBe(0);
    expect(readFileSync(html, 'utf8')).toMatch(/^<!doctype html>/);
    unlinkSync(html);
  });
});

describe('driftline drift / reference: an --ignore name no table has is refused (a typo left the column in)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-ignore-'));
  const rows = Array.from({ length: 40 }, (_, i) => `${i},${'abc'[i % 3]}`);
  const ref = join(dir, 'ref.csv');
  const cur = join(dir, 'cur.csv');
  const extra = join(dir, 'extra.csv');
  writeFileSync(ref, `amount,country\n${rows.join('\n')}\n`);
  writeFileSync(cur, `amount,country\n${rows.join('\n')}\n`);
  writeFileSync(extra, `amount,country,only_ref\n${rows.map((r) => `${r},1`).join('\n')}\n`);
  const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  // Should the check ever let a name through, `reference` stores into an engine of this test's own,
  // not the repository's .driftline/chdb.
  const env: NodeJS.ProcessEnv = { ...process.env, DRIFTLINE_CLICKHOUSE_PATH: join(dir, 'chdb') };
  delete env.DRIFTLINE_CLICKHOUSE_URL;
  const refused = async (args: string[], line: string) => {
    const result = await run(process.execPath, [cliMain(), ...args], { cwd: root, env }).then(
      (r) => ({ code: 0, ...r }),
      (e: { code: number; stdout: string; stderr: string }) => e,
    );
    expect([result.code, result.stdout, result.stderr]).toEqual([3, '', `driftline: ${line}\n`]);
  };

  it.concurrent('a name in neither table: exit 3 (as a --columns name the table lacks), one line with the close names', async () => {
    await refused(
      ['drift', '--reference', ref, '--current', cur, '--ignore', 'country,amout'],
      `${ref} or ${cur}: no column "amout" (given to --ignore) — did you mean --ignore amount?`,
    );
    // Nothing close: the columns.
    await refused(
      ['drift', '--reference', ref, '--current', cur, '--ignore', 'customer_segment'],
      `${ref} or ${cur}: no column "customer_segment" (given to --ignore) — the columns are "amount", "country"`,
    );
    // The same exit code as a --columns name the table lacks.
    const columns = await driftline('drift', '--reference', ref, '--current', cur, '--columns', 'amout');
    expect([columns.code, columns.stderr]).toEqual([
      3,
      expect.stringContaining('no column "amout" (given to --columns)'),
    ]);
  });

  it.concurrent('a name in one table only is fine: the way to leave out a column the other lacks', async () => {
    for (const [a, b] of [
      [extra, cur],
      [ref, extra],
    ]) {
      const { code, stdout } = await driftline(
        'drift',
        '--reference',
        a!,
        '--current',
        b!,
        '--ignore',
        'only_ref',
        '--json',
      );
      expect(code).toBe(0);
      expect(
        stdout
          .trim()
          .split('\n')
          .map((l) => JSON.parse(l).column),
      ).toEqual(['amount', 'country']);
    }
  });

  it.concurrent('Parquet and Arrow: every column of the file counts, the ones left out included', async () => {
    await refused(
      ['drift', '--reference', fixture('table-zstd.parquet'), '--current', fixture('table.arrow'), '--ignore', 'colr'],
      `${fixture('table-zstd.parquet')} or ${fixture('table.arrow')}: no column "colr" (given to --ignore) — did you mean --ignore color?`,
    );
    const ok = await driftline(
      ...[
        'drift',
        '--reference',
        fixture('table-zstd.parquet'),
        '--current',
        fixture('table.csv'),
        '--ignore',
        'color,x',
        '--json',
      ],
    );
    expect(ok.code).toBe(0);
    expect(
      ok.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l).column),
    ).toEqual(['n', 'small', 'flag', 'code']);
  });

  it.concurrent('reference: --ignore and --exclude each named in the line, before ClickHouse is opened', async () => {
    const base = ['reference', '--model', 'm', '--version', 'v1', '--file', ref];
    await refused(
      [...base, '--exclude', 'countyr'],
      `${ref}: no column "countyr" (given to --exclude) — did you mean --exclude country?`,
    );
    await refused(
      [...base, '--ignore', 'amount', '--ignore', 'x'],
      `${ref}: no column "x" (given to --ignore) — the columns are "amount", "country"`,
    );
  });
});

describe('driftline drift: one table in two spellings does not drift (found by a review)', () => {
  const fixture = (name: string) => fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url));
  const rows = async (reference: string, current: string, ...more: string[]) => {
    const { stdout, stderr, code } = await driftline(
      ...['drift', '--reference', fixture(reference), '--current', fixture(current), '--json', ...more],
    );
    expect(code, stderr).toBe(0);
    return stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as { column: string; psi: number; ks_statistic: number; drifted: boolean })
      .map((r) => [r.column, r.psi, r.ks_statistic, r.drifted]);
  };

  it.concurrent('float32 Parquet against its float64 upcast (PSI 4.8, KS p 1.5e-39) or that upcast’s CSV', async () => {
    const same = ['rate', 'price', 'score'].map((c) => [c, 0, 0, false]);
    expect(await rows('spellings-f32.parquet', 'spellings-f64.parquet')).toEqual(same);
    expect(await rows('spellings-f64.csv', 'spellings-f32.arrow')).toEqual(same);
    expect(await rows('spellings-mixed.parquet', 'spellings-f32.csv')).toEqual(same);
  });

  it.concurrent('pandas’ CSV of timestamps whose historic offsets hold seconds (+05:21:10) against its Parquet', async () => {
    expect(await rows('zones.parquet', 'zones.csv', '--min-rows', '1')).toEqual([
      ['kolkata', 0, 0, false],
      ['amsterdam', 0, 0, false],
      ['utc', 0, 0, false],
    ]);
  });
});
