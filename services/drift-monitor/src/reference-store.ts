import type { ClickHouse } from '@driftline/clickhouse';
import { SinkUnavailableError, toDriftlineError } from '@driftline/core';
import { type ReferenceSet, referenceSet } from '@driftline/drift';
import { parseReferenceProfile, type ReferenceProfile } from '@driftline/stats';

/** Where reference profiles live: one port, one ClickHouse adapter. */
export interface ReferenceStore {
  save(set: ReferenceSet): Promise<void>;
  /** The latest reference of (model, version), or undefined. */
  latest(model: string, version: string): Promise<ReferenceSet | undefined>;
  byId(referenceId: string): Promise<ReferenceSet | undefined>;
  /** The latest reference of every (model, version); a malformed profile throws ConfigError naming it. */
  all(): Promise<ReferenceSet[]>;
}

interface Row {
  model: string;
  version: string;
  reference_id: string;
  feature: string;
  profile: string;
}

function unavailable(action: string, error: unknown): SinkUnavailableError {
  return new SinkUnavailableError(`reference store: ${action}: ${toDriftlineError(error).message}`, { cause: error });
}

function toSets(rows: readonly Row[]): ReferenceSet[] {
  const groups = new Map<string, Row[]>();
  for (const r of rows) {
    const list = groups.get(r.reference_id);
    if (list === undefined) groups.set(r.reference_id, [r]);
    else list.push(r);
  }
  return [...groups.values()].map((list) => {
    const first = list[0]!;
    const profiles = new Map<string, ReferenceProfile>();
    for (const r of list) {
      const path = `reference_profiles[${r.model}/${r.version}/${r.feature}].profile`;
      let json: unknown;
      try {
        json = JSON.parse(r.profile);
      } catch {
        json = undefined;
      }
      profiles.set(r.feature, parseReferenceProfile(json, path));
    }
    return { ...referenceSet(first.model, first.version, profiles), referenceId: first.reference_id };
  });
}

export class ClickHouseReferenceStore implements ReferenceStore {
  constructor(private readonly ch: ClickHouse) {}

  private get table(): string {
    return this.ch.table('reference_profiles');
  }

  async save(set: ReferenceSet): Promise<void> {
    const createdAt = new Date().toISOString().replace('T', ' ').replace('Z', '');
    try {
      await this.ch.client.insert({
        table: this.table,
        format: 'JSONEachRow',
        values: set.features.map((feature, i) => ({
          model: set.model,
          version: set.version,
          reference_id: set.referenceId,
          feature,
          kind: set.profiles[i]!.kind,
          profile: JSON.stringify(set.profiles[i]),
          created_at: createdAt,
        })),
      });
    } catch (error) {
      throw unavailable('save', error);
    }
  }

  private async rows(where: string, params: Record<string, string>): Promise<Row[]> {
    try {
      const result = await this.ch.client.query({
        query: `SELECT model, version, reference_id, feature, profile FROM ${this.table} FINAL WHERE ${where}
                ORDER BY reference_id, feature`,
        query_params: params,
        format: 'JSONEachRow',
      });
      return await result.json<Row>();
    } catch (error) {
      throw unavailable('load', error);
    }
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

  async all(): Promise<ReferenceSet[]> {
    return toSets(
      await this.rows(
        `reference_id IN (SELECT argMax(reference_id, created_at) FROM ${this.table} GROUP BY model, version)`,
        {},
      ),
    );
  }
}
