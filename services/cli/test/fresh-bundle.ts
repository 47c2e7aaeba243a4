import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildCli } from '../scripts/build.js';

/**
 * A fresh bundle of the current sources, built inside services/cli/node_modules so it resolves its
 * npm packages as the installed CLI does. Returns its main.js and a function that removes it.
 */
export async function freshBundle(name: string): Promise<{ main: string; remove: () => Promise<void> }> {
  const cacheDir = fileURLToPath(new URL('../node_modules/.cache/', import.meta.url));
  mkdirSync(cacheDir, { recursive: true });
  const dir = mkdtempSync(join(cacheDir, `${name}-`));
  const remove = async () => rmSync(dir, { recursive: true, force: true });
  try {
    return { main: (await buildCli(join(dir, 'dist'))).main, remove };
  } catch (error) {
    await remove();
    throw error;
  }
}
