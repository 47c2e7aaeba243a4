import { statSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { ConfigError } from '@driftline/core';

/**
 * The file an `--out`-style option names, checked before any work: not empty, not a directory,
 * in a directory that exists (created directories are a guess; a recursive mkdir under /proc
 * never returns on Node 20). Mistakes are usage errors naming the option, never "internal".
 */
export function outputFile(option: string, value: string): string {
  if (value === '') throw new ConfigError(option, 'is empty; name a file');
  const path = resolve(value);
  if (isDirectory(path)) {
    throw new ConfigError(option, `${path} is a directory; name a file`);
  }
  const dir = dirname(path);
  if (!isDirectory(dir)) {
    throw new ConfigError(option, `directory ${dir} does not exist`);
  }
  return path;
}

/** Whether `path` is a directory; false when it is absent or a file is on its way (ENOTDIR). */
function isDirectory(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** Writes `text` to a file checked by {@link outputFile}; a refusal (EACCES, EROFS …) names the option. */
export function writeOutput(option: string, path: string, text: string): void {
  try {
    writeFileSync(path, text);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code ?? 'error';
    throw new ConfigError(option, `cannot write ${path} (${code})`, { cause: error });
  }
}
