// `make chaos`: a stack of its own (restarting components must not disturb other users of the
// shared one), the bundled services, the run, one JSON line; exit 1 when an invariant breaks.
import { existsSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseDurationMs } from '@driftline/core';
import { stackDown, stackUp } from '@driftline/stack';
import { runChaos } from './run.js';

const root = resolve(fileURLToPath(new URL('.', import.meta.url)), '..', '..', '..');
const began = Date.now();
// Seconds since the start on every line: where a long run spends its time.
const say = (line: string) => process.stderr.write(`[chaos +${((Date.now() - began) / 1000).toFixed(0)}s] ${line}\n`);

function numberVar(name: string, fallback: number): number {
  const raw = process.env[name]?.trim();
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n <= 0)
    throw new Error(`${name} must be a positive integer (got ${JSON.stringify(raw)})`);
  return n;
}

async function main(): Promise<number> {
  const durationText = process.env.CHAOS_DURATION?.trim() || '2m';
  const durationMs = parseDurationMs(durationText);
  if (durationMs === undefined || durationMs < 20_000 || durationMs > 24 * 3_600_000) {
    throw new Error(
      `CHAOS_DURATION must be a duration between 20s and 24h, such as 90s or 10m (got ${JSON.stringify(durationText)})`,
    );
  }
  const bundle = join(root, 'services/cli/bin/driftline.js');
  if (!existsSync(join(root, 'services/cli/dist'))) throw new Error('no CLI bundle: run `make build` first');
  const stackDir = join(root, '.stack', 'chaos');
  say(`starting a stack of its own in ${stackDir}`);
  const { endpoints } = await stackUp({ stateDir: stackDir, durableRedis: true, log: (l) => say(`  ${l}`) });
  try {
    const report = await runChaos({
      endpoints,
      stackDir,
      runDir: join(root, '.driftline', 'chaos'),
      launcher: { command: process.execPath, args: [bundle] },
      durationMs,
      rate: numberVar('CHAOS_RATE', 40),
      seed: numberVar('CHAOS_SEED', 20261202),
      log: say,
    });
    for (const f of report.failures) say(`FAILED ${f}`);
    // A clean run leaves nothing behind; a failing one, or one where a service exited by itself,
    // keeps its logs and data for a look.
    const exits = report.summary.service_exits as readonly string[];
    if (report.ok && exits.length === 0 && process.env.CHAOS_KEEP_STACK !== '1') {
      rmSync(dirname(String(report.summary.logs)), { recursive: true, force: true });
    }
    process.stdout.write(`${JSON.stringify(report.summary)}\n`);
    return report.ok ? 0 : 1;
  } finally {
    if (process.env.CHAOS_KEEP_STACK !== '1') await stackDown({ stateDir: stackDir, log: (l) => say(`  ${l}`) });
  }
}

main().then(
  (code) => process.exit(code),
  (error: unknown) => {
    say(`failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(2);
  },
);
