// `driftline dlq list` against a Kafka that refuses its SASL credentials: a configuration error naming
// DRIFTLINE_KAFKA_SASL_*, exit 78. Once libs/kafka's admin calls reported the refusal retriable (held
// at run time), the command's first contact took it for an outage: "cannot reach Kafka … (no
// answer)", exit 69, which a script retrying on 69 would loop on (found by a review).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type KafkaBroker, startKafkaBroker, uniqueName } from '@driftline/test-support';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bundledCli, runBundled } from './bundled-cli.js';

const cliMain = bundledCli('dlq-sasl');
const dir = mkdtempSync(join(tmpdir(), 'driftline-cli-sasl-'));

/** Runs the bundled CLI with only the given DRIFTLINE_* variables: its exit and stderr. */
const driftline = (args: readonly string[], vars: Record<string, string>) => runBundled(cliMain(), args, vars);

describe('driftline dlq with credentials Kafka refuses (a private SASL broker)', () => {
  let broker: KafkaBroker;
  beforeAll(async () => {
    broker = await startKafkaBroker({ dir, sasl: { plainUsers: { alice: 'alice-secret' } } });
  }, 180_000);
  afterAll(async () => {
    await broker?.stop();
    rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('a wrong password: one line naming DRIFTLINE_KAFKA_SASL_USERNAME, exit 78 (not 69, "cannot reach Kafka")', async () => {
    const { status, stderr } = await driftline(['dlq', 'list', '--topic', uniqueName('features')], {
      DRIFTLINE_KAFKA_BROKERS: broker.saslBrokers.join(','),
      DRIFTLINE_KAFKA_SASL_MECHANISM: 'plain',
      DRIFTLINE_KAFKA_SASL_USERNAME: 'alice',
      DRIFTLINE_KAFKA_SASL_PASSWORD: 'not-her-password',
    });
    expect(stderr).toMatch(/DRIFTLINE_KAFKA_SASL_USERNAME: Kafka at [^\n]* refused the login of user "alice"/);
    expect(stderr).not.toMatch(/cannot reach Kafka|not-her-password/);
    expect(stderr.trim().split('\n')).toHaveLength(1);
    expect(status).toBe(78);
  });
});
