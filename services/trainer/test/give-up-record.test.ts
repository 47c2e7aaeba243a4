import { describe, expect, it } from 'vitest';
import {
  configurationDigest,
  GIVE_UP_REMEMBERED_MS,
  type GiveUpRecord,
  giveUpDecision,
  parseGiveUpRecord,
  type RecordDelivery,
} from '../src/give-up-record.js';
import { unitTrainerConfig } from './fixtures.js';

const config = unitTrainerConfig('/tmp/models', {
  DRIFTLINE_TRAINER_MAX_CELLS: 1_000_000,
  DRIFTLINE_TRAINER_TIMEOUT: 1_200_000,
});
const python = '/venv/bin/python';
const configuration = configurationDigest(config, python);
const given: RecordDelivery = { position: 'retrain.v1/0@7', fingerprint: 'fp-of-the-given-up-record' };
const T = 1_000_000_000;
const held: GiveUpRecord = { delivery: given, configuration, at: T, reason: 'retrain r-17 of fraud: … given up' };

describe('the give-up of a request on its worker runs: repeated only for a redelivery of its record (found by a review)', () => {
  it('the record redelivered under the same configuration within the bound: given up again, with its reason', () => {
    for (const at of [T, T + 1, T + GIVE_UP_REMEMBERED_MS - 1]) {
      expect(giveUpDecision(held, { ...given }, configuration, at)).toEqual({ kind: 'repeat', record: held });
    }
  });

  it('nothing remembered: fresh runs', () => {
    expect(giveUpDecision(undefined, given, configuration, T)).toEqual({ kind: 'fresh', why: 'none' });
  });

  it("another record at the remembered offset (a topic recreated, offsets from 0 again): fresh runs, not the other record's reason", () => {
    // Keyed by position alone, the request sent again at offset 7 of the new topic was given up at once.
    const recreated = { position: given.position, fingerprint: 'fp-of-a-record-sent-later' };
    expect(giveUpDecision(held, recreated, configuration, T + 1)).toEqual({ kind: 'fresh', why: 'another_record' });
  });

  it('another position (a replay from the DLQ), or no delivery at all: fresh runs', () => {
    expect(giveUpDecision(held, { ...given, position: 'retrain.v1/0@12' }, configuration, T)).toEqual({
      kind: 'fresh',
      why: 'another_record',
    });
    expect(giveUpDecision(held, undefined, configuration, T)).toEqual({ kind: 'fresh', why: 'another_record' });
  });

  it('the same record reprocessed (the group reset) after DRIFTLINE_TRAINER_TIMEOUT was raised: fresh runs at once', () => {
    // Before: given up at once with the old reason (the timeout it failed under), never a run.
    const raised = configurationDigest({ ...config, timeoutMs: 3_600_000 }, python);
    expect(raised).not.toBe(configuration);
    expect(giveUpDecision(held, given, raised, T + 60_000)).toEqual({ kind: 'fresh', why: 'configuration_changed' });
  });

  it('the same record, the same configuration, once the bound has passed since (the memory raised): fresh runs', () => {
    expect(GIVE_UP_REMEMBERED_MS).toBe(60 * 60_000);
    expect(giveUpDecision(held, given, configuration, T + GIVE_UP_REMEMBERED_MS)).toEqual({
      kind: 'fresh',
      why: 'expired',
    });
    // A clock set back by the bound does not hold it for as long again.
    expect(giveUpDecision(held, given, configuration, T - GIVE_UP_REMEMBERED_MS)).toEqual({
      kind: 'fresh',
      why: 'expired',
    });
  });

  it('the configuration digest: the same settings in any order agree; a setting a worker run depends on, or the interpreter, changed differs', () => {
    const reordered = Object.fromEntries(Object.entries(config).reverse()) as typeof config;
    expect(configurationDigest(reordered, python)).toBe(configuration);
    expect(configurationDigest({ ...config }, python)).toBe(configuration);
    expect(configurationDigest(config, '/usr/bin/python3')).not.toBe(configuration);
    expect(configurationDigest({ ...config, params: { ...config.params, rounds: 6 } }, python)).not.toBe(configuration);
    expect(configurationDigest({ ...config, maxRows: config.maxRows + 1 }, python)).not.toBe(configuration);
    expect(configurationDigest({ ...config, holdoutFraction: 0.3 }, python)).not.toBe(configuration);
  });

  it('settings no worker run sees do not count: an instance with another heap (MAX_CELLS default), session timeout or label poll takes a redelivery over as a redelivery (found by a review)', () => {
    const other = {
      ...config,
      maxCells: config.maxCells / 2,
      sessionTimeoutMs: 90_000,
      labelWait: { ...config.labelWait, pollMs: 10_000 },
    };
    expect(configurationDigest(other, python)).toBe(configuration);
  });

  it('stored as JSON and read back; unreadable or of the older form keyed by position alone: no give-up', () => {
    expect(parseGiveUpRecord(JSON.stringify(held))).toEqual(held);
    expect(parseGiveUpRecord(JSON.stringify({ delivery: given.position, reason: held.reason }))).toBeUndefined();
    expect(parseGiveUpRecord(JSON.stringify({ ...held, at: 'yesterday' }))).toBeUndefined();
    expect(parseGiveUpRecord(JSON.stringify({ ...held, at: 1e20 }))).toBeUndefined(); // no Date holds it
    expect(parseGiveUpRecord('{"delivery":')).toBeUndefined();
    expect(parseGiveUpRecord('')).toBeUndefined();
  });
});
