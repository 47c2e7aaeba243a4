import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { ensureMonitoringDist, type MonitoringDist, run } from '@driftline/stack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

// An integration test only because promtool comes from Debian's package, downloaded once by the
// stack (network on the first run); the checks themselves need no server.
const prometheusDir = resolve(import.meta.dirname, '../../../docker/prometheus');
const ruleFiles = readdirSync(join(prometheusDir, 'rules')).filter((f) => f.endsWith('.yml'));
const testFiles = readdirSync(join(prometheusDir, 'tests')).filter((f) => f.endsWith('.test.yml'));

// Side by side: each check runs its own promtool on its own files (an edited copy of its own).
describe.concurrent('docker/prometheus with promtool (Prometheus 2.42 from Debian)', () => {
  let dist: MonitoringDist;
  let scratch: string;

  beforeAll(async () => {
    dist = await ensureMonitoringDist({ log: (line) => process.stderr.write(`[monitoring] ${line}\n`) });
    scratch = mkdtempSync(join(tmpdir(), 'promtool-'));
  });
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  /** A copy of docker/prometheus (rules and their tests) with one rule file edited. */
  function brokenCopy(edit: (rules: string) => string): string {
    const copy = mkdtempSync(join(scratch, 'copy-'));
    cpSync(prometheusDir, copy, { recursive: true });
    const file = join(copy, 'rules', 'pipeline-health.yml');
    const edited = edit(readFileSync(file, 'utf8'));
    expect(edited).not.toBe(readFileSync(file, 'utf8')); // the edit must have applied
    writeFileSync(file, edited);
    return copy;
  }

  it("`amtool check-config` accepts docker/compose.yml's Alertmanager configuration", async () => {
    const amtool = join(dirname(dist.promtool), 'amtool');
    const result = await run(amtool, ['check-config', resolve(prometheusDir, '../alertmanager/alertmanager.yml')]);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain('SUCCESS');
  });

  it('`promtool check rules` accepts every rule file', async () => {
    expect(ruleFiles.length).toBeGreaterThan(0);
    const result = await run(dist.promtool, [
      'check',
      'rules',
      ...ruleFiles.map((f) => join(prometheusDir, 'rules', f)),
    ]);
    expect(result.output).toMatch(/SUCCESS: \d+ rules found/);
    expect(result.code, result.output).toBe(0);
  });

  it('`promtool test rules`: every rule fires on its input series, after its `for`, and only then', async () => {
    expect(testFiles.length).toBeGreaterThan(0);
    const result = await run(dist.promtool, [
      'test',
      'rules',
      ...testFiles.map((f) => join(prometheusDir, 'tests', f)),
    ]);
    expect(result.code, result.output).toBe(0);
    expect(result.output).toContain('SUCCESS');
  });

  it('every alerting rule has a unit test', () => {
    const rules = ruleFiles.flatMap((f) =>
      [...readFileSync(join(prometheusDir, 'rules', f), 'utf8').matchAll(/^\s*- alert: (\S+)/gm)].map((m) => m[1]),
    );
    const tested = new Set(
      testFiles.flatMap((f) =>
        [...readFileSync(join(prometheusDir, 'tests', f), 'utf8').matchAll(/^\s*alertname: (\S+)/gm)].map((m) => m[1]),
      ),
    );
    expect(rules.filter((r) => !tested.has(r))).toEqual([]);
  });

  it('`promtool check rules` fails on a rule whose expression does not parse', async () => {
    const copy = brokenCopy((text) => text.replace('expr: up{job="driftline"} == 0', 'expr: up{job="driftline" == 0'));
    const result = await run(dist.promtool, ['check', 'rules', join(copy, 'rules', 'pipeline-health.yml')]);
    expect(result.code).not.toBe(0);
    expect(result.output).toMatch(/FAILED|parse error|unexpected/i);
  });

  it('`promtool test rules` fails when a rule no longer does what its test says', async () => {
    // A longer `for` on the stuck-commit alert: still valid, but late.
    const copy = brokenCopy((text) =>
      text.replace(/(- alert: DriftlineCommitsStuck\n(?:.*\n)*?\s*for: )1m/, (_m, head: string) => `${head}5m`),
    );
    // The test files of that alert only: the others do not load the edited rule file.
    const its = testFiles.filter((f) => readFileSync(join(copy, 'tests', f), 'utf8').includes('DriftlineCommitsStuck'));
    expect(its.length).toBeGreaterThan(0);
    const result = await run(dist.promtool, ['test', 'rules', ...its.map((f) => join(copy, 'tests', f))]);
    expect(result.code).not.toBe(0);
    expect(result.output).toContain('DriftlineCommitsStuck');
  });
});
