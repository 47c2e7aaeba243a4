// `pnpm exec tsx --conditions=source bench/drift/run.ts`: the drift-monitor benchmarks alone, one JSON line.
import { benchDrift } from './index.js';

process.stdout.write(`${JSON.stringify(await benchDrift())}\n`);
