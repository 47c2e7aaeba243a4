import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { generateModule } from '../scripts/codegen.js';
import { generatedPath, readAvroFiles } from '../scripts/generate.js';
import { contracts } from '../src/index.js';

describe('generated types', () => {
  it('are in sync with schemas/avro (run `pnpm --filter @driftline/schemas generate` if this fails)', () => {
    expect(readFileSync(generatedPath, 'utf8')).toBe(generateModule(readAvroFiles()));
  });

  it('give every event an event_time distinct from the Kafka timestamp', () => {
    for (const c of Object.values(contracts)) {
      const fields = (c.schema as unknown as { fields: Array<{ name: string; type: unknown }> }).fields;
      const eventTime = fields.find((f) => f.name === 'event_time');
      expect(eventTime, c.name).toBeDefined();
      expect(eventTime?.type).toEqual({ type: 'long', logicalType: 'timestamp-millis' });
    }
  });

  it('co-partition predictions and labels by prediction id', () => {
    const p = { prediction_id: 'p1', entity_id: 'e9' } as never;
    expect(contracts.prediction.key(p)).toBe(contracts.label.key(p));
  });
});
