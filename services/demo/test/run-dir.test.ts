import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeFilesFor } from '@driftline/test-support';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanUpRunDir } from '../src/run-dir.js';

const root = mkdtempSync(join(tmpdir(), 'driftline-demo-rundir-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** A run folder as the demo leaves it: embedded ClickHouse data, configs, maybe a report. */
function runDir(name: string, withReport: boolean): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'chdb', 'store'), { recursive: true });
  writeFileSync(join(dir, 'chdb', 'store', 'part.bin'), 'x'.repeat(1024));
  writeFileSync(join(dir, 'policy.yaml'), 'version: 1\n');
  if (withReport) writeFileSync(join(dir, 'report.html'), '<html></html>');
  return dir;
}

describe('cleaning up a demo run folder', () => {
  it('a run that failed before its report leaves nothing behind', async () => {
    const dir = runDir('failed', false);
    expect(await cleanUpRunDir(dir, false)).toBe('removed');
    expect(existsSync(dir)).toBe(false);
  });

  it('a run with a report keeps the report and drops the ClickHouse data', async () => {
    const dir = runDir('reported', true);
    expect(await cleanUpRunDir(dir, false)).toBe('report kept');
    expect(existsSync(join(dir, 'report.html'))).toBe(true);
    expect(existsSync(join(dir, 'chdb'))).toBe(false);
  });

  // The engine is still open and may be merging a part into store/ as the folder goes (a plain
  // rmSync failed there with ENOTEMPTY).
  it('drops the ClickHouse data while the engine still writes into it', async () => {
    const dir = runDir('merging', true);
    const writer = writeFilesFor(join(dir, 'chdb', 'store'), 300);
    await writer.started;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await cleanUpRunDir(dir, false)).toBe('report kept');
    await writer.finished;
    expect(existsSync(join(dir, 'chdb'))).toBe(false);
    expect(existsSync(join(dir, 'report.html'))).toBe(true);
  });

  it('DRIFTLINE_DEMO_KEEP keeps everything', async () => {
    const dir = runDir('kept', false);
    expect(await cleanUpRunDir(dir, true)).toBe('kept');
    expect(existsSync(join(dir, 'chdb', 'store', 'part.bin'))).toBe(true);
  });
});

describe('runDemo stopped before its services start', () => {
  it('rejects with the stop reason and leaves no run folder under .driftline/', async () => {
    const { runDemo } = await import('../src/run-demo.js');
    const { readdirSync } = await import('node:fs');
    const runs = () => (existsSync('.driftline') ? readdirSync('.driftline').filter((d) => d.startsWith('demo')) : []);
    const before = new Set(runs());
    const reason = new Error('stopped by the test');
    await expect(
      runDemo({
        // Nothing listens there: the run must stop before it talks to the stack at all.
        endpoints: {
          kafkaBrokers: ['127.0.0.1:9'],
          schemaRegistryUrl: 'http://127.0.0.1:9',
          redisUrl: 'redis://127.0.0.1:9',
        },
        say: () => {},
        signal: AbortSignal.abort(reason),
      }),
    ).rejects.toBe(reason);
    expect(runs().filter((d) => !before.has(d))).toEqual([]);
  }, 20_000);
});
