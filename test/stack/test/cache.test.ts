import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { apicurioCachePaths, ensureApicurioDist } from '../src/registry.js';

const VERSION = '9.9.9';
const root = fs.mkdtempSync(path.join(os.tmpdir(), 'driftline-stack-cache-'));
let server: http.Server;
let repo = '';
/** How many times the archive itself was served. */
let archiveGets = 0;

beforeAll(async () => {
  // A small archive in the layout of Apicurio 3.0.x: the runner jar at the top.
  const src = path.join(root, 'src');
  fs.mkdirSync(path.join(src, 'lib'), { recursive: true });
  fs.writeFileSync(path.join(src, `apicurio-registry-app-${VERSION}-runner.jar`), crypto.randomBytes(256 * 1024));
  const archive = path.join(root, 'app.tar.gz');
  execFileSync('tar', ['-czf', archive, '-C', src, '.']);
  const bytes = fs.readFileSync(archive);
  const sha1 = crypto.createHash('sha1').update(bytes).digest('hex');
  server = http.createServer((req, res) => {
    if (req.url?.endsWith('.tar.gz.sha1')) {
      res.end(`${sha1}\n`);
    } else if (req.url?.endsWith('.tar.gz')) {
      archiveGets++;
      // Slowly, in pieces: two unlocked downloads of the same file overlap for sure.
      res.writeHead(200, { 'content-length': bytes.length });
      let at = 0;
      const next = () => {
        if (at >= bytes.length) return void res.end();
        res.write(bytes.subarray(at, at + 32 * 1024));
        at += 32 * 1024;
        setTimeout(next, 20);
      };
      next();
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error('no address');
  repo = `http://127.0.0.1:${address.port}/maven2`;
});

afterAll(async () => {
  await new Promise<void>((resolve) => server.close(() => resolve()));
  fs.rmSync(root, { recursive: true, force: true });
});

describe('cached downloads (Apicurio archive)', () => {
  it('two runs on one cold cache download once, under the cache lock, and both get a complete dist', async () => {
    const cacheDir = path.join(root, 'cache');
    const p = apicurioCachePaths(cacheDir, VERSION);
    // What a killed run left: a half-written archive and a half-extracted folder.
    fs.mkdirSync(cacheDir, { recursive: true });
    fs.writeFileSync(`${p.tarball}.tmp-1-dead.tar.gz`, 'half');
    fs.mkdirSync(`${p.dir}.tmp-1-dead.extract`);
    archiveGets = 0;
    const [a, b] = await Promise.all([
      ensureApicurioDist(cacheDir, VERSION, repo, () => {}),
      ensureApicurioDist(cacheDir, VERSION, repo, () => {}),
    ]);
    expect(archiveGets).toBe(1);
    expect(a).toEqual(b);
    expect(fs.statSync(a.jar).size).toBe(256 * 1024);
    // Only the extracted dist and the lock's parent remain: no temp files, no leftovers.
    expect(fs.readdirSync(cacheDir).sort()).toEqual([path.basename(p.dir)]);
    // Warm: no download at all.
    await ensureApicurioDist(cacheDir, VERSION, repo, () => {});
    expect(archiveGets).toBe(1);
  });
});
