import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { removeTree, writeFilesFor } from '../src/remove-tree.js';

describe('removeTree', () => {
  // rmSync (even with maxRetries) failed this with ENOTEMPTY in 20 of 20 tries: it listed the
  // directory once, then retried only the last rmdir while new files stayed in it.
  it('removes a directory another thread is still writing files into', async () => {
    const root = mkdtempSync(join(tmpdir(), 'remove-tree-'));
    const part = join(root, 'store', 'part');
    mkdirSync(part, { recursive: true });
    // Enough files beside it that the listing and unlinking take a while.
    for (let i = 0; i < 2_000; i++) writeFileSync(join(root, 'store', `f${i}`), 'x');
    const writer = writeFilesFor(part, 300);
    await writer.started;
    // Let it get going: a merge writes file after file.
    await new Promise((resolve) => setTimeout(resolve, 20));
    await removeTree(root);
    await writer.finished;
    expect(existsSync(root)).toBe(false);
  });

  it('is done when the directory does not exist', async () => {
    await expect(removeTree(join(tmpdir(), 'remove-tree-never-made'))).resolves.toBeUndefined();
  });
});
