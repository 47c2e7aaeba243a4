import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import type { z } from 'zod';
import { ConfigError } from './errors.js';
import { jsonDepthWithin } from './json-depth.js';

/**
 * The text of a config file named by environment variable `variable`; an unreadable file is a
 * one-line ConfigError naming the variable (`what`, e.g. "feature view file", says what it is).
 */
export function readConfigFile(variable: string, file: string, what = 'file'): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new ConfigError(variable, `cannot read ${what} ${file}: ${(error as Error).message}`, { cause: error });
  }
}

/** Deepest nesting of `[` and `{` accepted in a config file (a real one nests a few levels). */
export const MAX_CONFIG_DEPTH = 64;

/**
 * The one parser of config files (feature views, policies, alert routes): YAML, of which JSON is a
 * subset, bounded against hostile text. Errors are one-line `ConfigError`s under `source`.
 * - Nesting is checked first: yaml recurses per level, and 1,000 nested `[` overflowed its stack.
 * - No aliases: yaml's alias-count check is cubic on a self-referencing anchor (400 aliases in
 *   1.6 KB took 22 s), and a config file has no need for them.
 */
export function parseConfigText(text: string, source: string): unknown {
  if (!jsonDepthWithin(text, MAX_CONFIG_DEPTH)) {
    throw new ConfigError(source, `not valid YAML/JSON: brackets nest deeper than ${MAX_CONFIG_DEPTH} levels`);
  }
  let document: unknown;
  try {
    document = parseYaml(text, { maxAliasCount: 0 });
  } catch (error) {
    throw new ConfigError(source, `not valid YAML/JSON: ${yamlProblem(error)}`, { cause: error });
  }
  const reserved = reservedKeyPath(document, []);
  if (reserved !== undefined) {
    throw new ConfigError(
      [source, ...reserved].join('.'),
      'the key __proto__ is reserved (a schema check would drop it, and with it what it names)',
    );
  }
  return document;
}

/**
 * The path of the first `__proto__` key in a parsed document, if any. yaml keeps it as an own key,
 * but an object built from the document (zod's records, spreads) assigns it as the prototype: a
 * model or feature of that name would vanish without an error.
 */
function reservedKeyPath(value: unknown, path: string[]): string[] | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  for (const [key, inner] of Object.entries(value)) {
    const at = [...path, key];
    if (!Array.isArray(value) && key === '__proto__') return at;
    const found = reservedKeyPath(inner, at);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** yaml's message, one line: its first line names the problem and the position; a code frame follows. */
function yamlProblem(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  if (message === 'Alias resolution is disabled') return 'aliases (*name) are not supported';
  return message.split('\n', 1)[0]!.trim();
}

/**
 * A parsed config document checked against its shape: the first problem is a ConfigError whose
 * field is its path under `source`, e.g. `policy.models.fraud.cooldown`.
 */
export function checkConfigDocument<T>(shape: z.ZodType<T>, document: unknown, source: string): T {
  const result = shape.safeParse(document);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const path = issue?.path.map(String).join('.') ?? '';
  throw new ConfigError(path === '' ? source : `${source}.${path}`, issue?.message ?? 'invalid');
}
