import fs from 'node:fs';
import path from 'node:path';
import { removeLeftovers, withCacheLock } from './cache.js';
import { download, fetchText, runChecked, uniqueTemp } from './util.js';

export const CCOMPAT_PATH = '/apis/ccompat/v7';

export function apicurioCachePaths(cacheDir: string, version: string) {
  const dir = path.join(cacheDir, `apicurio-registry-app-${version}`);
  return {
    dir,
    marker: path.join(dir, '.complete.json'),
    tarball: path.join(cacheDir, `apicurio-registry-app-${version}-all.tar.gz`),
  };
}

export function apicurioUrl(mavenRepo: string, version: string): string {
  return `${mavenRepo}/io/apicurio/apicurio-registry-app/${version}/apicurio-registry-app-${version}-all.tar.gz`;
}

/**
 * Finds the runnable jar in an extracted Apicurio app archive. 3.0.x ships an uber-ish
 * `apicurio-registry-app-<v>-runner.jar` next to `lib/`; later 3.x ship Quarkus' fast-jar layout
 * (`quarkus-run.jar`). Either may sit at the top or one folder down. Returns a path relative to `dir`.
 */
export function findApicurioJar(dir: string, version: string): string | undefined {
  const names = [`apicurio-registry-app-${version}-runner.jar`, 'quarkus-run.jar'];
  const dirs = [''];
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    if (entry.isDirectory() && entry.name !== 'lib' && entry.name !== 'meta') dirs.push(entry.name);
  }
  for (const name of names) {
    for (const sub of dirs) {
      const rel = sub === '' ? name : path.join(sub, name);
      if (fs.existsSync(path.join(dir, rel))) return rel;
    }
  }
  return undefined;
}

export interface ApicurioDist {
  dir: string;
  jar: string;
}

function readMarker(marker: string, dir: string): ApicurioDist | undefined {
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(marker, 'utf8'));
    if (typeof parsed === 'object' && parsed !== null && 'jar' in parsed && typeof parsed.jar === 'string') {
      const jar = path.join(dir, parsed.jar);
      if (fs.existsSync(jar)) return { dir, jar };
    }
  } catch {
    // no marker: not (completely) downloaded
  }
  return undefined;
}

/**
 * Downloads (sha1-checked) and extracts the Apicurio app archive once, holding the cache lock;
 * reuses it afterwards. Temp files and folders a killed run left (`<archive>.tmp-*`,
 * `<dir>.tmp-*`) are removed first.
 */
export async function ensureApicurioDist(
  cacheDir: string,
  version: string,
  mavenRepo: string,
  log: (line: string) => void,
  signal?: AbortSignal,
): Promise<ApicurioDist> {
  const p = apicurioCachePaths(cacheDir, version);
  const cached = readMarker(p.marker, p.dir);
  if (cached) return cached;
  return withCacheLock(cacheDir, `apicurio-${version}`, { log, signal }, async () => {
    const again = readMarker(p.marker, p.dir); // another run may have fetched it while we waited
    if (again) return again;
    removeLeftovers(cacheDir, [`${path.basename(p.tarball)}.tmp-`, `${path.basename(p.dir)}.tmp-`]);
    const url = apicurioUrl(mavenRepo, version);
    log(`schema-registry: downloading Apicurio Registry ${version} (once, ~110 MB) from ${url}`);
    const sha1 = (await fetchText(`${url}.sha1`)).trim().split(/\s+/)[0];
    if (sha1 === undefined || !/^[0-9a-f]{40}$/i.test(sha1)) throw new Error(`unexpected checksum file at ${url}.sha1`);
    const tarball = uniqueTemp(p.tarball, 'tar.gz');
    const tmp = uniqueTemp(p.dir, 'extract');
    try {
      await download(url, tarball, { sha1, signal });
      fs.mkdirSync(tmp, { recursive: true });
      await runChecked('tar', ['-xzf', tarball, '-C', tmp], { what: `extracting ${url}`, signal });
      const jar = findApicurioJar(tmp, version);
      if (jar === undefined) {
        throw new Error(
          `${url} has neither apicurio-registry-app-${version}-runner.jar nor quarkus-run.jar; ` +
            `top level: ${fs.readdirSync(tmp).join(', ')}`,
        );
      }
      fs.writeFileSync(path.join(tmp, '.complete.json'), `${JSON.stringify({ jar, url, sha1 })}\n`);
      fs.rmSync(p.dir, { recursive: true, force: true });
      fs.renameSync(tmp, p.dir);
    } finally {
      fs.rmSync(tmp, { recursive: true, force: true });
      fs.rmSync(tarball, { force: true });
    }
    const dist = readMarker(p.marker, p.dir);
    if (dist === undefined) throw new Error(`extracted Apicurio into ${p.dir} but its marker is unreadable`);
    return dist;
  });
}

/** The registry's H2 files, relative to its working directory (its folder in the state dir). */
export const REGISTRY_DATA_DIR = 'data';

/**
 * JVM system properties for the registry: loopback only, no separate management port, deletes allowed
 * (tests clean up subjects) and FULL as the global compatibility, the level driftline sets on its
 * subjects (libs/codec: its consumers read with driftline's schema, FORWARD is what protects them).
 * Storage is Apicurio's default SQL storage on H2, but file-backed under REGISTRY_DATA_DIR instead of
 * in memory, so schemas and their ids survive a restart of the registry (the chaos run restarts it).
 * The H2 path is relative to the working directory: H2 ends the path at a `;`, which an absolute
 * state dir may hold.
 */
export function registrySystemProperties(port: number): string[] {
  return [
    `-Dquarkus.http.port=${port}`,
    '-Dapicurio.storage.kind=sql',
    '-Dapicurio.storage.sql.kind=h2',
    `-Dapicurio.datasource.url=jdbc:h2:file:./${REGISTRY_DATA_DIR}/registry;DB_CLOSE_ON_EXIT=FALSE;WRITE_DELAY=0`,
    '-Dquarkus.http.host=127.0.0.1',
    '-Dquarkus.management.enabled=false',
    '-Dapicurio.rest.deletion.artifact.enabled=true',
    '-Dapicurio.rest.deletion.artifact-version.enabled=true',
    '-Dapicurio.rest.deletion.group.enabled=true',
    '-Dapicurio.rules.global.compatibility=FULL',
  ];
}

/** The ccompat API lists subjects (200) once the registry is up. */
export async function registryReady(baseUrl: string): Promise<void> {
  const res = await fetch(`${baseUrl}/subjects`, { signal: AbortSignal.timeout(3_000) });
  await res.body?.cancel();
  if (res.status !== 200) throw new Error(`GET ${baseUrl}/subjects: HTTP ${res.status}`);
}

/**
 * Apicurio enforces the configured global rule but its ccompat `GET /config` reports NONE until the
 * level is set through the API, so set it explicitly: clients then see what Confluent would report.
 */
export async function setGlobalCompatibility(baseUrl: string, level = 'FULL'): Promise<void> {
  const res = await fetch(`${baseUrl}/config`, {
    method: 'PUT',
    headers: { 'content-type': 'application/vnd.schemaregistry.v1+json' },
    body: JSON.stringify({ compatibility: level }),
    signal: AbortSignal.timeout(5_000),
  });
  const body = await res.text();
  if (!res.ok) throw new Error(`PUT ${baseUrl}/config: HTTP ${res.status} ${body}`);
}
