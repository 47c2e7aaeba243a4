#!/usr/bin/env node
// The installed `driftline` command runs the compiled bundle (`make build`); tsx is for development
// only (`pnpm -s driftline` from the repository root runs the TypeScript sources).
import { existsSync } from 'node:fs';

const main = new URL('../dist/lib/main.js', import.meta.url);
if (!existsSync(main)) {
  process.stderr.write('driftline: not built yet: run `make build` (or `pnpm build`) in the repository\n');
  process.exit(1);
}
await import(main.href);
