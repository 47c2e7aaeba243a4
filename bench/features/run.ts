// `tsx --conditions=source bench/features/run.ts`: runs the feature benchmarks against the local
// stack (or the DRIFTLINE_KAFKA_BROKERS / _SCHEMA_REGISTRY_URL / _REDIS_URL stack) and prints JSON.
import { endpointsFromEnv, stackStatus } from '@driftline/stack';
import { benchFeatures, type FeatureBenchOptions } from './index.js';

const endpoints = endpointsFromEnv() ?? (await stackStatus()).endpoints;
if (endpoints === undefined) {
  process.stderr.write('no stack: run `pnpm -s stack up` first (or set the DRIFTLINE_* endpoint variables)\n');
  process.exit(2);
}
const events = Number(process.env.DRIFTLINE_BENCH_EVENTS ?? 200_000);
const repeats = Number(process.env.DRIFTLINE_BENCH_REPEATS ?? 3);
// DRIFTLINE_BENCH_PARTS: a comma list of api, throughput, throughput_aggregates, e2e, under_write (default all).
const parts = process.env.DRIFTLINE_BENCH_PARTS?.split(',') as FeatureBenchOptions['parts'];
const result = await benchFeatures(endpoints, {
  events,
  repeats,
  ...(parts === undefined ? {} : { parts }),
  log: (line) => process.stderr.write(`[features] ${line}\n`),
});
process.stdout.write(`${JSON.stringify(result)}\n`);
process.exit(0);
