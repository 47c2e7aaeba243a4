import type { ClickHouse } from '@driftline/clickhouse';
import { SinkUnavailableError, toDriftlineError } from '@driftline/core';
import type { Baseline, ModelState } from '@driftline/policy';
import type { DecisionRow } from './processor.js';

/** What the trigger needs from storage: one port, one ClickHouse adapter. */
export interface DecisionStore {
  /** The latest persisted policy state of each model (absent models have none yet). */
  loadStates(models: readonly string[]): Promise<Map<string, ModelState>>;
  /** Metrics the serving version reached at its evaluation (model_versions), if it was registered here. */
  baseline(model: string, version: string): Promise<Baseline | undefined>;
  write(rows: readonly DecisionRow[]): Promise<void>;
}

const unavailable = (action: string, error: unknown) =>
  new SinkUnavailableError(`retrain_decisions: ${action}: ${toDriftlineError(error).message}`, { cause: error });

export class ClickHouseDecisionStore implements DecisionStore {
  private readonly baselines = new Map<string, { value: Baseline | undefined; at: number }>();

  constructor(
    private readonly ch: ClickHouse,
    private readonly now: () => number = Date.now,
  ) {}

  async loadStates(models: readonly string[]): Promise<Map<string, ModelState>> {
    if (models.length === 0) return new Map();
    try {
      const result = await this.ch.client.query({
        query: `SELECT model, argMax(state, seq) AS state FROM ${this.ch.table('retrain_decisions')}
                WHERE model IN {models:Array(String)} AND first = 1 GROUP BY model`,
        query_params: { models },
        format: 'JSONEachRow',
      });
      const rows = await result.json<{ model: string; state: string }>();
      return new Map(rows.map((r) => [r.model, JSON.parse(r.state) as ModelState]));
    } catch (error) {
      throw unavailable('load states', error);
    }
  }

  async baseline(model: string, version: string): Promise<Baseline | undefined> {
    const key = `${model}\u0000${version}`;
    const cached = this.baselines.get(key);
    // A registered version's metrics never change; an unknown one is looked up again after a minute.
    if (cached !== undefined && (cached.value !== undefined || this.now() - cached.at < 60_000)) return cached.value;
    try {
      const result = await this.ch.client.query({
        query: `SELECT metrics FROM ${this.ch.table('model_versions')} FINAL
                WHERE model = {model:String} AND version = {version:String} LIMIT 1`,
        query_params: { model, version },
        format: 'JSONEachRow',
      });
      const rows = await result.json<{ metrics: Record<string, number> }>();
      const value = rows[0]?.metrics;
      this.baselines.set(key, { value, at: this.now() });
      return value;
    } catch (error) {
      throw unavailable('load baseline', error);
    }
  }

  async write(rows: readonly DecisionRow[]): Promise<void> {
    if (rows.length === 0) return;
    try {
      await this.ch.client.insert({
        table: this.ch.table('retrain_decisions'),
        values: [...rows],
        format: 'JSONEachRow',
      });
    } catch (error) {
      throw unavailable('insert', error);
    }
  }
}
