// The compiled `driftline`: a fresh bundle of the current sources (the same buildCli `make build`
// runs), started through the real bin script with plain node — no tsx anywhere.
import { execFile } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { buildCli, type CliBuild, staticExternals } from '../scripts/build.js';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('..', import.meta.url));
const root = join(cli, '..', '..');
// Inside services/cli/node_modules, so the bundle resolves its npm packages exactly as the
// installed package does: from the CLI's own dependencies, nothing hoisted from elsewhere.
const dir = join(cli, 'node_modules', '.cache', `built-bin-${process.pid}`);
const bin = join(dir, 'bin', 'driftline.js');
let built: CliBuild;

async function driftline(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], { cwd: dir });
    return { stdout, stderr, code: 0 };
  } catch (error) {
    const e = error as { stdout: string; stderr: string; code: number };
    return { stdout: e.stdout, stderr: e.stderr, code: e.code };
  }
}

beforeAll(async () => {
  built = await buildCli(join(dir, 'dist'));
  mkdirSync(join(dir, 'bin'), { recursive: true });
  copyFileSync(join(cli, 'bin', 'driftline.js'), bin);
  writeFileSync(join(dir, 'package.json'), '{ "type": "module" }\n');
}, 60_000);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('the built driftline bin', () => {
  it('prints the usage for --help and exits 0', async () => {
    const { stdout, code } = await driftline('--help');
    expect(code).toBe(0);
    expect(stdout).toMatch(/^usage: driftline <command>/);
  });

  it('rejects an unknown command with one line on stderr and exit code 2', async () => {
    const { stdout, stderr, code } = await driftline('nope');
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe('driftline: unknown command "nope" — driftline --help lists them\n');
  });

  it('runs drift on two CSV files', async () => {
    const ref = join(dir, 'ref.csv');
    const cur = join(dir, 'cur.csv');
    writeFileSync(ref, `x,c\n${Array.from({ length: 100 }, (_, i) => `${i % 10},${'ab'[i % 2]}`).join('\n')}\n`);
    writeFileSync(cur, `x,c\n${Array.from({ length: 100 }, (_, i) => `${(i % 10) + 8},${'ab'[i % 2]}`).join('\n')}\n`);
    const { stdout, code } = await driftline('drift', '--reference', ref, '--current', cur, '--json');
    expect(code).toBe(0);
    const rows = stdout
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as { column: string; drifted: boolean });
    expect(rows.map((r) => [r.column, r.drifted])).toEqual([
      ['x', true],
      ['c', false],
    ]);
  });

  it('loads no npm package for --help, and no heavy one for drift --help', () => {
    const main = relative(root, built.main);
    const npm = (imports: Set<string>) => [...imports].filter((p) => !p.startsWith('node:'));
    expect(npm(staticExternals(built.metafile, main))).toEqual([]);

    const driftChunk = built.metafile.outputs[main]?.imports.find(
      (i) => i.kind === 'dynamic-import' && /\/drift-[^/]+\.js$/.test(i.path),
    );
    expect(driftChunk).toBeDefined();
    const loaded = npm(staticExternals(built.metafile, driftChunk!.path));
    for (const heavy of ['apache-arrow', 'chdb', 'kafkajs', 'ioredis', '@clickhouse/client'])
      expect(loaded.filter((p) => p.startsWith(heavy))).toEqual([]);
  });

  it('the warehouse commands load no Kafka, registry or service code (checking variable names needs none)', () => {
    const main = relative(root, built.main);
    for (const command of ['model', 'model-card', 'report', 'reference']) {
      const chunk = built.metafile.outputs[main]?.imports.find(
        (i) => i.kind === 'dynamic-import' && new RegExp(`/${command}-[A-Z0-9]+\\.js$`).test(i.path),
      );
      expect(chunk, command).toBeDefined();
      const loaded = [...staticExternals(built.metafile, chunk!.path)];
      for (const heavy of ['kafkajs', 'avsc', 'pino', 'prom-client', 'ioredis', 'apache-arrow'])
        expect(
          loaded.filter((p) => p.startsWith(heavy)),
          command,
        ).toEqual([]);
    }
  });

  it('ships the trainer worker where the bundled trainer looks for it', () => {
    for (const file of ['train.py', 'setup-venv.sh']) expect(existsSync(join(dir, 'dist', 'worker', file))).toBe(true);
  });
});
