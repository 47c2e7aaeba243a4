// `pnpm exec tsx --conditions=source services/drift-monitor/bench/run.ts`: the drift-monitor
// benchmarks alone (no stack needed), one JSON line.
import { benchDrift } from './drift-bench.js';

process.stdout.write(`${JSON.stringify(await benchDrift())}\n`);
