/** What `stack up` does with a stack recorded in state.json. */
export type RecordedStackAction =
  | { kind: 'reuse'; note?: string }
  | { kind: 'replace'; reason: string }
  | { kind: 'refuse'; message: string };

export interface RecordedStackFacts {
  stateDir: string;
  /** Undefined when every service is ours, alive and answering; else what is wrong. */
  problem: string | undefined;
  /** Pids of other live processes holding a lease (test runs, demos). */
  leasedBy: readonly number[];
  /** Whether any recorded service process is still ours and alive (nothing to protect when none is). */
  anyRunning: boolean;
  /** A fixed DRIFTLINE_STACK_*_PORT the recorded stack does not use, one entry each. */
  portChanges: readonly string[];
}

/**
 * The lease rule: a stack other live runs hold leases on is never stopped by another `stack up`.
 * A healthy stack is reused (a changed fixed port is then ignored, said in one line); an unhealthy
 * or re-ported one is replaced only when nobody else uses it, else `up` refuses in one line. A
 * stack none of whose services still runs is replaced whoever holds a lease: there is nothing left
 * to protect, and a long-lived holder (a demo) must not fail every other run's start.
 */
export function decideRecordedStack(facts: RecordedStackFacts): RecordedStackAction {
  const users = `run(s) pid ${facts.leasedBy.join(', ')}`;
  const leased = facts.leasedBy.length > 0;
  if (facts.problem !== undefined) {
    if (!facts.anyRunning) {
      return { kind: 'replace', reason: `none of the recorded stack's services runs any more (${facts.problem})` };
    }
    if (!leased) return { kind: 'replace', reason: `the recorded stack is not fully running (${facts.problem})` };
    return {
      kind: 'refuse',
      message:
        `the stack in ${facts.stateDir} is unhealthy (${facts.problem}) but ${users} still use it, so what runs ` +
        `of it is left running: wait for them to finish, or stop it with \`DRIFTLINE_STACK_DIR=${shellWord(facts.stateDir)} pnpm -s stack down\``,
    };
  }
  if (facts.portChanges.length === 0) return { kind: 'reuse' };
  const changes = facts.portChanges.join('; ');
  if (!leased) return { kind: 'replace', reason: `${changes}: restarting the stack on the requested ports` };
  return {
    kind: 'reuse',
    note: `${changes}: ignored, ${users} use the running stack (\`pnpm -s stack down\` first to change ports)`,
  };
}

/** `text` as one shell word (single-quoted unless it is plainly safe). */
function shellWord(text: string): string {
  return /^[\w./@%+=:,-]+$/.test(text) ? text : `'${text.replaceAll("'", "'\\''")}'`;
}
