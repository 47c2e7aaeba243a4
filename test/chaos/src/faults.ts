// The seeded fault schedule: when each fault starts and how long its outage lasts.
import { SeededRandom } from '@driftline/test-support/random';

export type FaultKind =
  | `kill:${(typeof SERVICE_KINDS)[number]}`
  | 'kill:clickhouse'
  | 'restart:kafka'
  | 'restart:schema-registry'
  | 'pause:redis'
  | 'kill:redis';

export interface Fault {
  readonly kind: FaultKind;
  /** Offset from the start of the traffic, ms. */
  readonly atMs: number;
  /** Downtime before the restart (kills of services) or the pause length (Redis), ms. */
  readonly downMs: number;
  /** Which instance, for a service kind with several. */
  readonly instance: number;
}

/** Service kinds of the run (each its own processes); every one is killed `killsPerKind` times. */
export const SERVICE_KINDS = [
  'feature-materializer',
  'feature-api',
  'label-joiner',
  'drift-monitor',
  'retrain-trigger',
] as const;
export const REDIS_PAUSE_MS = 15_000;

/**
 * `killsPerKind` SIGKILLs of every service kind and one of the ClickHouse host at random moments
 * within the first 85% of the traffic, and the four stack faults (broker restart, registry restart,
 * Redis paused 15 s, Redis killed) in separate, shuffled slots of the run so that each has its own
 * recovery to measure (they run one after the other: a slow restart delays the next).
 */
export function faultSchedule(seed: number, trafficMs: number, killsPerKind = 3): Fault[] {
  const random = new SeededRandom(seed ^ 0xfa17);
  const faults: Fault[] = [];
  for (const kind of SERVICE_KINDS) {
    for (let i = 0; i < killsPerKind; i++) {
      faults.push({
        kind: `kill:${kind}`,
        atMs: Math.round(trafficMs * (0.05 + 0.8 * random.uniform())),
        downMs: 500 + random.int(2500),
        instance: random.int(2),
      });
    }
  }
  // Beside the kills, not in the stack slots: the host restarts in a second or two.
  faults.push({
    kind: 'kill:clickhouse',
    atMs: Math.round(trafficMs * (0.05 + 0.8 * random.uniform())),
    downMs: 1_000,
    instance: 0,
  });
  const stack: FaultKind[] = ['restart:kafka', 'restart:schema-registry', 'pause:redis', 'kill:redis'];
  for (let i = stack.length - 1; i > 0; i--) {
    const j = random.int(i + 1);
    [stack[i], stack[j]] = [stack[j] as FaultKind, stack[i] as FaultKind];
  }
  stack.forEach((kind, slot) => {
    const slotMs = (trafficMs * 0.8) / stack.length;
    faults.push({
      kind,
      atMs: Math.round(trafficMs * 0.08 + slot * slotMs + random.uniform() * slotMs * 0.3),
      downMs: kind === 'pause:redis' ? REDIS_PAUSE_MS : 0,
      instance: 0,
    });
  });
  return faults.sort((a, b) => a.atMs - b.atMs);
}
