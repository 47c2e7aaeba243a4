import type { ClickHouse } from '../client.js';
import type { Migration } from '../migrate.js';
import { chTime } from '../time.js';

export const driftProgressMigration: Migration = {
  id: '0102_drift_progress',
  statements: [
    // Per (stage, consumer group, topic, partition): how far the durable effects reach, so a new
    // owner of the partition neither re-emits nor re-completes what the previous one finished.
    `CREATE TABLE IF NOT EXISTS {db}.drift_progress (
      stage LowCardinality(String),
      group_id String,
      topic String,
      partition UInt32,
      position Int64,
      offset Int64,
      updated_at DateTime64(3, 'UTC')
    ) ENGINE = ReplacingMergeTree(position)
    ORDER BY (stage, group_id, topic, partition)`,
  ],
};

/**
 * Stage one's frontier keeps where late events began counting in still-open windows
 * (`late_from`): a replay after a restart re-counts exactly those (see `RestoredProgress`). Rows
 * written before read -1 (unknown).
 */
export const driftProgressLateFromMigration: Migration = {
  id: '0104_drift_progress_late_from',
  statements: [`ALTER TABLE {db}.drift_progress ADD COLUMN IF NOT EXISTS late_from Int64 DEFAULT -1`],
};

export type ProgressStage = 'stage1' | 'merge';

export interface Progress {
  /** stage1: closedUntil (ms); merge: last completed window start (ms). */
  readonly position: number;
  /** One past the last offset whose effects the position covers. */
  readonly offset: number;
  /**
   * stage1: the first offset whose late count went to a window still open at `position` (the
   * records from there on are late again when replayed, and counted again); absent: unknown.
   */
  readonly lateFrom?: number;
}

/** How far the durable effects of a (stage, group, topic, partition) reach. */
export interface ProgressStore {
  load(stage: ProgressStage, group: string, topic: string, partition: number): Promise<Progress | undefined>;
  save(stage: ProgressStage, group: string, topic: string, partition: number, progress: Progress): Promise<void>;
}

export class ClickHouseProgressStore implements ProgressStore {
  constructor(
    private readonly ch: ClickHouse,
    private readonly now: () => number = Date.now,
  ) {}

  async load(stage: ProgressStage, group: string, topic: string, partition: number): Promise<Progress | undefined> {
    const [row] = await this.ch.select<{
      position: number | string;
      offset: number | string;
      late_from: number | string;
    }>(
      `SELECT position, offset, late_from FROM ${this.ch.table('drift_progress')} FINAL
       WHERE stage = {stage:String} AND group_id = {group:String} AND topic = {topic:String}
         AND partition = {partition:UInt32}
       ORDER BY position DESC LIMIT 1`,
      { stage, group, topic, partition },
    );
    if (row === undefined) return undefined;
    const lateFrom = Number(row.late_from);
    return {
      position: Number(row.position),
      offset: Number(row.offset),
      ...(lateFrom >= 0 ? { lateFrom } : {}),
    };
  }

  save(stage: ProgressStage, group: string, topic: string, partition: number, progress: Progress): Promise<void> {
    return this.ch.insert('drift_progress', [
      {
        stage,
        group_id: group,
        topic,
        partition,
        position: progress.position,
        offset: progress.offset,
        late_from: progress.lateFrom ?? -1,
        updated_at: chTime(this.now()),
      },
    ]);
  }
}
