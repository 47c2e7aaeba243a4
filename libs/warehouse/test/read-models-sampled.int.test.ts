// Sampled windows (performance_windows.sampled_labels, migration 0680) reach the report's
// PerformancePoint.sampled and the model card's ModelCardLive.sampled; on a table before 0680 the
// readers still run and read every window as exact. Invalid labels reach PerformancePoint.invalidLabels
// (with `sampled`, the valid labels the report's current value counts, as the label-joiner's alerts).
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { chTime, createClickHouse, migrate, migrations } from '../src/index.js';
import { loadModelCard } from '../src/read-models/model-card.js';
import { loadReportData } from '../src/read-models/report.js';

const H = 3_600_000;
const T0 = Date.UTC(2025, 0, 1);
const path = mkdtempSync(join(tmpdir(), 'rd-'));
const row = (k: number, labeled: number, sampled: number | undefined, invalid = 0) => ({
  model: 'm',
  model_version: 'v1',
  window_start: chTime(T0 + k * H),
  window_end: chTime(T0 + (k + 1) * H),
  segment_feature: '',
  segment: '__all__',
  task: 'binary',
  predictions: labeled,
  labeled,
  expired: 0,
  pending: 0,
  label_coverage: 1,
  invalid_labels: invalid,
  accuracy: 0.8,
  roc_auc: 0.83,
  threshold: 0.5,
  version: 1,
  computed_at: chTime(T0 + (k + 1) * H),
  ...(sampled === undefined ? {} : { sampled_labels: sampled }),
});
for (const shape of ['after 0680', 'before 0680'] as const) {
  it(`reader: sampled windows reach the report and the card, ${shape}`, async () => {
    const ch = await createClickHouse({
      mode: 'embedded',
      path,
      database: shape === 'after 0680' ? 'rd_new' : 'rd_old',
    });
    const old = shape === 'before 0680';
    await migrate(
      ch,
      old
        ? migrations.slice(
            0,
            migrations.findIndex((m) => m.id.startsWith('0680_')),
          )
        : migrations,
    );
    await ch.insert('performance_windows', [
      row(0, 800, old ? undefined : 0, 7),
      row(1, 2_000_000, old ? undefined : 996_377),
    ]);
    const data = await loadReportData(ch, { model: 'm', from: T0, to: T0 + 4 * H }, T0 + 5 * H);
    const card = await loadModelCard(ch, 'm', 'v1', T0 + 5 * H);
    if (old) expect(data.performance.map((p) => p.sampled)).toEqual([0, 0]);
    else expect(data.performance.map((p) => p.sampled)).toEqual([0, 996_377]);
    expect(data.performance.map((p) => p.invalidLabels)).toEqual([7, 0]);
    expect(card.live[0]?.sampled).toEqual(
      old ? { windows: 0, labels: 0, of: 0 } : { windows: 1, labels: 996_377, of: 2_000_000 },
    );
    await ch.close();
  });
}
