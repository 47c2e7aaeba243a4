import { type ReferenceSet, referenceSet } from '@driftline/drift';
import { parseReferenceProfile, type ReferenceProfile } from '@driftline/stats';
import type { ClickHouse } from '../client.js';
import { arrayElementUrlBytes, chunksByUrlBytes } from '../lookup-chunks.js';
import type { Migration } from '../migrate.js';
import { chTime } from '../time.js';

export const referenceProfilesMigration: Migration = {
  id: '0100_reference_profiles',
  statements: [
    `CREATE TABLE IF NOT EXISTS {db}.reference_profiles (
      model String,
      version String,
      reference_id String,
      feature String,
      kind LowCardinality(String),
      profile String,
      created_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(created_at)
    ORDER BY (model, version, reference_id, feature)`,
  ],
};

/** Where reference profiles live: one port, one ClickHouse adapter. */
export interface ReferenceStore {
  save(set: ReferenceSet): Promise<void>;
  /** The latest reference of (model, version), or undefined. */
  latest(model: string, version: string): Promise<ReferenceSet | undefined>;
  byId(referenceId: string): Promise<ReferenceSet | undefined>;
  /**
   * The latest reference of the `limit` (model, version) pairs whose latest was saved last; a
   * malformed profile throws ConfigError naming it, or, given `skip`, leaves its set out and is
   * told to `skip` (the others are returned).
   */
  newest(limit: number, skip?: (invalid: InvalidReference) => void): Promise<ReferenceSet[]>;
  /**
   * The latest reference id of each of `pairs` that has a reference (no profiles); a pair without
   * one is left out. Pairs not asked about may be named too (a caller ignores them). Bounded by
   * what is asked: there is no read of every pair ever stored (one per trained version, kept for
   * good).
   */
  catalog(pairs: readonly ReferencePair[]): Promise<Array<ReferencePair & { referenceId: string }>>;
}

/** A (model, version) pair asked about. */
interface ReferencePair {
  readonly model: string;
  readonly version: string;
}

/** A stored reference set left out because one of its profiles cannot be read. */
interface InvalidReference {
  readonly model: string;
  readonly version: string;
  readonly referenceId: string;
  readonly feature: string;
  /** The ConfigError's message, naming the row and field. */
  readonly reason: string;
}

interface Row {
  model: string;
  version: string;
  reference_id: string;
  feature: string;
  profile: string;
}

/** A stored profile through the one profile parser (libs/stats); ConfigError names the row. */
export function parseStoredProfile(text: string, where: string): ReferenceProfile {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return parseReferenceProfile(json, `reference_profiles[${where}].profile`);
}

/** The rows' sets; a malformed profile throws, or with `skip` leaves its set out and is told to it. */
function toSets(rows: readonly Row[], skip?: (invalid: InvalidReference) => void): ReferenceSet[] {
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const list = groups.get(r.reference_id);
    if (list === undefined) groups.set(r.reference_id, [r]);
    else list.push(r);
  }
  const sets: ReferenceSet[] = [];
  for (const list of groups.values()) {
    const first = list[0]!;
    const profiles = new Map<string, ReferenceProfile>();
    let invalid: InvalidReference | undefined;
    for (const r of list) {
      try {
        profiles.set(r.feature, parseStoredProfile(r.profile, `${r.model}/${r.version}/${r.feature}`));
      } catch (error) {
        if (skip === undefined) throw error;
        const reason = error instanceof Error ? error.message : String(error);
        invalid = { model: r.model, version: r.version, referenceId: r.reference_id, feature: r.feature, reason };
        break;
      }
    }
    if (invalid !== undefined) skip?.(invalid);
    else sets.push({ ...referenceSet(first.model, first.version, profiles), referenceId: first.reference_id });
  }
  return sets;
}

export class ClickHouseReferenceStore implements ReferenceStore {
  constructor(
    private readonly ch: ClickHouse,
    private readonly now: () => number = Date.now,
  ) {}

  private get table(): string {
    return this.ch.table('reference_profiles');
  }

  async save(set: ReferenceSet): Promise<void> {
    const createdAt = chTime(this.now());
    await this.ch.insert(
      'reference_profiles',
      set.features.map((feature, i) => ({
        model: set.model,
        version: set.version,
        reference_id: set.referenceId,
        feature,
        kind: set.profiles[i]!.kind,
        profile: JSON.stringify(set.profiles[i]),
        created_at: createdAt,
      })),
    );
  }

  private rows(where: string, params: Readonly<Record<string, unknown>>): Promise<Row[]> {
    return this.ch.select<Row>(
      `SELECT model, version, reference_id, feature, profile FROM ${this.table} FINAL WHERE ${where}
       ORDER BY reference_id, feature`,
      params,
    );
  }

  async latest(model: string, version: string): Promise<ReferenceSet | undefined> {
    const sets = toSets(
      await this.rows(
        `reference_id = (SELECT argMax(reference_id, created_at) FROM ${this.table}
           WHERE model = {model:String} AND version = {version:String})
         AND model = {model:String} AND version = {version:String}`,
        { model, version },
      ),
    );
    return sets[0];
  }

  async byId(referenceId: string): Promise<ReferenceSet | undefined> {
    return toSets(await this.rows('reference_id = {id:String}', { id: referenceId }))[0];
  }

  async catalog(pairs: readonly ReferencePair[]): Promise<Array<ReferencePair & { referenceId: string }>> {
    const out: Array<ReferencePair & { referenceId: string }> = [];
    // The pairs travel in the URL: chunks by their encoded bytes (each pair counted whole). Both
    // columns of the sorting key, as one tuple set: a range of the index per pair, not a scan.
    const pairBytes = (p: ReferencePair) => arrayElementUrlBytes(p.model) + arrayElementUrlBytes(p.version);
    const unique = new Map(pairs.map((p) => [`${p.model}\u0000${p.version}`, p]));
    for (const chunk of chunksByUrlBytes(unique.values(), pairBytes)) {
      const rows = await this.ch.select<{ model: string; version: string; reference_id: string }>(
        `SELECT model, version, argMax(reference_id, created_at) AS reference_id FROM ${this.table}
         WHERE (model, version) IN (SELECT untuple(arrayJoin(arrayZip({models:Array(String)}, {versions:Array(String)}))))
         GROUP BY model, version`,
        { models: chunk.map((p) => p.model), versions: chunk.map((p) => p.version) },
      );
      for (const r of rows) out.push({ model: r.model, version: r.version, referenceId: r.reference_id });
    }
    return out;
  }

  async newest(limit: number, skip?: (invalid: InvalidReference) => void): Promise<ReferenceSet[]> {
    return toSets(
      await this.rows(
        `reference_id IN (SELECT argMax(reference_id, created_at) FROM ${this.table} GROUP BY model, version
           ORDER BY max(created_at) DESC LIMIT {limit:UInt32})`,
        { limit },
      ),
      skip,
    );
  }
}
