import { type ParseArgsConfig, parseArgs } from 'node:util';

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<T extends Options> = ReturnType<
  typeof parseArgs<{ args: string[]; options: T; strict: true; tokens: true }>
>;

/**
 * A command's options: node:util parseArgs, strict, refusing an option given twice — parseArgs
 * keeps the last value silently, so `--model a --model b` would act on a guess. Options declared
 * `multiple` may repeat. The error is shaped like parseArgs' own, so the CLI answers it as a
 * usage error (exit 2).
 */
export function parseCommandArgs<T extends Options>(args: readonly string[], options: T): Parsed<T> {
  const parsed = parseArgs({ args: [...args], options, strict: true, tokens: true });
  const seen = new Set<string>();
  for (const token of parsed.tokens) {
    if (token.kind !== 'option' || options[token.name]?.multiple === true) continue;
    if (seen.has(token.name)) {
      throw Object.assign(new Error(`option --${token.name} is given more than once; give it once`), {
        code: 'ERR_PARSE_ARGS_REPEATED_OPTION',
      });
    }
    seen.add(token.name);
  }
  return parsed;
}
