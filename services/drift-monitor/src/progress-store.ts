import type { ClickHouse } from '@driftline/clickhouse';
import { SinkUnavailableError, toDriftlineError } from '@driftline/core';

export type ProgressStage = 'stage1' | 'merge';

export interface Progress {
  /** stage1: closedUntil (ms); merge: last completed window start (ms). */
  readonly position: number;
  /** One past the last offset whose effects the position covers. */
  readonly offset: number;
}

/** How far the durable effects of a (stage, group, topic, partition) reach. */
export interface ProgressStore {
  load(stage: ProgressStage, group: string, topic: string, partition: number): Promise<Progress | undefined>;
  save(stage: ProgressStage, group: string, topic: string, partition: number, progress: Progress): Promise<void>;
}

export class ClickHouseProgressStore implements ProgressStore {
  constructor(private readonly ch: ClickHouse) {}

  async load(stage: ProgressStage, group: string, topic: string, partition: number): Promise<Progress | undefined> {
    try {
      const result = await this.ch.client.query({
        query: `SELECT position, offset FROM ${this.ch.table('drift_progress')} FINAL
                WHERE stage = {stage:String} AND group_id = {group:String} AND topic = {topic:String}
                  AND partition = {partition:UInt32}
                ORDER BY position DESC LIMIT 1`,
        query_params: { stage, group, topic, partition },
        format: 'JSONEachRow',
      });
      const [row] = await result.json<{ position: number | string; offset: number | string }>();
      return row === undefined ? undefined : { position: Number(row.position), offset: Number(row.offset) };
    } catch (error) {
      throw new SinkUnavailableError(`progress store: load: ${toDriftlineError(error).message}`, { cause: error });
    }
  }

  async save(stage: ProgressStage, group: string, topic: string, partition: number, progress: Progress): Promise<void> {
    try {
      await this.ch.client.insert({
        table: this.ch.table('drift_progress'),
        format: 'JSONEachRow',
        values: [
          {
            stage,
            group_id: group,
            topic,
            partition,
            position: progress.position,
            offset: progress.offset,
            updated_at: new Date().toISOString().replace('T', ' ').replace('Z', ''),
          },
        ],
      });
    } catch (error) {
      throw new SinkUnavailableError(`progress store: save: ${toDriftlineError(error).message}`, { cause: error });
    }
  }
}
