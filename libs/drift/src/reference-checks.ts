import type { Logger } from '@driftline/core';
import { categoricalBins, EXACT_SUM_LIMBS, SUMMARY_FORMAT } from '@driftline/stats';
import { PARTIALS_FORMAT, PARTIALS_MAX_BYTES } from './messages.js';
import type { ReferenceSet } from './reference.js';

/**
 * Checks of a reference set before it is stored or measured against, by arithmetic on its
 * profiles (no summary is built): what the drift monitor could not do with it.
 *
 * - `PARTIAL_TOO_LARGE` (error): one window's partial of a (model, version) — every feature's
 *   summary in one message — would exceed {@link PARTIALS_MAX_BYTES}, the partials topic's limit:
 *   Kafka refuses it and every window of the version is lost (~1,450 numeric features on the
 *   default 1000-cut grid).
 * - `TAIL_SKETCH_SATURATED` (warning): a categorical profile's tail sketch takes a category the
 *   reference never held for one of its tail with probability above
 *   {@link TAIL_FALSE_POSITIVE_WARN_RATE}: new categories are then counted as reference mass
 *   (nearly invisible), typically an id-like column (one value per row).
 */
export type ReferenceFindingCode = 'PARTIAL_TOO_LARGE' | 'TAIL_SKETCH_SATURATED';

export interface ReferenceFinding {
  readonly code: ReferenceFindingCode;
  /** An error: the drift monitor cannot measure the reference at all; a warning: only less well. */
  readonly severity: 'error' | 'warning';
  /** The feature concerned (a warning's); undefined for the whole set. */
  readonly feature?: string;
  /** One line naming the model, version, what is wrong and what to do. */
  readonly message: string;
}

/** A tail sketch's false-positive rate above which a reference check warns (`TAIL_SKETCH_SATURATED`). */
export const TAIL_FALSE_POSITIVE_WARN_RATE = 0.05;

/**
 * Bytes of a partial's header besides its model, version and reference id: the message with empty
 * names and summaries, the longest topic Kafka allows (249 characters) and integers of 16 digits.
 */
const HEADER_BYTES =
  JSON.stringify({
    type: 'partial',
    format: PARTIALS_FORMAT,
    source: { topic: '', partition: 0, partitions: 0 },
    model: '',
    version: '',
    referenceId: '',
    windowStart: 0,
    windowEnd: 0,
    events: 0,
    late: 0,
    summaries: {},
  }).length +
  249 +
  6 * 15;

/** The float64 scalars ahead of a summary's counters (summary.ts): numeric 7 + its exact-sum limbs, categorical 2. */
const NUMERIC_SCALARS = 7 + EXACT_SUM_LIMBS;
const CATEGORICAL_SCALARS = 2;

/** JSON length of a string (quotes and escapes included). */
function jsonLength(s: string): number {
  return Buffer.byteLength(JSON.stringify(s));
}

/**
 * The bytes of one window's partial of a (model, version) measured on `set`, without a
 * data-quality section: each feature's summary `{"format","kind","profileId","encoding","data"}`
 * with its counters as u32 (what stage one writes unless a slot counts more than 2^32 events in one
 * window), and the header at its largest. So at most a few hundred bytes above the real size
 * (the topic's name and the numbers are shorter), never below it for u32 counters. A data-quality
 * section (`DRIFTLINE_FEATURE_VIEWS` expectations) adds to it: about 1.4 KB per feature with a
 * cardinality expectation (its HyperLogLog), less without.
 */
export function partialBytesEstimate(set: ReferenceSet): number {
  let bytes = HEADER_BYTES + jsonLength(set.model) + jsonLength(set.version) + jsonLength(set.referenceId);
  const perSummary =
    `{"format":"${SUMMARY_FORMAT}","kind":"categorical","profileId":,"encoding":"u32","data":""},`.length + 1;
  for (let i = 0; i < set.profiles.length; i++) {
    const p = set.profiles[i]!;
    const raw =
      p.kind === 'numeric'
        ? NUMERIC_SCALARS * 8 + (2 * p.cuts.length + 1) * 4
        : CATEGORICAL_SCALARS * 8 + categoricalBins(p) * 4;
    bytes += jsonLength(set.features[i]!) + perSummary + jsonLength(p.id) + 4 * Math.ceil(raw / 3);
  }
  return bytes;
}

const MIB = 1024 * 1024;

/** What the drift monitor could not do with `set` (see {@link ReferenceFindingCode}); empty when nothing. */
export function referenceFindings(set: ReferenceSet): ReferenceFinding[] {
  const findings: ReferenceFinding[] = [];
  const who = `reference of ${JSON.stringify(set.model)} version ${JSON.stringify(set.version)}`;
  const bytes = partialBytesEstimate(set);
  if (bytes > PARTIALS_MAX_BYTES) {
    const numeric = set.profiles.filter((p) => p.kind === 'numeric').length;
    const perFeature = (bytes - HEADER_BYTES) / Math.max(1, set.profiles.length);
    const fits = Math.floor((PARTIALS_MAX_BYTES - HEADER_BYTES) / perFeature);
    findings.push({
      code: 'PARTIAL_TOO_LARGE',
      severity: 'error',
      message:
        `${who} has ${set.profiles.length} features (${numeric} numeric): one window's partial would be ` +
        `${(bytes / MIB).toFixed(2)} MiB, above the ${PARTIALS_MAX_BYTES / MIB} MiB the drift partials topic takes, ` +
        `so every window of it would be refused and its events left out; about ${fits} features of these fit: ` +
        'leave columns out (driftline reference --exclude) or split the model',
    });
  }
  for (let i = 0; i < set.profiles.length; i++) {
    const p = set.profiles[i]!;
    if (p.kind !== 'categorical' || p.tail === undefined) continue;
    const rate = p.tail.falsePositiveRate;
    if (!(rate > TAIL_FALSE_POSITIVE_WARN_RATE)) continue;
    const feature = set.features[i]!;
    findings.push({
      code: 'TAIL_SKETCH_SATURATED',
      severity: 'warning',
      feature,
      message:
        `${who}: column ${JSON.stringify(feature)} has ${p.categories.length + p.tail.size} distinct values ` +
        `(${p.tail.size} beyond the ${p.categories.length} kept): a category never seen is taken for a reference ` +
        `one with probability ${rate.toFixed(3)} (above ${TAIL_FALSE_POSITIVE_WARN_RATE}), so new categories ` +
        'are nearly invisible and its PSI is noisy; an id-like column should be left out (driftline reference --exclude)',
    });
  }
  return findings;
}

/**
 * Logs `set`'s findings ({@link referenceFindings}): an error line for a set the drift monitor
 * cannot measure, a warning per column it measures less well; each names the model, version and
 * reference. The drift monitor calls it when it loads a reference, the trainer when it saves one.
 */
export function logReferenceFindings(logger: Logger, set: ReferenceSet): void {
  for (const f of referenceFindings(set)) {
    const fields = {
      model: set.model,
      version: set.version,
      referenceId: set.referenceId,
      features: set.features.length,
      code: f.code,
      ...(f.feature === undefined ? {} : { feature: f.feature }),
    };
    if (f.severity === 'error') logger.error(fields, f.message);
    else logger.warn(fields, f.message);
  }
}
