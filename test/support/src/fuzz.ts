/**
 * Parameters and the time bound of driftline's property tests (fast-check). No imports, like
 * ./random: a unit test can use it without pulling in any client.
 *
 * Every run is seeded, so CI is reproducible: the default seed is fixed; `FUZZ_SEED=<n>` replays
 * another (fast-check prints the seed and the shrunk counterexample of a failure), `FUZZ_RUNS=<n>`
 * runs more inputs per property for a longer local hunt.
 */

/** Most time one call of the code under test may take: about 100× what a well-formed input costs. */
export const CALL_BUDGET_MS = 100;

const DEFAULT_SEED = 20_261_202;

/**
 * Tries of a call over budget, judged by the fastest: a hang or a blow-up repeats, a GC pause or a
 * thread descheduled on a loaded shared machine (load 14 on 2 cores was seen) does not.
 */
const ATTEMPTS = 3;

function fromEnv(name: string): number | undefined {
  const text = process.env[name];
  if (text === undefined || text === '') return undefined;
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new Error(`${name} must be an integer (got ${JSON.stringify(text)})`);
  return n;
}

/** `fc.assert` parameters: the seed, and `runs` inputs unless FUZZ_RUNS says otherwise. */
export function fuzzParameters(runs: number): { readonly seed: number; readonly numRuns: number } {
  return { seed: fromEnv('FUZZ_SEED') ?? DEFAULT_SEED, numRuns: fromEnv('FUZZ_RUNS') ?? runs };
}

/** What one call did: returned a value or threw (the thrown value, whatever it is). */
export type Outcome<T> =
  | { readonly threw: false; readonly value: T }
  | { readonly threw: true; readonly error: unknown };

function overBudget(ms: number, budgetMs: number): Error {
  return new Error(`one call took ${ms.toFixed(1)} ms, more than the ${budgetMs} ms budget`);
}

/**
 * Calls `fn` and measures the call: throws when it took longer than `budgetMs` (a call over budget
 * is repeated, up to 3 tries judged by the fastest, so `fn` must be safe to call again).
 */
export function timedCall<T>(fn: () => T, budgetMs = CALL_BUDGET_MS): Outcome<T> {
  let fastest = Number.POSITIVE_INFINITY;
  let outcome: Outcome<T> | undefined;
  for (let attempt = 0; attempt < ATTEMPTS && fastest > budgetMs; attempt++) {
    const started = performance.now();
    try {
      outcome = { threw: false, value: fn() };
    } catch (error) {
      outcome = { threw: true, error };
    }
    fastest = Math.min(fastest, performance.now() - started);
  }
  if (fastest > budgetMs) throw overBudget(fastest, budgetMs);
  return outcome!;
}

/** {@link timedCall} for a promise-returning `fn` (the time until it settles). */
export async function timedCallAsync<T>(fn: () => Promise<T>, budgetMs = CALL_BUDGET_MS): Promise<Outcome<T>> {
  let fastest = Number.POSITIVE_INFINITY;
  let outcome: Outcome<T> | undefined;
  for (let attempt = 0; attempt < ATTEMPTS && fastest > budgetMs; attempt++) {
    const started = performance.now();
    try {
      outcome = { threw: false, value: await fn() };
    } catch (error) {
      outcome = { threw: true, error };
    }
    fastest = Math.min(fastest, performance.now() - started);
  }
  if (fastest > budgetMs) throw overBudget(fastest, budgetMs);
  return outcome!;
}
