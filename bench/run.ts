// `make bench`: runs every benchmark against the local stack (started when none runs), prints
// progress on stderr and ONE JSON object as the last line of stdout, also written to
// bench/results/latest.json. Figures are medians of repeated runs: these machines are shared.
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  abortOnSignals,
  endpointsFromEnv,
  Interrupted,
  type StackEndpoints,
  stackRelease,
  stackUp,
  unlessAborted,
} from '@driftline/stack';

type Bench = (endpoints: StackEndpoints) => Promise<Record<string, number | string>>;

interface BenchEntry {
  readonly name: string;
  readonly load: () => Promise<Bench>;
}

/** Every benchmark, in run order. Each contributes its own keys to the summary. */
const benches: BenchEntry[] = [
  {
    name: 'stats',
    load: async () => {
      const { benchStats } = await import('@driftline/stats/bench');
      // The summary path alone; the drift entry reports the same keys through the service.
      return async () => Object.fromEntries(Object.entries(await benchStats()).map(([k, v]) => [`stats.${k}`, v]));
    },
  },
  {
    name: 'scoring',
    load: async () => {
      const { benchScoring } = await import('@driftline/scoring/bench');
      return () => benchScoring();
    },
  },
  {
    name: 'drift',
    load: async () => {
      const { benchDrift } = await import('@driftline/drift-monitor/bench');
      return () => benchDrift();
    },
  },
  {
    name: 'monitors',
    load: async () => {
      const { runMonitorsBench } = await import('./monitors/index.js');
      return () => runMonitorsBench();
    },
  },
  {
    name: 'features',
    load: async () => {
      const { benchFeatures } = await import('./features/index.js');
      return (endpoints) => benchFeatures(endpoints, { log: (l) => process.stderr.write(`${l}\n`) });
    },
  },
  {
    name: 'model-server',
    load: async () => {
      const { benchModelServer } = await import('./model-server/index.js');
      return (endpoints) => benchModelServer(endpoints, { log: (l) => process.stderr.write(`${l}\n`) });
    },
  },
  {
    name: 'joiner',
    load: async () => {
      const { benchJoiner, benchWindowRecompute } = await import('@driftline/label-joiner/bench');
      return async (endpoints) => ({ ...(await benchJoiner(endpoints)), ...benchWindowRecompute() });
    },
  },
  {
    name: 'policy',
    load: async () => {
      const { benchPolicy } = await import('@driftline/policy/bench');
      return () => benchPolicy();
    },
  },
  {
    name: 'drift-cli',
    load: async () => {
      const { benchDriftCli } = await import('./drift-cli/index.js');
      return () => benchDriftCli();
    },
  },
];

const only = process.argv.slice(2);
const here = dirname(fileURLToPath(import.meta.url));

async function main(): Promise<void> {
  const external = endpointsFromEnv();
  // Ctrl-C or SIGTERM stops the start-up or the running benchmark and still releases the stack
  // below (the default exit on SIGINT skipped the `finally` and left the stack it started running).
  const controller = new AbortController();
  const { signal } = controller;
  abortOnSignals(controller, { program: 'bench', warn: (l) => process.stderr.write(`${l}\n`) });
  // A lease like a test run's: a stack this run starts is stopped at the end, one it finds is kept.
  const started =
    external === undefined
      ? await stackUp({ testRun: true, log: (l) => process.stderr.write(`${l}\n`), signal })
      : undefined;
  const endpoints = external ?? started!.endpoints;
  const summary: Record<string, number | string> = {
    'machine.cpus': cpus().length,
    'machine.memory_gib': Math.round(totalmem() / 2 ** 30),
    'node.version': process.version,
  };
  const failures: string[] = [];
  try {
    for (const entry of benches) {
      if (only.length > 0 && !only.includes(entry.name)) continue;
      process.stderr.write(`bench ${entry.name}: running\n`);
      const t0 = Date.now();
      try {
        // A benchmark takes no signal: the run stops waiting for it, and the exit below ends it.
        const result = await unlessAborted(
          entry.load().then((bench) => bench(endpoints)),
          signal,
        );
        Object.assign(summary, result);
        process.stderr.write(`bench ${entry.name}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
      } catch (error) {
        if (signal.aborted) throw error;
        failures.push(entry.name);
        process.stderr.write(`bench ${entry.name}: FAILED: ${error instanceof Error ? error.stack : String(error)}\n`);
      }
    }
  } finally {
    if (started !== undefined) await stackRelease({ log: (l) => process.stderr.write(`${l}\n`) });
  }
  if (failures.length > 0) summary['bench.failed'] = failures.join(',');
  const out = join(here, 'results');
  mkdirSync(out, { recursive: true });
  const line = JSON.stringify(summary);
  writeFileSync(join(out, 'latest.json'), `${JSON.stringify(summary, null, 2)}\n`);
  process.stdout.write(`${line}\n`);
  process.exitCode = failures.length > 0 ? 1 : 0;
}

await main().catch((error: unknown) => {
  if (!(error instanceof Interrupted)) throw error;
  process.stderr.write(`bench: stopped (${error.signal})\n`);
  process.exit(error.exitCode);
});
