import { execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { jsonLine } from '../src/commands/json-line.js';
import { bundledCli } from './bundled-cli.js';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../..', import.meta.url));
const cliMain = bundledCli('json-terminal');

/** What a terminal would act on or reorder by: C0 but newline, DEL, C1, bidi controls. */
const terminalControls = (text: string) =>
  [...text].filter((ch) => {
    const c = ch.codePointAt(0)!;
    return (
      (c < 0x20 && c !== 0x0a) ||
      (c >= 0x7f && c <= 0x9f) ||
      c === 0x200e ||
      c === 0x200f ||
      (c >= 0x202a && c <= 0x202e) ||
      (c >= 0x2066 && c <= 0x2069)
    );
  });

// A CSV header with a bidi override (U+202E) and the 8-bit CSI (U+009B) + "2J": clear screen.
const header = 'amount\u202Etxt\u009B2J';

describe('--json on a terminal: found by a review', () => {
  const dir = mkdtempSync(join(tmpdir(), 'driftline-json-tty-'));
  const ref = join(dir, 'ref.csv');
  const cur = join(dir, 'cur.csv');
  // 150 rows a side: no small-sample note on stderr, which script(1) mixes into the terminal's output.
  writeFileSync(ref, `${header}\n${Array.from({ length: 150 }, (_, i) => i % 10).join('\n')}\n`);
  writeFileSync(cur, `${header}\n${Array.from({ length: 150 }, (_, i) => (i % 10) + 5).join('\n')}\n`);
  const args = ['drift', '--reference', ref, '--current', cur, '--json'];

  it('escapes C1 controls and bidi overrides as \\uXXXX when stdout is a terminal: still JSON, same value', async () => {
    // script(1) runs the command with a pseudo-terminal as its stdout.
    const command = [process.execPath, cliMain(), ...args].map((a) => `'${a}'`).join(' ');
    const { stdout } = await run('script', ['-q', '-e', '-c', command, '/dev/null'], { cwd: root });
    const line = stdout.replace(/\r\n/g, '\n').trim();
    expect(terminalControls(line)).toEqual([]);
    expect(line).toContain('"column":"amount\\u202etxt\\u009b2J"');
    expect((JSON.parse(line) as { column: string }).column).toBe(header);
  });

  it('writes the text unchanged into a pipe', async () => {
    const { stdout } = await run(process.execPath, [cliMain(), ...args], { cwd: root });
    expect(stdout).toContain(`"column":"${header}"`);
    expect((JSON.parse(stdout) as { column: string }).column).toBe(header);
  });
});

describe('jsonLine', () => {
  it('is valid JSON of the same value either way, with no terminal control left on a terminal', () => {
    const value = { name: 'a\u001b[2J\u009b\u202e\u2066\u007f\\\u202e"z', n: [1, 'é😀'] };
    for (const terminal of [true, false]) {
      const line = jsonLine(value, terminal);
      expect(line.endsWith('\n')).toBe(true);
      expect(JSON.parse(line)).toEqual(value);
    }
    expect(terminalControls(jsonLine(value, true))).toEqual([]);
    expect(terminalControls(jsonLine(value, false))).not.toEqual([]);
    expect(jsonLine(value, false)).toBe(`${JSON.stringify(value)}\n`);
  });
});
