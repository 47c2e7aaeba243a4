import type { DecodedRecord } from '@driftline/kafka';
import type { ModelEvent } from '@driftline/schemas';
import { describe, expect, it } from 'vitest';
import { modelsFollower } from '../src/models-follower.js';

const event = (model: string, kind: ModelEvent['kind'], version: string): ModelEvent => ({
  model,
  version,
  kind,
  event_time: 1_700_000_000_000,
  request_id: null,
  metrics: {},
  artifact_uri: '',
  reference_uri: null,
  decided_by: 'operator:test',
});
const records = (from: number, events: ModelEvent[]): DecodedRecord<ModelEvent>[] =>
  events.map((value, i) => ({
    record: {
      topic: 'models.v1',
      partition: 0,
      offset: String(from + i),
      key: null,
      value: null,
      headers: {},
      timestamp: 0,
    },
    value,
  }));

function follower() {
  const calls: Array<[string, string[]]> = [];
  const f = modelsFollower(async (model, events) => {
    calls.push([model, events.map((e) => `${e.kind} ${e.version}`)]);
  });
  return { f, calls };
}

const history = [
  event('fraud', 'PROMOTED', 'v1'),
  event('churn', 'PROMOTED', 'v1'),
  event('fraud', 'SHADOW', 'v2'),
  event('fraud', 'PROMOTED', 'v2'),
  event('fraud', 'RETIRED', 'v1'),
  event('fraud', 'PROMOTED', 'v3'),
];

describe('models.v1 follower of the model server', () => {
  it('applies a start-up replay read in several batches once per model, in order, when it is read to its end', async () => {
    const { f, calls } = follower();
    await f.process(records(0, history.slice(0, 3)), { partition: 0 });
    await f.process(records(3, history.slice(3)), { partition: 0 });
    expect(calls).toEqual([]); // nothing swapped before the end: no old production served meanwhile
    expect(await f.finishReplay()).toBe(2);
    expect(calls).toEqual([
      ['fraud', ['PROMOTED v1', 'SHADOW v2', 'PROMOTED v2', 'RETIRED v1', 'PROMOTED v3']],
      ['churn', ['PROMOTED v1']],
    ]);
    expect(await f.finishReplay()).toBe(0); // once
  });

  it('a rejoin reads the topic from its start again: what was applied is skipped, what is new applies', async () => {
    const { f, calls } = follower();
    await f.process(records(0, history), { partition: 0 });
    await f.finishReplay();
    calls.length = 0;
    // The broker restarted: the group (no stored offsets) re-reads from offset 0, in fetch-sized batches.
    await f.process(records(0, history.slice(0, 2)), { partition: 0 });
    await f.process(records(2, [...history.slice(2), event('fraud', 'SHADOW', 'v4')]), { partition: 0 });
    expect(calls).toEqual([['fraud', ['SHADOW v4']]]);
    // Offsets are per partition.
    await f.process(records(0, [event('churn', 'SHADOW', 'v2')]), { partition: 1 });
    expect(calls.at(-1)).toEqual(['churn', ['SHADOW v2']]);
  });

  it('a restarted log (logRestarted: models.v1 recreated) applies its events from offset 0 again', async () => {
    const { f, calls } = follower();
    await f.process(records(0, history), { partition: 0 });
    await f.process(records(0, [event('churn', 'SHADOW', 'v2')]), { partition: 1 });
    await f.finishReplay();
    calls.length = 0;
    f.logRestarted(0);
    // The new log's first events: before, skipped as re-reads of offsets 0 … 5 already applied.
    await f.process(records(0, [event('fraud', 'PROMOTED', 'v4'), event('fraud', 'ROLLED_BACK', 'v4')]), {
      partition: 0,
    });
    expect(calls).toEqual([['fraud', ['PROMOTED v4', 'ROLLED_BACK v4']]]);
    // Only that partition's count starts over: a re-read of partition 1 is still skipped.
    await f.process(records(0, [event('churn', 'SHADOW', 'v2')]), { partition: 1 });
    expect(calls).toHaveLength(1);
  });
});
