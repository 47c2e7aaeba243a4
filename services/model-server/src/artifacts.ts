// A version's artifacts, read and compiled: in place (`artifactLoader`), or on a thread of its own
// (load-thread.ts) so a large model does not stop the serving thread while it parses.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { join, resolve, sep } from 'node:path';
import { ARTIFACT_NAME_RULE, DriftlineError, isArtifactName } from '@driftline/core';
import {
  type CompiledXgboostModel,
  compileXgboostModel,
  ModelFormatError,
  SERVED_MODEL_LIMITS,
  xgboostModelOf,
} from '@driftline/scoring';
import { type LoadedVersion, versionOf } from './version.js';

/** Loads one version's artifacts. */
export type VersionLoader = (model: string, version: string) => Promise<LoadedVersion>;

/** Largest model.json or meta.json the server reads (XGBoost's JSON of a 4-million-node model is about this, at ~65 bytes a node). */
export const MAX_ARTIFACT_FILE_BYTES = 256 * 1_048_576;

/** A version compiled to plain data: what the load thread hands the serving thread. */
export interface CompiledVersion {
  readonly compiled: CompiledXgboostModel;
  /** meta.json, parsed. */
  readonly meta: unknown;
}

/**
 * Reads `<dir>/<model>/<version>/model.json` and `meta.json` (the trainer's artifact layout) and
 * compiles the model; `versionFromCompiled` checks the meta against it. The names are checked to be plain path
 * segments, so nothing outside the directory is read whatever models.v1 carries.
 */
export async function compileArtifacts(dir: string, model: string, version: string): Promise<CompiledVersion> {
  const root = resolve(dir);
  for (const [what, name] of [
    ['model', model],
    ['version', version],
  ] as const) {
    if (!isArtifactName(name)) {
      throw new DriftlineError(
        'VALIDATION_FAILED',
        `${what} ${JSON.stringify(name.slice(0, 140))} cannot name an artifact directory (${ARTIFACT_NAME_RULE})`,
      );
    }
  }
  const at = join(root, model, version);
  if (!at.startsWith(root + sep))
    throw new DriftlineError('VALIDATION_FAILED', `${model}/${version} escapes the artifact directory`);
  const read = async (name: 'model.json' | 'meta.json') => {
    // Parsed whole: bounded before it is read. A regular file only: a FIFO hung the read (and
    // with it every model's stage events), /dev/zero reports size 0 and grew to 650 MB before
    // failing, retried for ever (found by a review).
    const info = await stat(join(at, name));
    if (!info.isFile()) {
      throw new DriftlineError('VALIDATION_FAILED', `model ${model} version ${version}: ${name} is not a regular file`);
    }
    if (info.size > MAX_ARTIFACT_FILE_BYTES) {
      throw new DriftlineError(
        'VALIDATION_FAILED',
        `model ${model} version ${version}: ${name} is ${info.size} bytes, more than ${MAX_ARTIFACT_FILE_BYTES}`,
      );
    }
    return readFile(join(at, name));
  };
  let modelBytes: Buffer;
  let metaText: string;
  try {
    // One after the other: a load stuck on a hung volume holds one thread of libuv's pool, not two
    // (see MAX_ABANDONED_LOADS in load-thread.ts).
    modelBytes = await read('model.json');
    metaText = (await read('meta.json')).toString('utf8');
  } catch (error) {
    if (error instanceof DriftlineError) throw error;
    // Retriable: a PROMOTED can arrive before its files are written or their volume is mounted.
    throw new DriftlineError(
      'NOT_FOUND',
      `model ${model} version ${version}: no artifacts in ${at} (${(error as NodeJS.ErrnoException).code ?? 'unreadable'})`,
      { cause: error, retriable: true },
    );
  }
  let meta: unknown;
  try {
    meta = JSON.parse(withoutBom(metaText));
  } catch (error) {
    throw new ModelFormatError('meta', `not JSON: ${(error as Error).message}`, { cause: error });
  }
  checkModelDigest(model, version, modelBytes, meta);
  const compiled = compileXgboostModel(modelBytes.toString('utf8'), SERVED_MODEL_LIMITS);
  return { compiled, meta };
}

/**
 * When `meta` names its model file by SHA-256 (`model_sha256`, the trainer's worker writes it), the
 * bytes read must be that file: the two files of a version are read one after the other, and a
 * second run of the same request replacing them in between (two trainers after a rebalance) could
 * pair one run's trees with the other's features and categories, which scores wrongly without an
 * error. A mismatch is retriable: the next load reads the pair again. Older versions have no digest.
 */
function checkModelDigest(model: string, version: string, modelBytes: Buffer, meta: unknown): void {
  const expected =
    typeof meta === 'object' && meta !== null && 'model_sha256' in meta
      ? (meta as { model_sha256: unknown }).model_sha256
      : undefined;
  if (expected === undefined) return;
  const actual = createHash('sha256').update(modelBytes).digest('hex');
  if (typeof expected === 'string' && expected.toLowerCase() === actual) return;
  throw new DriftlineError(
    'NOT_FOUND',
    `model ${model} version ${version}: model.json (sha256 ${actual}) is not the file meta.json names (model_sha256 ${JSON.stringify(String(expected)).slice(0, 80)}): the version's files are being replaced, or were mixed by hand; retried`,
    { retriable: true },
  );
}

/** `text` without a leading UTF-8 byte order mark (which JSON.parse refuses, naming an invisible character). */
function withoutBom(text: string): string {
  return text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
}

/** The version of compiled artifacts (cheap: the arrays are used as they are). */
export function versionFromCompiled(model: string, version: string, c: CompiledVersion): LoadedVersion {
  return versionOf(model, version, xgboostModelOf(c.compiled), c.meta);
}

/** Reads and compiles versions on the calling thread (tests, benchmarks; the load thread's work). */
export function artifactLoader(dir: string): VersionLoader {
  return async (model, version) => versionFromCompiled(model, version, await compileArtifacts(dir, model, version));
}
