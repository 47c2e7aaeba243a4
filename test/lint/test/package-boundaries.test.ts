import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve, sep } from 'node:path';
import { describe, expect, it } from 'vitest';

// Packages talk through their package names (exports), never by reaching into another package's
// folder with a relative path: that would bypass the layering rules and hide dependencies.
const root = resolve(import.meta.dirname, '../../..');
const SKIP = new Set(['node_modules', 'dist', '.cache', '.stack', '.git', 'test-artifacts', '.driftline']);

function packageDirs(): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      if (!entry.isDirectory() || SKIP.has(entry.name)) continue;
      const path = join(dir, entry.name);
      if (readdirSync(path).includes('package.json')) out.push(path);
      walk(path);
    }
  };
  walk(root);
  return out.sort((a, b) => b.length - a.length); // innermost first
}

function sourceFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (SKIP.has(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) out.push(...sourceFiles(path));
    else if (/\.(ts|mts|js|mjs)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) out.push(path);
  }
  return out;
}

const RELATIVE_IMPORT = /(?:from\s+|import\s*\(\s*|import\s+)['"](\.{1,2}\/[^'"]+)['"]/g;

describe('package boundaries', () => {
  it('no module imports a file of another package by relative path', () => {
    const packages = packageDirs();
    const owner = (file: string) => packages.find((p) => file.startsWith(p + sep)) ?? root;
    const crossings: string[] = [];
    for (const file of sourceFiles(root)) {
      const from = owner(file);
      for (const match of readFileSync(file, 'utf8').matchAll(RELATIVE_IMPORT)) {
        const target = resolve(dirname(file), match[1]!);
        if (owner(target) !== from) crossings.push(`${relative(root, file)} → ${match[1]}`);
      }
    }
    expect(packages.length).toBeGreaterThan(20);
    expect(crossings).toEqual([]);
  });
});
