import { afterEach, describe, expect, it, vi } from 'vitest';
import { runCommand } from '../src/commands/run.js';
import { describeError, EXIT } from '../src/describe-error.js';

/** How the CLI answers `run <args>`: its line and exit code (never starting a service: the arguments are checked first). */
async function answer(args: readonly string[]): Promise<{ line: string; code: number }> {
  // An unknown variable would stop any run that got past its arguments, before a service starts.
  vi.stubEnv('DRIFTLINE_NOT_A_VARIABLE', 'x');
  try {
    await runCommand(args);
  } catch (error) {
    return describeError(error, 'driftline run --help');
  }
  throw new Error('run returned');
}

describe('`driftline run` takes one comma-separated service list (found by a review: the rest was ignored)', () => {
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it('two names: a usage error showing the comma form (it started drift-monitor only)', async () => {
    expect(await answer(['drift-monitor', 'skew-monitor'])).toEqual({
      code: EXIT.usage,
      line: 'run: 2 arguments given; name the services as one comma-separated list: driftline run drift-monitor,skew-monitor — see driftline run --help',
    });
  });

  it('the comma form shown is one a run takes: no empty names from a comma or a blank in the arguments (found by a regression review)', async () => {
    expect(await answer(['drift-monitor,', 'skew-monitor'])).toEqual({
      code: EXIT.usage,
      line: 'run: 2 arguments given; name the services as one comma-separated list: driftline run drift-monitor,skew-monitor — see driftline run --help',
    });
    expect((await answer(['drift-monitor', ',skew-monitor', ' ', 'feature-api '])).line).toContain(
      'driftline run drift-monitor,skew-monitor,feature-api —',
    );
  });

  it('a known name then an unknown one is refused too (it configured feature-api)', async () => {
    const { code, line } = await answer(['feature-api', 'nope']);
    expect(code).toBe(EXIT.usage);
    expect(line).toContain('driftline run feature-api,nope');
  });

  it('an unknown option is a usage error (2), not a service name (78)', async () => {
    expect(await answer(['--foo'])).toEqual({
      code: EXIT.usage,
      line: 'run: unknown option "--foo"; run takes only a comma-separated list of services (driftline run drift-monitor,skew-monitor) — see driftline run --help',
    });
    expect((await answer(['drift-monitor', '-x'])).code).toBe(EXIT.usage);
  });

  it('an empty list is refused (it started every service), a huge argument is cut in the line', async () => {
    expect((await answer([' '])).code).toBe(EXIT.usage);
    const { code, line } = await answer([`--${'m'.repeat(100_000)}`]);
    expect(code).toBe(EXIT.usage);
    expect(line.length).toBeLessThan(400);
  });

  it('one list still gets past its arguments (here to the environment check)', async () => {
    expect((await answer(['drift-monitor,skew-monitor'])).code).toBe(EXIT.config);
  });
});
