// `pnpm build` / `make build`: bundles the `driftline` command into services/cli/dist.
//
// Why a bundle (esbuild) and not tsc project references: one pass over the sources, no per-package
// tsconfig/references list to keep in step while packages move, a packed tarball that needs no
// workspace package, and the fastest start (a few files instead of hundreds of modules behind
// node_modules symlinks). Types stay checked by `pnpm typecheck`; esbuild only strips them.
//
// - Workspace packages (@driftline/*) are bundled from their TypeScript sources (`source` export
//   condition), so no package list is written down here.
// - Every npm package stays external and is loaded from node_modules at run time (chdb is native,
//   pino starts worker threads by file name, kafkajs and ioredis gain nothing from bundling). The
//   build fails unless services/cli/package.json `dependencies` lists exactly those packages, so the
//   packed tarball installs what it imports and nothing else.
// - Code splitting keeps each command (and each service) in chunks loaded on demand: `--help` loads
//   main.js only, never kafkajs, chdb, apache-arrow or ioredis.
import { cpSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { isBuiltin } from 'node:module';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Metafile, type Plugin } from 'esbuild';

const cli = join(dirname(fileURLToPath(import.meta.url)), '..');
const root = join(cli, '..', '..');

/** The package name of a bare specifier: `chdb/connection` → `chdb`, `@a/b/c` → `@a/b`. */
function packageName(specifier: string): string {
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : (parts[0] ?? specifier);
}

const RESOLVING = Symbol('resolving');

/**
 * npm packages and node builtins stay external; workspace sources are bundled and marked free of
 * import-time side effects (none of them is imported for its side effects alone), so a chunk keeps
 * only the modules it uses: `drift --help` does not load @driftline/core's config (and zod) because
 * main.ts needs its error classes.
 */
const workspaceOnly: Plugin = {
  name: 'workspace-only',
  setup(b) {
    b.onResolve({ filter: /.*/ }, async (args) => {
      if (args.pluginData === RESOLVING || args.kind === 'entry-point') return undefined;
      if (/^[^./]/.test(args.path) && !args.path.startsWith('@driftline/')) return { path: args.path, external: true };
      const resolved = await b.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: RESOLVING,
      });
      if (resolved.errors.length > 0) return { errors: resolved.errors };
      return { path: resolved.path, sideEffects: false };
    });
  },
};

function externalPackages(metafile: Metafile): Set<string> {
  const names = new Set<string>();
  for (const output of Object.values(metafile.outputs)) {
    for (const imported of output.imports) {
      if (imported.external && !isBuiltin(imported.path)) names.add(packageName(imported.path));
    }
  }
  return names;
}

export interface CliBuild {
  /** `<dist>/lib/main.js`, the entry the bin (bin/driftline.js) imports. */
  readonly main: string;
  readonly metafile: Metafile;
  /** npm packages the bundle imports at run time. */
  readonly externals: ReadonlySet<string>;
}

/**
 * Bundles the CLI into `dist` (emptied first): `dist/lib/` (main.js and its chunks, flat) and
 * `dist/worker/` (the trainer's Python worker). Fails when package.json `dependencies` is not
 * exactly the set of npm packages the bundle imports.
 */
export async function buildCli(dist: string): Promise<CliBuild> {
  const out = join(dist, 'lib');
  rmSync(dist, { recursive: true, force: true });
  const result = await build({
    absWorkingDir: root,
    entryPoints: {
      main: join(cli, 'src', 'main.ts'),
      // The feature API's worker thread is loaded by file name, next to the module that spawns it.
      'thread-worker': join(root, 'services', 'feature-api', 'src', 'thread-worker.ts'),
      // The model server sends its prediction log from a worker thread (log-thread.ts).
      'log-worker': join(root, 'services', 'model-server', 'src', 'log-worker.ts'),
      // … and reads and compiles model artifacts on another (load-thread.ts).
      'load-worker': join(root, 'services', 'model-server', 'src', 'load-worker.ts'),
      // `driftline drift` computes half of the numeric columns on a worker thread (parallel-drift.ts).
      'drift-worker': join(cli, 'src', 'drift-worker.ts'),
    },
    outdir: out,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    conditions: ['source'],
    plugins: [workspaceOnly],
    chunkNames: '[name]-[hash]',
    // Maps for `node --enable-source-maps`: line numbers of the TypeScript sources, without their text.
    sourcemap: 'linked',
    sourcesContent: false,
    legalComments: 'none',
    metafile: true,
    logLevel: 'warning',
  });

  // The trainer finds its Python worker at `<its module>/../worker`: in the sources that is
  // services/trainer/worker, in the bundle dist/lib/../worker.
  cpSync(join(root, 'services', 'trainer', 'worker'), join(dist, 'worker'), { recursive: true });

  const manifest = JSON.parse(readFileSync(join(cli, 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>;
  };
  const declared = new Set(Object.keys(manifest.dependencies ?? {}));
  const externals = externalPackages(result.metafile);
  const missing = [...externals].filter((name) => !declared.has(name)).sort();
  const unused = [...declared].filter((name) => !externals.has(name)).sort();
  if (missing.length > 0 || unused.length > 0) {
    throw new Error(
      'services/cli/package.json "dependencies" must list exactly the npm packages the bundle imports ' +
        '(workspace packages are bundled: they belong in devDependencies)' +
        `${missing.length > 0 ? `\n  missing: ${missing.join(', ')}` : ''}` +
        `${unused.length > 0 ? `\n  not imported: ${unused.join(', ')}` : ''}`,
    );
  }
  const main = join(out, 'main.js');
  if (!existsSync(main)) throw new Error('esbuild wrote no main.js');
  return { main, metafile: result.metafile, externals };
}

/**
 * The external modules (npm packages, node builtins) that loading `output` (a path relative to the
 * repository root, as in the metafile) imports before any code runs: static imports, transitively
 * through the bundle's chunks; dynamic `import()`s are not followed.
 */
export function staticExternals(metafile: Metafile, output: string): Set<string> {
  const externals = new Set<string>();
  const visited = new Set<string>();
  const visit = (file: string): void => {
    for (const imported of metafile.outputs[file]?.imports ?? []) {
      if (imported.kind !== 'import-statement') continue;
      if (imported.external) externals.add(imported.path);
      else if (!visited.has(imported.path)) {
        visited.add(imported.path);
        visit(imported.path);
      }
    }
  };
  visit(output);
  return externals;
}

async function main(): Promise<void> {
  const started = performance.now();
  const built = await buildCli(join(cli, 'dist'));
  const js = Object.entries(built.metafile.outputs).filter(([file]) => file.endsWith('.js'));
  const kib = js.reduce((sum, [, o]) => sum + o.bytes, 0) / 1024;
  process.stdout.write(
    `driftline: built ${relative(root, built.main)} (${js.length} files, ${kib.toFixed(0)} KiB, ` +
      `${built.externals.size} npm packages external) in ${((performance.now() - started) / 1000).toFixed(1)} s\n`,
  );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  main().catch((error: unknown) => {
    process.stderr.write(`driftline build failed: ${error instanceof Error ? error.message : String(error)}\n`);
    process.exit(1);
  });
}
