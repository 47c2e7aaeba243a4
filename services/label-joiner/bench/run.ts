// Runs the joiner benchmark against the running local stack (or DRIFTLINE_REDIS_URL and
// DRIFTLINE_SCHEMA_REGISTRY_URL) and prints the figures as one JSON line.
//   pnpm exec tsx --conditions=source services/label-joiner/bench/run.ts
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchJoiner } from './joiner-bench.js';

function endpoints(): { redisUrl: string; schemaRegistryUrl: string } {
  const redisUrl = process.env.DRIFTLINE_REDIS_URL;
  const schemaRegistryUrl = process.env.DRIFTLINE_SCHEMA_REGISTRY_URL;
  if (redisUrl !== undefined && schemaRegistryUrl !== undefined) return { redisUrl, schemaRegistryUrl };
  const state = JSON.parse(
    readFileSync(fileURLToPath(new URL('../../../.stack/state.json', import.meta.url)), 'utf8'),
  ) as {
    endpoints: { redisUrl: string; schemaRegistryUrl: string };
  };
  return state.endpoints;
}

const result = await benchJoiner(endpoints());
process.stdout.write(`${JSON.stringify(result)}\n`);
