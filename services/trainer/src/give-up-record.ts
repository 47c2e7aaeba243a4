/**
 * What the trainer remembers of a request it gave up on its worker runs (MAX_WORKER_ATTEMPTS): the
 * record it gave up, the configuration it decided under, when, and the reason. A redelivery of that
 * record — its dead-lettering failed, the consumer loop's bisection handed it back, the trainer
 * crashed before the commit — is given up again at once, without a run. Anything else gets fresh
 * runs:
 * - another record: a DLQ replay, the trigger firing the same request again, or a topic deleted and
 *   recreated, whose offsets start again at 0. Told apart by the record's fingerprint (its Kafka
 *   timestamp, key and value), not by its position alone, which a recreated topic hands out again;
 * - the same record under another configuration: DRIFTLINE_TRAINER_TIMEOUT raised (or another
 *   setting a worker run depends on: configurationDigest), then the consumer group reset to
 *   reprocess it. A crash changes no setting;
 * - the same record when GIVE_UP_REMEMBERED_MS have passed since it was last given up: a redelivery
 *   comes within the trainer's restart or the loop's retries (each repeat renews the record); later,
 *   it is a deliberate reprocessing (the memory raised, which no setting shows).
 * Keyed by topic/partition@offset alone and kept for ever, it gave a reprocessing up at once with
 * the old reason, never a run, and a request sent again at a remembered offset of a recreated topic
 * too (found by a review).
 *
 * Pure: the caller keeps the record (in the request's version directory) and passes the clock.
 */
import { createHash } from 'node:crypto';
import { MAX_DATE_MS } from '@driftline/core';
import { z } from 'zod';
import type { TrainerConfig } from './config.js';

/**
 * How long a give-up holds for its record without being seen again: far more than a restart or the
 * loop's backoff between retries takes, and the hour after which the environment's streak counts a
 * trainer that was down as a new start (ENVIRONMENT_FAILURE_BUDGET_MS).
 */
export const GIVE_UP_REMEMBERED_MS = 60 * 60_000;

/** The Kafka record a request came in. */
export interface RecordDelivery {
  /** `topic/partition@offset`. */
  readonly position: string;
  /** recordFingerprint (libs/kafka) of its Kafka timestamp, key and value. */
  readonly fingerprint: string;
}

export interface GiveUpRecord {
  readonly delivery: RecordDelivery;
  /** configurationDigest the give-up was decided under. */
  readonly configuration: string;
  /** When the record was last given up (epoch ms): the give-up, or its latest repeat. */
  readonly at: number;
  readonly reason: string;
}

export type GiveUpDecision =
  | { readonly kind: 'repeat'; readonly record: GiveUpRecord }
  | {
      readonly kind: 'fresh';
      /** Why the record gets fresh runs; `none`: no give-up is remembered. */
      readonly why: 'none' | 'another_record' | 'configuration_changed' | 'expired';
    };

/**
 * Whether the record now handled (`delivery`, under `configuration`, at `now`) is the given-up one
 * redelivered: its give-up is then repeated without a run. Without a delivery (not read from
 * Kafka), every handling is another record.
 */
export function giveUpDecision(
  held: GiveUpRecord | undefined,
  delivery: RecordDelivery | undefined,
  configuration: string,
  now: number,
): GiveUpDecision {
  if (held === undefined) return { kind: 'fresh', why: 'none' };
  if (
    delivery === undefined ||
    held.delivery.position !== delivery.position ||
    held.delivery.fingerprint !== delivery.fingerprint
  )
    return { kind: 'fresh', why: 'another_record' };
  if (held.configuration !== configuration) return { kind: 'fresh', why: 'configuration_changed' };
  // Either way: a clock set back by hours must not hold the record for those hours.
  if (Math.abs(now - held.at) >= GIVE_UP_REMEMBERED_MS) return { kind: 'fresh', why: 'expired' };
  return { kind: 'repeat', record: held };
}

const giveUpShape = z.object({
  delivery: z.object({ position: z.string().min(1), fingerprint: z.string().min(1) }),
  configuration: z.string().min(1),
  at: z.number().int().min(0).max(MAX_DATE_MS), // a time a Date holds: it is logged as one
  reason: z.string(),
});

/** A give-up as stored (JSON); anything unreadable, or of the older form keyed by position alone, is none. */
export function parseGiveUpRecord(text: string): GiveUpRecord | undefined {
  try {
    const parsed = giveUpShape.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}

/** `value` as JSON with object keys sorted: the same settings give the same text whatever their order. */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, v]) => v !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${canonicalJson(v)}`).join(',')}}`;
  }
  return JSON.stringify(value) ?? 'null';
}

/**
 * The configuration a give-up is decided under: what a worker run depends on — the timeout, the
 * training parameters, the device, the rows and holdout it is given, and the interpreter. A change
 * of one is a deliberate act of an operator, which a crash never is. Settings a worker run does not
 * see stay out: a redelivery taken over by an instance whose MAX_CELLS default follows another heap
 * limit, or whose session timeout or label poll differs, is still the redelivery (hashing every
 * setting ran a given-up request's worker 3 more times there: found by a review).
 */
export function configurationDigest(config: TrainerConfig, python: string): string {
  const { timeoutMs, params, device, maxRows, holdoutFraction } = config;
  return createHash('sha256')
    .update(canonicalJson({ timeoutMs, params, device, maxRows, holdoutFraction, python }))
    .digest('base64url')
    .slice(0, 22);
}
