import { readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { planWrites, validateFeatureEvent } from '@driftline/features';
import { describe, expect, it } from 'vitest';
import { InMemoryOnlineStore } from '../src/index.js';
import { contractViews, onlineStoreContract } from './contract.js';

onlineStoreContract('in memory', () => ({ store: new InMemoryOnlineStore() }));

describe('InMemoryOnlineStore', () => {
  it('expires rows on its own clock', async () => {
    let now = 1_000_000;
    const store = new InMemoryOnlineStore({ now: () => now });
    const view = contractViews.get('short')!;
    const e = validateFeatureEvent(contractViews, {
      event_id: 'a',
      view: 'short',
      entity_id: 'k',
      event_time: now,
      features: { x: 1 },
    });
    await store.write(planWrites([e]));
    now += view.ttlMs - 1;
    expect(await store.read(view, 'k')).toBeDefined();
    now += 1;
    expect(await store.read(view, 'k')).toBeUndefined();
    expect(store.size).toBe(0);
  });
});

describe('the package entry point', () => {
  it('never loads ioredis: unit tests of the port and its callers need no Redis client', () => {
    const src = resolve(dirname(fileURLToPath(import.meta.url)), '../src');
    const seen = new Set<string>();
    const offenders: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      const text = readFileSync(file, 'utf8');
      if (/from '(io)redis'|import\('(io)redis'\)/.test(text)) offenders.push(file);
      for (const m of text.matchAll(/from '(\.{1,2}\/[^']+)\.js'/g)) visit(resolve(dirname(file), `${m[1]}.ts`));
    };
    visit(resolve(src, 'index.ts'));
    expect(seen.size).toBeGreaterThan(3);
    expect(offenders).toEqual([]);
    // The walk does find ioredis behind the redis subpath, so it can fail.
    visit(resolve(src, 'redis/index.ts'));
    expect(offenders.length).toBeGreaterThan(0);
  });
});
