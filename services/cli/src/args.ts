import { type ParseArgsConfig, parseArgs } from 'node:util';
import { ConfigError } from '@driftline/core';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<T extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; strict: true; tokens: true }>
>;

/** Options naming a file to read (`drift`, `reference`): an empty one is refused as it is parsed. */
const INPUT_FILE_OPTIONS = new Set(['reference', 'current', 'file', 'data']);

/**
 * A command's options: node:util parseArgs, strict, refusing an option given twice — parseArgs
 * keeps the last value silently, so `--model a --model b` would act on a guess. Options declared
 * `multiple` may repeat. An empty input file (`--reference=`) is refused naming the option. The
 * errors are shaped like parseArgs' own or name the option, so the CLI answers them as usage
 * errors (exit 2).
 */
export function parseCommandArgs<T extends Options>(args: readonly string[], options: T): Parsed<T> {
  const parsed = parseArgs({ args: [...args], options, strict: true, tokens: true });
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    if (INPUT_FILE_OPTIONS.has(token.name) && token.value === '') {
      // `--reference=` (an unset shell variable) said "driftline: : no such file".
      throw new ConfigError(`--${token.name}`, 'empty path; name a file');
    }
    if (options[token.name]?.multiple === true) continue;
    if (seen.has(token.name)) {
      throw Object.assign(new Error(`option --${token.name} is given more than once; give it once`), {
        code: 'ERR_PARSE_ARGS_REPEATED_OPTION',
      });
    }
    seen.add(token.name);
  }
  return parsed;
}
