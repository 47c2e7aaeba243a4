import { DriftlineError } from '@driftline/core';
import { describe, expect, it } from 'vitest';
import { parseCommandArgs } from '../src/args.js';
import { modelCommand } from '../src/commands/model.js';
import { describeError, EXIT } from '../src/describe-error.js';

async function answer(run: () => unknown, help: string): Promise<{ line: string; code: number }> {
  try {
    await run();
  } catch (error) {
    return describeError(error, help);
  }
  throw new Error('no error');
}

describe('usage lines (found by a review)', () => {
  it('`model` without a subcommand names the one there is (it said `unknown subcommand ""`)', async () => {
    for (const args of [[], ['--model', 'm']]) {
      expect(await answer(() => modelCommand(args), 'driftline model --help')).toEqual({
        code: EXIT.usage,
        line: 'a subcommand is needed: stage (driftline model stage --model M --version V --to STAGE) — see driftline model --help',
      });
    }
  });

  it('an empty input file is refused naming the option (it said "driftline: : no such file")', async () => {
    const options = { reference: { type: 'string' }, current: { type: 'string' } } as const;
    expect(
      await answer(() => parseCommandArgs(['--reference=', '--current', 'c.csv'], options), 'driftline drift --help'),
    ).toEqual({
      code: EXIT.usage,
      line: '--reference: empty path; name a file — see driftline drift --help',
    });
  });

  it('a name from the command line is cut in the error line (a 100,000-character --model made a 100 KB line)', async () => {
    const model = 'm'.repeat(100_000);
    const { line, code } = await answer(() => {
      throw new DriftlineError('NOT_FOUND', `model ${model} version v: nothing recorded`);
    }, 'driftline model-card --help');
    expect(code).toBe(EXIT.data);
    expect(line).toBe(`model ${'m'.repeat(128)}… version v: nothing recorded — check the names given`);
  });
});
