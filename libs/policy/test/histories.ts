// Transition histories and policies the policy tests share.
import { parseRolloutPolicy, type RolloutPolicy, rolloutPolicyFor, type TransitionFact } from '../src/index.js';

export const T0 = Date.UTC(2026, 0, 1);

/** `fraud`'s rollout policy from a policy document. */
export const rollout = (doc: Record<string, unknown>): RolloutPolicy =>
  rolloutPolicyFor(parseRolloutPolicy(doc), 'fraud') as RolloutPolicy;

/** One recorded transition. */
export const fact = (
  version: string,
  from_stage: TransitionFact['from_stage'],
  to_stage: TransitionFact['to_stage'],
  at: number,
  previous_version: string | null = null,
): TransitionFact => ({ version, from_stage, to_stage, at, previous_version, evidence: '' });

/** v1 in production, v2 in shadow against it since T0 + 3. */
export const shadowing: TransitionFact[] = [
  fact('v1', null, 'candidate', T0),
  fact('v1', 'candidate', 'shadow', T0),
  fact('v1', 'shadow', 'canary', T0 + 1),
  fact('v1', 'canary', 'production', T0 + 2),
  fact('v2', null, 'candidate', T0 + 3),
  fact('v2', 'candidate', 'shadow', T0 + 3, 'v1'),
];

/** v2 in canary against v1 since T0 + 4. */
export const canarying: TransitionFact[] = [...shadowing, fact('v2', 'shadow', 'canary', T0 + 4, 'v1')];

/** v2 promoted over v1: the rollback watch of v2 against v1 is open since T0 + 5. */
export const watching: TransitionFact[] = [...canarying, fact('v2', 'canary', 'production', T0 + 5, 'v1')];
